"""One case per problem: find the open cases that a new report duplicates, merge the sure ones.

A report is compared with the OPEN cases (transitions.ACTIVE) reported within the window
(`ZHIZHI_DEDUP_WINDOW_HOURS`, default 72) that are
- near it: within the category's `dedup_distance_m` (haversine), when both have coordinates;
- of the same 大类 (parent of the 小类), when both have a category;
- similar in text: Jaccard of character 2/3-grams, estimated from MinHash signatures.

score = text similarity + `SAME_ITEM_BONUS` when both name the same 小类 (− `NO_PLACE_PENALTY` when
a distance cannot be measured). score ≥ `ZHIZHI_DEDUP_HIGH` (0.55) is a sure duplicate: `auto_merge`
merges it into the parent with the core's `merge_case` (the child keeps its reporter and channel).
`ZHIZHI_DEDUP_LOW` (0.30) ≤ score < high is likely: the dispatcher sees the pair side by side.

The candidates come from an in-memory index of the open/recent cases (a spatial grid of ~50 m cells
plus, for reports without coordinates, LSH buckets of the signatures), built once per process from
the database, caught up incrementally by id on every query, and fully rebuilt after
`REBUILD_SECONDS`. Candidates found in the index are re-read from the database (one query by
primary key), so a case closed since the build is never proposed.

A dispatcher's "keep" (not a duplicate) is written as a `dedup_keep` CaseEvent on the newer case
(the timeline is the record; nothing added to the models), and the pair is not proposed again.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from zhizhi import clock
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, CaseEvent, Category
from zhizhi.cases.transitions import ACTIVE
from zhizhi.intake.textfeatures import MinHasher
from zhizhi.problems import Forbidden, Invalid

SAME_ITEM_BONUS = 0.2
NO_PLACE_PENALTY = 0.1
DEFAULT_DISTANCE_M = 50
# A full rebuild only drops rows that left the window or closed (the search filters those anyway);
# it reads every open case (86 s for a million on the bench machine), so it is rare.
REBUILD_SECONDS = 6 * 3600
CATCH_UP_OVERLAP = 200
CELL_DEG = 0.0005  # ≈ 55 m of latitude, ≈ 48 m of longitude at 30°N
ROBOT_USERNAME = "zhizhi-dedup"
KEEP_ACTION = "dedup_keep"

HASHER = MinHasher(perms=64, bands=16)


def window() -> dt.timedelta:
    return dt.timedelta(hours=float(getattr(settings, "ZHIZHI_DEDUP_WINDOW_HOURS", 72)))


def high_threshold() -> float:
    return float(getattr(settings, "ZHIZHI_DEDUP_HIGH", 0.55))


def low_threshold() -> float:
    return float(getattr(settings, "ZHIZHI_DEDUP_LOW", 0.30))


def haversine_m(lng1: Any, lat1: Any, lng2: Any, lat2: Any) -> Any:
    """Great-circle distance in metres (numpy arrays or floats)."""
    lng1, lat1, lng2, lat2 = (np.radians(v) for v in (lng1, lat1, lng2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    return 6371008.8 * 2 * np.arcsin(np.sqrt(h))


def judge_pair(a: dict[str, Any], b: dict[str, Any], items: dict[str, tuple[str, float]]) -> float:
    """The score of two reports given as dicts (text, lng, lat, minutes, category code), with the
    same gates as the index search; 0 when a gate fails. `items`: 小类 code → (大类 code, distance).
    Used by the labelled-set measurements so they test exactly the rule the index applies."""
    major_a, dist_a = items.get(a.get("category") or "", ("", DEFAULT_DISTANCE_M))
    major_b, dist_b = items.get(b.get("category") or "", ("", DEFAULT_DISTANCE_M))
    if abs(float(a.get("minutes", 0)) - float(b.get("minutes", 0))) * 60 > window().total_seconds():
        return 0.0
    if major_a and major_b and major_a != major_b:
        return 0.0
    measured = None not in (a.get("lng"), a.get("lat"), b.get("lng"), b.get("lat"))
    if measured and haversine_m(a["lng"], a["lat"], b["lng"], b["lat"]) > max(dist_a, dist_b):
        return 0.0
    sim = HASHER.similarity(HASHER.of_text(a["text"]), HASHER.of_text(b["text"]))
    same = bool(a.get("category")) and a.get("category") == b.get("category")
    return pair_score(sim, same, measured)


def pair_score(text_similarity: float, same_item: bool, measured_distance: bool = True) -> float:
    score = text_similarity + (SAME_ITEM_BONUS if same_item else 0.0)
    if not measured_distance:
        score -= NO_PLACE_PENALTY
    return max(0.0, min(1.0, score))


@dataclass
class Report:
    """What dedup needs to know of a report, registered (pk set) or not yet."""

    text: str
    lng: float | None = None
    lat: float | None = None
    at: dt.datetime | None = None
    category: Category | None = None
    pk: int | None = None

    @classmethod
    def of(cls, value: Any) -> Report:
        if isinstance(value, Report):
            return value
        if isinstance(value, Case):
            return cls(
                text=f"{value.title} {value.description}",
                lng=value.lng,
                lat=value.lat,
                at=value.reported_at,
                category=value.category or value.suggested_category,
                pk=value.pk,
            )
        if isinstance(value, dict):
            cat = value.get("category")
            if cat is not None and not isinstance(cat, Category):
                cat = Category.objects.filter(code=str(cat)).first()
            return cls(
                text=str(value.get("text") or f"{value.get('title', '')} {value.get('description', '')}"),
                lng=value.get("lng"),
                lat=value.get("lat"),
                at=value.get("at"),
                category=cat,
                pk=value.get("pk"),
            )
        raise TypeError(f"cannot compare {type(value).__name__}")


@dataclass
class Candidate:
    case: Case
    score: float
    distance_m: float | None
    minutes: float
    reason: str

    @property
    def sure(self) -> bool:
        return self.score >= high_threshold()


class DedupIndex:
    """Open/recent cases in columns: ids, place, time, 小类/大类, distance limit, signature."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        self.n = 0
        cap = 1024
        self.ids = np.zeros(cap, dtype=np.int64)
        self.lng = np.full(cap, np.nan)
        self.lat = np.full(cap, np.nan)
        self.at = np.zeros(cap)
        self.leaf = np.zeros(cap, dtype=np.int64)
        self.major = np.zeros(cap, dtype=np.int64)
        self.dist = np.zeros(cap, dtype=np.float32)
        self.sig = np.zeros((cap, HASHER.perms), dtype=np.uint32)
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.unplaced: list[int] = []
        self.lsh: list[dict[int, list[int]]] | None = None
        self.max_id = 0
        self.built_at = 0.0
        self.rows: dict[int, int] = {}

    def _grow(self, need: int) -> None:
        cap = len(self.ids)
        if need <= cap:
            return
        new = max(need, cap * 2)
        for name in ("ids", "lng", "lat", "at", "leaf", "major", "dist"):
            old = getattr(self, name)
            grown = np.full(new, np.nan) if name in ("lng", "lat") else np.zeros(new, dtype=old.dtype)
            grown[:cap] = old
            setattr(self, name, grown)
        sig = np.zeros((new, HASHER.perms), dtype=np.uint32)
        sig[:cap] = self.sig
        self.sig = sig

    @staticmethod
    def cell(lng: float, lat: float) -> tuple[int, int]:
        return math.floor(lng / CELL_DEG), math.floor(lat / CELL_DEG)

    def add_row(
        self,
        pk: int,
        text: str,
        lng: float | None,
        lat: float | None,
        at: dt.datetime,
        leaf: int | None,
        major: int | None,
        dist: float,
        sig: np.ndarray | None = None,
    ) -> None:
        with self.lock:
            if pk in self.rows:
                return
            i = self.n
            self._grow(i + 1)
            self.ids[i] = pk
            self.lng[i] = np.nan if lng is None else lng
            self.lat[i] = np.nan if lat is None else lat
            self.at[i] = at.timestamp()
            self.leaf[i] = leaf or 0
            self.major[i] = major or 0
            self.dist[i] = dist
            self.sig[i] = HASHER.of_text(text) if sig is None else sig
            if lng is not None and lat is not None:
                self.cells.setdefault(self.cell(lng, lat), []).append(i)
            else:
                self.unplaced.append(i)
            if self.lsh is not None:
                for band, key in enumerate(HASHER.band_keys(self.sig[i])):
                    self.lsh[band].setdefault(key, []).append(i)
            self.rows[pk] = i
            self.n += 1
            self.max_id = max(self.max_id, pk)

    def _load(self, since_id: int) -> None:
        earliest = clock.now() - window()
        rows = (
            Case.objects.filter(pk__gt=since_id, status__in=ACTIVE, reported_at__gte=earliest)
            .order_by("pk")
            .values_list(
                "pk",
                "title",
                "description",
                "lng",
                "lat",
                "reported_at",
                "category_id",
                "category__parent_id",
                "category__dedup_distance_m",
                "suggested_category_id",
                "suggested_category__parent_id",
                "suggested_category__dedup_distance_m",
            )
            .iterator(chunk_size=5000)
        )
        for pk, title, desc, lng, lat, at, leaf, major, dist, sleaf, smajor, sdist in rows:
            self.add_row(
                pk,
                f"{title} {desc}",
                lng,
                lat,
                at,
                leaf or sleaf,
                major or smajor,
                float(dist or sdist or DEFAULT_DISTANCE_M),
            )
        last = Case.objects.order_by("-pk").values_list("pk", flat=True).first()
        self.max_id = max(self.max_id, last or 0)

    def refresh(self) -> None:
        """Build on first use or after REBUILD_SECONDS; otherwise add the cases created since."""
        with self.lock:
            if not self.built_at or time.monotonic() - self.built_at > REBUILD_SECONDS:
                self.clear()
                self._load(0)
                self.built_at = time.monotonic()
            else:
                # Ids are handed out before commit: a slower transaction can commit an id below one
                # already seen, so the catch-up looks a little way back (known rows are skipped).
                self._load(max(0, self.max_id - CATCH_UP_OVERLAP))

    def _lsh_rows(self, sig: np.ndarray) -> set[int]:
        if self.lsh is None:
            self.lsh = [{} for _ in range(HASHER.bands)]
            for i in range(self.n):
                for band, key in enumerate(HASHER.band_keys(self.sig[i])):
                    self.lsh[band].setdefault(key, []).append(i)
        out: set[int] = set()
        for band, key in enumerate(HASHER.band_keys(sig)):
            out.update(self.lsh[band].get(key, ()))
        return out

    def candidate_rows(self, probe: Report, sig: np.ndarray, radius_m: float) -> np.ndarray:
        rows: set[int] = set(self.unplaced_matches(sig))
        if probe.lng is not None and probe.lat is not None:
            cx, cy = self.cell(probe.lng, probe.lat)
            reach = math.ceil(radius_m / 45.0)
            for dx in range(-reach, reach + 1):
                for dy in range(-reach, reach + 1):
                    rows.update(self.cells.get((cx + dx, cy + dy), ()))
        else:
            rows |= self._lsh_rows(sig)
        return np.fromiter(rows, dtype=np.int64, count=len(rows))

    def unplaced_matches(self, sig: np.ndarray) -> list[int]:
        """Cases without coordinates are compared by text alone (few of them: scan, vectorised)."""
        if not self.unplaced:
            return []
        rows = np.asarray(self.unplaced, dtype=np.int64)
        sims = HASHER.similarities(sig, self.sig[rows])
        return list(rows[sims >= low_threshold()])

    def search(
        self, probe: Report, *, max_distance_m: float
    ) -> list[tuple[int, float, float | None, float, bool]]:
        """(case id, score, distance, minutes apart, same item) of every candidate ≥ the low threshold."""
        sig = HASHER.of_text(probe.text)
        when = (probe.at or clock.now()).timestamp()
        with self.lock:
            rows = self.candidate_rows(probe, sig, max_distance_m)
            if rows.size == 0:
                return []
            rows = rows[self.ids[rows] != (probe.pk or -1)]
            rows = rows[np.abs(self.at[rows] - when) <= window().total_seconds()]
            leaf = probe.category.pk if probe.category else 0
            major = (probe.category.parent_id or probe.category.pk) if probe.category else 0
            if major:
                rows = rows[(self.major[rows] == 0) | (self.major[rows] == major)]
            if rows.size == 0:
                return []
            placed = ~np.isnan(self.lng[rows])
            dist = np.full(rows.size, np.nan)
            if probe.lng is not None and probe.lat is not None:
                dist[placed] = haversine_m(
                    probe.lng, probe.lat, self.lng[rows[placed]], self.lat[rows[placed]]
                )
                limit = np.maximum(
                    self.dist[rows], float(probe.category.dedup_distance_m if probe.category else 0)
                )
                keep = ~placed | (dist <= limit)
                rows, dist = rows[keep], dist[keep]
            sims = HASHER.similarities(sig, self.sig[rows])
            same = (self.leaf[rows] == leaf) & (leaf != 0)
            out = []
            for i, row in enumerate(rows):
                measured = not math.isnan(dist[i])
                score = pair_score(float(sims[i]), bool(same[i]), measured)
                if score >= low_threshold():
                    minutes = abs(self.at[row] - when) / 60
                    out.append(
                        (
                            int(self.ids[row]),
                            score,
                            float(dist[i]) if measured else None,
                            minutes,
                            bool(same[i]),
                        )
                    )
        return out


