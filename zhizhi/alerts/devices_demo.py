"""Demo layer "devices": sensing devices, their alert rules and a past day of readings for the demo
street (`manage.py demo_extras`, see docs/simulator.md).

- water-level gauges at four culverts / underpasses (涵洞、下穿通道) that flood in a typhoon;
- oil-fume monitors at up to twelve restaurants (catering enterprises, industry H, in their buildings);
- a few noise, gas, smoke and power meters on commercial and public buildings;
- the rules that watch them, each leading to the responsibility-list leaf of the unit that acts
  (涵洞积水 4201 → 综合指挥中心, 餐饮油烟扰民 0701 → 城管, 燃气泄漏 2001 → 平安办 …);
- 24 hours of ordinary readings per device (bulk insert), so device pages have a history.

Demo device tokens are never stored in clear: `demo_token(code)` derives each one from the
installation's SECRET_KEY (HMAC), so the loader stores its hash and the simulator derives the same
token again. Door contacts for elderly people living alone belong to the care layer, not here.

Idempotent: devices and rules are looked up by code; history is only added to a device without readings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.db import transaction

from zhizhi import clock
from zhizhi.alerts import simulator
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import AlertRule
from zhizhi.enterprises.models import Enterprise
from zhizhi.geo.models import Building, Region

CULVERTS = [
    ("WL-001", "西塘河路下穿涵洞水位"),
    ("WL-002", "小河路铁路涵洞水位"),
    ("WL-003", "湖墅北路下穿通道水位"),
    ("WL-004", "登云路地道水位"),
]
FUME_COUNT = 12
# (code, name, kind, unit) on commercial / public buildings.
OTHERS = [
    ("ZS-001", "商业街噪声监测", "noise", "dB"),
    ("ZS-002", "夜市噪声监测", "noise", "dB"),
    ("RQ-001", "农贸市场燃气探测", "gas", "%LEL"),
    ("RQ-002", "美食街燃气探测", "gas", "%LEL"),
    ("YG-001", "社区服务中心烟感", "smoke", "%/m"),
    ("YG-002", "老年食堂烟感", "smoke", "%/m"),
    ("YG-003", "群租房烟感", "smoke", "%/m"),
    ("YD-001", "商业综合体用电监测", "power", "kW"),
    ("YD-002", "农贸市场用电监测", "power", "kW"),
]
UNITS = {"water_level": "m", "fume": "mg/m³"}

WATER_LADDER = {
    "ladder": [
        {"above": 1.2, "for_seconds": 120, "severity": "major"},
        {"above": 1.5, "for_seconds": 0, "severity": "critical"},
    ],
    "clear": {"below": 1.1, "for_seconds": 60},
    # A level hovering around 1.5 m stays one critical alarm; it steps down after 5 minutes below.
    "deescalate_after_seconds": 300,
}
# (code, name, kind, device_kind, params, category_code, creates_case)
RULES: list[tuple[str, str, str, str, dict[str, Any], str, bool]] = [
    ("WL-LEVEL", "涵洞积水水位超限", "threshold", "water_level", WATER_LADDER, "4201", True),
    (
        "WL-RISE",
        "涵洞水位快速上涨",
        "rate_of_change",
        "water_level",
        {"delta": 0.18, "within_seconds": 600, "severity": "major"},
        "",
        False,
    ),
    (
        "FUME-HIGH",
        "餐饮油烟超标",
        "threshold",
        "fume",
        {
            "ladder": [{"above": simulator.FUME_LIMIT, "for_seconds": 600, "severity": "major"}],
            "clear": {"below": 1.5, "for_seconds": 300},
        },
        "0701",
        True,
    ),
    (
        "GAS-LEAK",
        "燃气浓度超限",
        "threshold",
        "gas",
        {
            "ladder": [
                {"above": 10, "for_seconds": 30, "severity": "major"},
                {"above": 25, "for_seconds": 0, "severity": "critical"},
            ],
            "clear": {"below": 5, "for_seconds": 300},
        },
        "2001",
        True,
    ),
    (
        "SMOKE-FIRE",
        "烟感报警",
        "threshold",
        "smoke",
        {
            "ladder": [{"above": 8, "for_seconds": 0, "severity": "critical"}],
            "clear": {"below": 2, "for_seconds": 300},
        },
        "4104",
        True,
    ),
    (
        "NOISE-HIGH",
        "商业噪声超标",
        "threshold",
        "noise",
        {
            "ladder": [{"above": 70, "for_seconds": 900, "severity": "minor"}],
            "clear": {"below": 65, "for_seconds": 600},
        },
        "2303",
        True,
    ),
    (
        "POWER-HIGH",
        "用电负荷过高",
        "threshold",
        "power",
        {
            "ladder": [{"above": 200, "for_seconds": 300, "severity": "major"}],
            "clear": {"below": 160, "for_seconds": 300},
        },
        "",
        False,
    ),
]
# Device offline: 30 minutes without a reading. One rule per kind, so event-driven door contacts
# (silent for hours by nature) are not swept; a silent smoke detector is a case for 平安办 (6301).
OFFLINE_KINDS = [
    ("water_level", "水位计", "", False),
    ("fume", "油烟监测", "", False),
    ("noise", "噪声监测", "", False),
    ("gas", "燃气探测", "", False),
    ("smoke", "烟感", "6301", True),
    ("power", "用电监测", "", False),
]
for _kind, _label, _category, _case in OFFLINE_KINDS:
    RULES.append(
        (
            f"OFFLINE-{_kind.upper().replace('_', '-')}"[:40],
            f"{_label}离线",
            "missing_data",
            _kind,
            {"silent_seconds": 1800, "severity": "minor"},
            _category,
            _case,
        )
    )


def demo_token(code: str) -> str:
    """The demo token of device `code`: derived from SECRET_KEY, never stored in clear anywhere."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"zhizhi-demo-device:{code}".encode(), hashlib.sha256)
    return "zd_demo_" + digest.hexdigest()[:32]


