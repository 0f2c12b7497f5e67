"""Device telemetry ingestion: every bad input a real device sends, over HTTP and the service."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone

from zhizhi import clock
from zhizhi.alerts import services
from zhizhi.alerts.models import Device, IngestCounter, Reading

NOW = timezone.make_aware(dt.datetime(2026, 7, 1, 10, 0, 0))


@pytest.fixture
def frozen():  # type: ignore[no-untyped-def]
    with clock.frozen_at(NOW):
        yield NOW


@pytest.fixture
def device(street):  # type: ignore[no-untyped-def]
    device = Device.objects.create(
        code="WL-001", name="河道水位1", kind="water_level", grid=street.grids["A1"], unit="m"
    )
    device.raw_token = services.issue_token(device)
    return device


def at(minutes: float) -> str:
    return (NOW + dt.timedelta(minutes=minutes)).isoformat()


def post(body: object, **headers: str):  # type: ignore[no-untyped-def]
    return Client().post(
        "/api/v1/telemetry", data=json.dumps(body), content_type="application/json", **headers
    )


def test_device_lives_in_its_grid(street, device) -> None:  # type: ignore[no-untyped-def]
    assert device.area_path == street.grids["A1"].path
    assert device.token_prefix == device.raw_token[:8]
    assert device.raw_token not in (device.token_hash or "")


def test_batch_in_body_is_stored_and_updates_the_device(device, frozen) -> None:  # type: ignore[no-untyped-def]
    body = {"device": "WL-001", "token": device.raw_token, "readings": [{"at": at(-2), "value": 1.5}]}
    body["readings"].append({"at": at(-1), "value": 2.25})
    response = post(body)
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    device.refresh_from_db()
    assert device.last_value == 2.25 and device.last_seen_at == NOW - dt.timedelta(minutes=1)
    assert list(Reading.objects.order_by("at").values_list("value", "status")) == [(1.5, "ok"), (2.25, "ok")]
    # A reading is not an edit of the device: no version bump, so a person's edit does not conflict.
    assert device.version == 1


def test_device_header_and_single_reading(device, frozen) -> None:  # type: ignore[no-untyped-def]
    response = post({"at": at(0), "value": "3.5"}, HTTP_AUTHORIZATION=f"Device WL-001:{device.raw_token}")
    assert response.json()["accepted"] == 1
    assert Reading.objects.get().value == 3.5


@pytest.mark.parametrize(
    ("code", "token", "reason"),
    [
        ("NOPE-9", "whatever", "unknown_device"),
        ("WL-001", "zd_wrong", "bad_token"),
        ("WL-001", "", "bad_token"),
    ],
)
def test_unknown_device_or_bad_token_is_counted_never_stored(device, frozen, code, token, reason) -> None:  # type: ignore[no-untyped-def]
    readings = [{"at": at(-1), "value": 1}, {"at": at(0), "value": 2}]
    response = post({"device": code, "token": token, "readings": readings})
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["code"] == reason and error["zh"] and error["en"]
    assert Reading.objects.count() == 0
    assert IngestCounter.objects.get(day=NOW.date(), reason=reason).count == 2
    post({"device": code, "token": token, "readings": readings[:1]})
    assert IngestCounter.objects.get(day=NOW.date(), reason=reason).count == 3


def test_disabled_device_is_refused(device, frozen) -> None:  # type: ignore[no-untyped-def]
    Device.objects.filter(pk=device.pk).update(enabled=False)
    response = post({"device": "WL-001", "token": device.raw_token, "readings": [{"at": at(0), "value": 1}]})
    assert response.status_code == 401 and Reading.objects.count() == 0


def test_non_numeric_and_absurd_values_are_kept_as_rejected(device, frozen) -> None:  # type: ignore[no-untyped-def]
    readings = [
        {"at": at(-4), "value": "high"},
        {"at": at(-3), "value": 55},  # 55 m of water in a street: a broken sensor
        {"at": at(-2), "value": True},
        {"at": at(-1), "value": 1.2},
        {"at": at(-0.5)},
    ]
    body = post({"device": "WL-001", "token": device.raw_token, "readings": readings}).json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"], r["stored"]) for r in body["rejected"]] == [
        (0, "not_a_number", True),
        (1, "implausible", True),
        (2, "not_a_number", True),
        (4, "not_a_number", True),
    ]
    assert "-1~20m" in body["rejected"][1]["zh"] and "plausible" in body["rejected"][1]["en"]
    rows = {r.value: r for r in Reading.objects.all()}
    assert rows[55].status == "rejected" and "plausible" in rows[55].reason
    assert rows[1.2].status == "ok"
    assert Reading.objects.filter(status="rejected", value__isnull=True).count() == 3
    device.refresh_from_db()
    assert device.last_value == 1.2  # rejected values never become the device's value


def test_duplicates_and_out_of_order(device, frozen) -> None:  # type: ignore[no-untyped-def]
    auth = {"device": "WL-001", "token": device.raw_token}
    first = post({**auth, "readings": [{"at": at(-1), "value": 2.0}, {"at": at(-1), "value": 2.0}]}).json()
    assert first == {"accepted": 1, "duplicates": 1, "rejected": []}
    # Later: the same reading again (a retry) and an older one that arrives late.
    second = post({**auth, "readings": [{"at": at(-1), "value": 2.0}, {"at": at(-10), "value": 1.0}]}).json()
    assert second == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert Reading.objects.count() == 2
    device.refresh_from_db()
    # The late older reading does not overwrite the newest value.
    assert device.last_value == 2.0 and device.last_seen_at == NOW - dt.timedelta(minutes=1)


def test_future_clock_and_bad_time_are_reported_not_stored(device, frozen) -> None:  # type: ignore[no-untyped-def]
    readings = [
        {"at": at(4), "value": 1.0},  # within the 5-minute tolerance
        {"at": at(30), "value": 1.0},
        {"at": "yesterday", "value": 1.0},
        {"value": 1.0},
        "1.0",
        {"at": (NOW - dt.timedelta(days=400)).isoformat(), "value": 1.0},
    ]
    body = post({"device": "WL-001", "token": device.raw_token, "readings": readings}).json()
    assert body["accepted"] == 1
    codes = [(r["index"], r["code"], r["stored"]) for r in body["rejected"]]
    assert codes == [
        (1, "future_time", False),
        (2, "bad_time", False),
        (3, "bad_time", False),
        (4, "not_an_object", False),
        (5, "too_old", False),
    ]
    assert "时钟" in body["rejected"][0]["zh"] and "clock" in body["rejected"][0]["en"]
    assert Reading.objects.count() == 1


def test_flood_is_rate_limited_per_device(street, device, frozen, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ZHIZHI_DEVICE_RATE_PER_MINUTE = 5
    other = Device.objects.create(
        code="NZ-001", name="噪声1", kind="noise", grid=street.grids["A1"], unit="dB"
    )
    other_token = services.issue_token(other)
    flood = [{"at": at(-i / 60), "value": 1.0} for i in range(8)]
    body = post({"device": "WL-001", "token": device.raw_token, "readings": flood}).json()
    assert body["accepted"] == 5
    assert [r["code"] for r in body["rejected"]] == ["rate_limited"] * 3
    assert all(not r["stored"] for r in body["rejected"])
    again = post({"device": "WL-001", "token": device.raw_token, "readings": [{"at": at(0.5), "value": 1}]})
    assert again.json()["rejected"][0]["code"] == "rate_limited"
    assert Reading.objects.filter(device=device).count() == 5
    # Another device is not affected by its neighbour's flood.
    calm = post({"device": "NZ-001", "token": other_token, "readings": [{"at": at(0), "value": 60}]}).json()
    assert calm["accepted"] == 1
    # A minute later the device may speak again.
    with clock.frozen_at(NOW + dt.timedelta(minutes=2)):
        later = post(
            {"device": "WL-001", "token": device.raw_token, "readings": [{"at": at(1.5), "value": 1}]}
        )
    assert later.json()["accepted"] == 1


def test_malformed_requests_answer_bilingually(device) -> None:  # type: ignore[no-untyped-def]
    bad_json = Client().post("/api/v1/telemetry", data="{nope", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.json()["errors"][0]["en"]
    not_list = post({"device": "WL-001", "token": device.raw_token, "readings": {"at": 1}})
    assert not_list.status_code == 400 and not_list.json()["errors"][0]["zh"]


def test_retention_purges_old_readings(device, frozen) -> None:  # type: ignore[no-untyped-def]
    Reading.objects.create(device=device, at=NOW - dt.timedelta(days=100), value=1.0)
    Reading.objects.create(device=device, at=NOW - dt.timedelta(days=1), value=2.0)
    from zhizhi.alerts.tasks import purge_readings

    purge_readings.call_local()
    assert list(Reading.objects.values_list("value", flat=True)) == [2.0]


def test_admin_issues_a_token_shown_once(street, device, frozen) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(street.users["admin"])
    response = client.post(
        "/admin/alerts/device/",
        {"action": "issue_token", "_selected_action": [device.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    raw = text.split("WL-001: ", 1)[1].split()[0]
    assert raw.startswith("zd_")
    device.refresh_from_db()
    assert device.token_prefix == raw[:8] and raw not in (device.token_hash or "")
    # The new token works, the old one no longer does.
    ok = post({"device": "WL-001", "token": raw, "readings": [{"at": at(0), "value": 1}]})
    assert ok.json()["accepted"] == 1
    old = post({"device": "WL-001", "token": device.raw_token, "readings": [{"at": at(-1), "value": 1}]})
    assert old.status_code == 401
    for page in ("/admin/alerts/device/", "/admin/alerts/reading/", "/admin/alerts/ingestcounter/"):
        assert client.get(page).status_code == 200, page


def test_accepted_readings_reach_the_rules_rejected_ones_do_not(device, frozen, caplog) -> None:  # type: ignore[no-untyped-def]
    from zhizhi.alerts.rule_models import Alarm, AlertRule

    AlertRule.objects.create(
        code="WL-HIGH",
        name="水位超限",
        kind="threshold",
        device_kind="water_level",
        params={"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}]},
    )
    auth = {"device": "WL-001", "token": device.raw_token}
    # 50 m is implausible: stored as rejected and never seen by the rules.
    post({**auth, "readings": [{"at": at(-2), "value": 50}]})
    assert not Alarm.objects.exists()
    post({**auth, "readings": [{"at": at(-1), "value": 1.5}]})
    alarm = Alarm.objects.get()
    assert alarm.device == device and alarm.value == 1.5
    assert "alert rules failed" not in caplog.text