INDEX = DedupIndex()


def invalidate() -> None:
    """Forget the index (tests, and after a bulk import): the next query rebuilds it."""
    with INDEX.lock:
        INDEX.clear()


def kept_pairs(case_ids: list[int]) -> set[frozenset[int]]:
    """The pairs a dispatcher marked 'not a duplicate' among these cases."""
    out: set[frozenset[int]] = set()
    events = CaseEvent.objects.filter(action=KEEP_ACTION, case_id__in=case_ids).values_list("case_id", "data")
    for case_id, data in events:
        other = (data or {}).get("other_id")
        if other:
            out.add(frozenset((case_id, int(other))))
    return out


def find_duplicates(case_or_report: Any, *, limit: int = 5) -> list[Candidate]:
    """Open cases that the report (a Case, a Report or a dict) probably duplicates, best first."""
    probe = Report.of(case_or_report)
    if probe.at is None:
        probe.at = clock.now()
    INDEX.refresh()
    radius = max(
        float(probe.category.dedup_distance_m) if probe.category else 0.0,
        float(INDEX.dist[: INDEX.n].max()) if INDEX.n else DEFAULT_DISTANCE_M,
    )
    hits = INDEX.search(probe, max_distance_m=radius)
    if not hits:
        return []
    live = {c.pk: c for c in Case.objects.filter(pk__in=[h[0] for h in hits], status__in=ACTIVE)}
    kept = kept_pairs([probe.pk, *live]) if probe.pk else set()
    out = []
    for pk, score, distance, minutes, same in hits:
        case = live.get(pk)
        if case is None or (probe.pk and frozenset((probe.pk, pk)) in kept):
            continue
        parts = [f"文字相似{score - (SAME_ITEM_BONUS if same else 0):.0%}"]
        parts.append("同一小类" if same else "同一大类")
        parts.append(f"相距{distance:.0f}米" if distance is not None else "无坐标")
        parts.append(f"相隔{minutes / 60:.1f}小时")
        out.append(Candidate(case, round(score, 3), distance, minutes, "，".join(parts)))
    out.sort(key=lambda c: (-c.score, c.distance_m if c.distance_m is not None else 1e9))
    return out[:limit]