def _token_fields(code: str) -> dict[str, str]:
    raw = demo_token(code)
    return {"token_hash": hashlib.sha256(raw.encode()).hexdigest(), "token_prefix": raw[:8]}


def demo_tokens(devices: Any = None) -> dict[str, str]:
    """code → token for the demo devices (or `devices`) whose stored hash is that of the demo token."""
    qs = devices if devices is not None else Device.objects.all()
    out = {}
    for code, token_hash in qs.values_list("code", "token_hash"):
        raw = demo_token(code)
        if token_hash and hmac.compare_digest(token_hash, hashlib.sha256(raw.encode()).hexdigest()):
            out[code] = raw
    return out


def adopt_tokenless(devices: Any = None) -> int:
    """Give enabled devices without a token (other demo layers create them so) their demo token, so the
    simulator can speak for them. Demo only: the token is derived from SECRET_KEY and the code."""
    qs = (devices if devices is not None else Device.objects.all()).filter(
        enabled=True, token_hash__isnull=True
    )
    adopted = 0
    for code, pk in qs.values_list("code", "pk"):
        adopted += Device.objects.filter(pk=pk, token_hash__isnull=True).update(**_token_fields(code))
    return adopted


def demo_rule(
    code: str, name: str, kind: str, device_kind: str, params: dict, category: str, creates_case: bool
) -> tuple[AlertRule, bool]:
    """The demo rule `code`, created with these settings when it does not exist (an edited one is kept)."""
    return AlertRule.objects.get_or_create(
        code=code,
        defaults={
            "name": name,
            "kind": kind,
            "device_kind": device_kind,
            "params": params,
            "category_code": category,
            "creates_case": creates_case,
        },
    )


def ensure_rules() -> int:
    """Create the demo rules that do not exist yet (by code); returns how many were created."""
    return sum(demo_rule(*row)[1] for row in RULES)


def _ensure_device(code: str, **fields: Any) -> tuple[Device, bool]:
    device = Device.objects.filter(code=code).first()
    if device is not None:
        return device, False
    device = Device(code=code, **fields)
    device.save()
    Device.objects.filter(pk=device.pk).update(**_token_fields(code))
    return device, True