def robot() -> Any:
    """The platform's own account that performs automatic merges. It must reach every open case
    (also those outside any grid, whose area is empty), so it is a superuser; it has no usable
    password, so nobody can log in as it, and every merge it makes is on the case timeline."""
    from zhizhi.orgs.models import User

    user = User.objects.filter(username=ROBOT_USERNAME).first()
    if user is None:
        user = User(
            username=ROBOT_USERNAME,
            full_name="自动合并",
            role="dispatcher",
            is_staff=False,
            is_superuser=True,
        )
        user.set_unusable_password()
        user.save()
    return user


def merge_into(actor: Any, case: Case, parent: Case, note: str) -> Case:
    """The core merge (the child keeps its reporter, channel and external id)."""
    return case_services.merge_case(actor, case.pk, into=parent.pk, note=note)


def auto_merge(report: Case, actor: Any = None) -> Case | None:
    """Merge `report` into its sure duplicate; the parent, or None when there is none."""
    found = [c for c in find_duplicates(report) if c.sure]
    if not found:
        return None
    best = found[0]
    try:
        merge_into(actor or robot(), report, best.case, f"系统自动合并：{best.reason}")
    except (case_services.IllegalAction, case_services.NotFound, Invalid, Forbidden):
        return None  # the parent moved on or is out of reach: the dispatcher decides
    return best.case