def _spread(items: list[Any], n: int) -> list[Any]:
    """`n` items spread evenly over `items` (so demo devices are not all in one corner)."""
    if len(items) <= n:
        return items
    return [items[(i * len(items)) // n] for i in range(n)]


def ensure_devices(street: Region) -> int:
    created = 0
    grids = list(
        Region.objects.filter(level=Region.GRID, path__startswith=street.path, buildings__isnull=False)
        .distinct()
        .order_by("code")
    )
    for (code, name), grid in zip(CULVERTS, _spread(grids, len(CULVERTS)), strict=False):
        lng = grid.center_lng
        lat = grid.center_lat
        if lng is None or lat is None:
            b = grid.buildings.order_by("code").first()
            lng, lat = (b.lng, b.lat) if b is not None else (None, None)
        _, made = _ensure_device(code, name=name, kind="water_level", unit="m", grid=grid, lng=lng, lat=lat)
        created += made

    restaurants = list(
        Enterprise.objects.filter(
            industry="H", status__in=["operating", "active"], building__grid__path__startswith=street.path
        )
        .select_related("building", "grid")
        .order_by("credit_code")
    )
    # Restaurants (餐饮) rather than hotels when there are enough of them (both are industry H).
    catering = [e for e in restaurants if "餐饮" in e.name]
    if len(catering) >= FUME_COUNT:
        restaurants = catering
    # (name, building, grid, lng) of each fume monitor; a street without catering enterprises:
    # its buildings stand in for restaurants.
    sites = [
        (f"{e.name[:40]}油烟监测", e.building, e.grid or e.building.grid, e.building.lng + 0.00008)
        for e in _spread(restaurants, FUME_COUNT)
        if e.building is not None
    ] or [
        (f"{b.name}餐饮油烟监测", b, b.grid, b.lng)
        for b in _spread(list(Building.objects.filter(grid__path__startswith=street.path).order_by("code")),
                         FUME_COUNT)
    ]  # fmt: skip
    for i, (name, b, grid, lng) in enumerate(sites, start=1):
        _, made = _ensure_device(f"YY-{i:03d}", name=name, kind="fume", unit="mg/m³", building=b, grid=grid,
                                 lng=lng, lat=b.lat)  # fmt: skip
        created += made

    buildings = list(
        Building.objects.filter(
            grid__path__startswith=street.path, kind__in=["commercial", "public", "mixed"]
        ).order_by("code")
    ) or list(Building.objects.filter(grid__path__startswith=street.path).order_by("code"))
    for (code, name, kind, unit), b in zip(OTHERS, _spread(buildings, len(OTHERS)), strict=False):
        _, made = _ensure_device(code, name=name, kind=kind, unit=unit, building=b, grid=b.grid, lng=b.lng,
                                 lat=b.lat)  # fmt: skip
        created += made
    return created


def demo_devices() -> list[Device]:
    codes = (
        [c for c, _ in CULVERTS] + [f"YY-{i:03d}" for i in range(1, FUME_COUNT + 1)] + [c for c, *_ in OTHERS]
    )
    return list(Device.objects.filter(code__in=codes).order_by("code"))


def seed_history(devices: list[Device], *, hours: float = 24, step_seconds: int = 300, seed: int = 7) -> int:
    """Ordinary readings for the last `hours` on devices that have none yet (one bulk insert)."""
    now = clock.now().replace(second=0, microsecond=0)
    have = set(Reading.objects.filter(device__in=devices).values_list("device_id", flat=True).distinct())
    todo = [d for d in devices if d.pk not in have and d.kind != "door"]
    if not todo:
        return 0
    start = now - dt.timedelta(hours=hours)
    samples = simulator.baseline([(d.code, d.kind) for d in todo], start, hours=hours, seed=seed,
                                 step_seconds=step_seconds)  # fmt: skip
    by_code = {d.code: d for d in todo}
    rows = [Reading(device=by_code[s.device], at=s.at, value=s.value, received_at=s.at) for s in samples]
    Reading.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    last: dict[str, simulator.Sample] = {}
    for s in samples:
        last[s.device] = s
    for code, s in last.items():
        Device.objects.filter(pk=by_code[code].pk).update(last_value=s.value, last_seen_at=s.at)
    return len(rows)


def load(street: Region) -> dict[str, int]:
    """The demo_extras loader: devices, rules and a day of readings; idempotent."""
    with transaction.atomic():
        rules = ensure_rules()
        devices = ensure_devices(street)
        readings = seed_history(demo_devices())
    return {"devices": devices, "rules": rules, "readings": readings}