def keep_pair(actor: Any, case: Case, other: Case) -> CaseEvent:
    """The dispatcher says: not a duplicate. Recorded on the newer case's timeline."""
    newer, older = (
        (case, other) if (case.reported_at, case.pk) >= (other.reported_at, other.pk) else (other, case)
    )
    with transaction.atomic():
        return case_services.append_event(
            newer,
            actor,
            KEEP_ACTION,
            newer.status,
            newer.status,
            note=f"与{older.number}不是同一问题，保留",
            data={"other_id": older.pk, "other": older.number},
        )


@dataclass
class Pair:
    case: Case
    candidate: Candidate

    @property
    def both(self) -> list[Case]:
        """The newer report and the case it likely repeats, in that order (side by side)."""
        return [self.case, self.candidate.case]


def likely_pairs(user: Any, limit: int = 50) -> list[Pair]:
    """Cases waiting for the dispatcher that likely (not surely) duplicate another open case."""
    out: list[Pair] = []
    queue = case_services.cases_visible_to(user).filter(status__in=ACTIVE).order_by("-reported_at")[:500]
    seen: set[frozenset[int]] = set()
    for case in queue.select_related("category", "suggested_category"):
        for cand in find_duplicates(case, limit=3):
            key = frozenset((case.pk, cand.case.pk))
            if key in seen or cand.case.reported_at > case.reported_at:
                continue
            seen.add(key)
            out.append(Pair(case, cand))
        if len(out) >= limit:
            break
    return out
