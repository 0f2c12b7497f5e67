"""One case per problem: precision/recall on the labelled pairs, auto-merge of a sure duplicate,
a likely one listed for the dispatcher, the space and time windows, the keep decision, the page."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.test import override_settings

from tests.factories import PASSWORD, Street
from zhizhi import clock
from zhizhi.cases import services
from zhizhi.cases.models import Case, CaseEvent
from zhizhi.intake import dedup, suggest
from zhizhi.intake.data.generate import load_leaves
from zhizhi.intake.textfeatures import MinHasher, jaccard, normalize, shingles

DATA = Path(dedup.__file__).resolve().parent / "data"
A1 = (120.1025, 30.305)
LIST = [
    {
        "code": "01",
        "name": "市容环境",
        "kind": "event",
        "children": [
            {
                "code": "0102",
                "name": "暴露垃圾",
                "keywords": ["垃圾", "堆放", "暴露", "垃圾袋", "臭"],
                "responsibility": "territorial",
                "sign_limit": [1, "work_hours"],
                "handle_limit": [1, "work_days"],
                "dedup_distance_m": 50,
            },
            {
                "code": "0103",
                "name": "垃圾满溢",
                "keywords": ["垃圾桶", "满溢", "垃圾箱", "溢出"],
                "responsibility": "territorial",
                "sign_limit": [1, "work_hours"],
                "handle_limit": [1, "work_days"],
                "dedup_distance_m": 30,
            },
        ],
    },
    {
        "code": "12",
        "name": "照明设施",
        "kind": "component",
        "children": [
            {
                "code": "1201",
                "name": "路灯不亮",
                "keywords": ["路灯", "不亮", "坏了", "漆黑"],
                "responsibility": "territorial",
                "sign_limit": [2, "work_hours"],
                "handle_limit": [3, "work_days"],
                "dedup_distance_m": 80,
            }
        ],
    },
]
PARENT_TEXT = "和睦新村3幢楼下垃圾桶满溢，垃圾散落一地，很臭，已经两天了"
SURE_TEXT = "和睦新村3幢楼下垃圾箱满溢，垃圾散落一地，特别臭，好几天了"
LIKELY_TEXT = "3幢楼下垃圾桶早就满了，散在地上好臭"


@pytest.fixture(autouse=True)
def _fresh_index():  # type: ignore[no-untyped-def]
    dedup.invalidate()
    suggest.use(None)
    yield
    dedup.invalidate()
    suggest.use(None)


@pytest.fixture
def desk(street: Street) -> Street:
    services.ensure_case_permissions()
    services.load_responsibility_list(LIST, street.users["admin"])
    suggest.use(suggest.fit([]))  # the small list's own keywords, not a model file on this machine
    return street


def new_case(
    street: Street, text: str, at: tuple[float, float] = A1, category: str = "0103", **kw: object
) -> Case:
    title, _, description = text.partition("，")
    return services.register_case(
        street.users["dispatcher"],
        title=title,
        description=description,
        category=category,
        lng=at[0],
        lat=at[1],
        **kw,  # type: ignore[arg-type]
    )


def east(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 96000, point[1]  # ≈ 96 km per degree of longitude at 30.3°N


# --- text features and the labelled pairs ------------------------------------------------------------
def test_normalize_and_minhash_estimate_jaccard() -> None:
    assert normalize("垃圾桶，满了！ ＡＢ１") == "垃圾桶满了ab1"
    hasher = MinHasher(perms=128, bands=32)
    a, b = shingles(PARENT_TEXT), shingles(SURE_TEXT)
    exact = jaccard(a, b)
    estimate = hasher.similarity(hasher.signature(a), hasher.signature(b))
    assert abs(exact - estimate) < 0.12
    assert hasher.similarity(hasher.of_text(PARENT_TEXT), hasher.of_text(PARENT_TEXT)) == 1.0
    assert hasher.similarity(hasher.of_text(PARENT_TEXT), hasher.of_text("路灯不亮一片漆黑")) < 0.1
    # Identical signatures share every LSH band key.
    assert hasher.band_keys(hasher.of_text(PARENT_TEXT)) == hasher.band_keys(hasher.of_text(PARENT_TEXT))


def test_precision_and_recall_on_the_labelled_pairs() -> None:
    pairs = json.loads((DATA / "dedup_pairs.json").read_text(encoding="utf-8"))
    assert len(pairs) >= 300
    items = {
        leaf["code"]: (leaf["major"], float(leaf.get("dedup_distance_m") or 50)) for leaf in load_leaves()
    }
    low, high = dedup.low_threshold(), dedup.high_threshold()
    scored = [(dedup.judge_pair(p["a"], p["b"], items), p["duplicate"], p["kind"]) for p in pairs]

    def rates(threshold: float) -> tuple[float, float]:
        tp = sum(1 for s, d, _ in scored if s >= threshold and d)
        fp = sum(1 for s, d, _ in scored if s >= threshold and not d)
        fn = sum(1 for s, d, _ in scored if s < threshold and d)
        return tp / max(tp + fp, 1), tp / max(tp + fn, 1)

    flagged_p, flagged_r = rates(low)  # shown to the dispatcher or merged
    sure_p, sure_r = rates(high)  # merged without a person
    print(f"flagged P={flagged_p:.3f} R={flagged_r:.3f}; sure P={sure_p:.3f} R={sure_r:.3f}")
    assert flagged_p >= 0.95 and flagged_r >= 0.95
    assert sure_p >= 0.99 and sure_r >= 0.5
    # The gates alone stop every far-away and out-of-window pair.
    assert all(s == 0 for s, _, kind in scored if kind in ("far", "late", "other_major"))


# --- against the database ------------------------------------------------------------------------------
def test_sure_duplicate_is_merged_as_a_linked_child_keeping_reporter_and_channel(desk: Street) -> None:
    parent = new_case(desk, PARENT_TEXT)
    title, _, description = SURE_TEXT.partition("，")
    result = suggest.classify_and_register(
        None,
        title=title,
        description=description,
        category="0103",
        lng=east(A1, 12)[0],
        lat=A1[1],
        channel="hotline",
        external_id="12345-0001",
        reporter_name="张先生",
        reporter_phone="13812345678",
    )
    child = result.case
    assert result.merged_into == parent
    assert child.status == "merged" and child.duplicate_of == parent
    assert child.channel == "hotline" and child.external_id == "12345-0001"
    assert child.reporter_name == "张先生" and child.reporter_phone_masked.endswith("5678")
    merge = CaseEvent.objects.get(case=child, action="merge")
    assert merge.actor.username == dedup.ROBOT_USERNAME and merge.data["into"] == parent.number
    assert not merge.actor.has_usable_password()  # nobody logs in as the merging account
    assert not CaseEvent.objects.filter(case=child, action="dispatch").exists()  # never dispatched
    parent.refresh_from_db()
    assert parent.status == "dispatched" and list(parent.duplicates.all()) == [child]


def test_auto_merge_of_a_registered_report(desk: Street) -> None:
    parent = new_case(desk, PARENT_TEXT)
    report = new_case(desk, SURE_TEXT, at=east(A1, 10), register=False)
    assert dedup.auto_merge(report) == parent
    report.refresh_from_db()
    assert report.status == "merged" and report.duplicate_of == parent


def test_likely_duplicate_is_listed_not_merged(desk: Street) -> None:
    parent = new_case(desk, PARENT_TEXT)
    title, _, description = LIKELY_TEXT.partition("，")
    result = suggest.classify_and_register(
        desk.users["dispatcher"],
        title=title,
        description=description,
        category="0103",
        lng=east(A1, 15)[0],
        lat=A1[1],
        channel="web",
    )
    assert result.merged_into is None and result.case.status != "merged"
    found = dedup.find_duplicates(result.case)
    assert [c.case for c in found] == [parent]
    assert dedup.low_threshold() <= found[0].score < dedup.high_threshold()
    assert "同一小类" in found[0].reason and 10 < found[0].distance_m < 20
    pairs = dedup.likely_pairs(desk.users["dispatcher"])
    assert [(p.case, p.candidate.case) for p in pairs] == [(result.case, parent)]


def test_space_window_per_category(desk: Street) -> None:
    new_case(desk, PARENT_TEXT)  # 垃圾满溢: 30 m
    assert dedup.find_duplicates(
        {"text": SURE_TEXT, "lng": east(A1, 25)[0], "lat": A1[1], "category": "0103"}
    )
    assert not dedup.find_duplicates(
        {"text": SURE_TEXT, "lng": east(A1, 60)[0], "lat": A1[1], "category": "0103"}
    )
    lamp = "登云路口路灯不亮，晚上一片漆黑，已经好几天了"
    new_case(desk, lamp, category="1201")  # 路灯不亮: 80 m
    near = dedup.find_duplicates({"text": lamp, "lng": east(A1, 60)[0], "lat": A1[1], "category": "1201"})
    assert [c.case.category.code for c in near] == ["1201"]
    # Another 大类 at the same spot is never a duplicate, whatever the words.
    assert not dedup.find_duplicates({"text": PARENT_TEXT, "lng": A1[0], "lat": A1[1], "category": "1201"})


def test_time_window_is_a_setting(desk: Street) -> None:
    start = clock.now()
    with clock.frozen_at(start - dt.timedelta(hours=100)):
        new_case(desk, PARENT_TEXT)
    probe = {"text": SURE_TEXT, "lng": A1[0], "lat": A1[1], "category": "0103"}
    assert not dedup.find_duplicates(probe)  # 100 h > the default 72 h
    dedup.invalidate()
    with override_settings(ZHIZHI_DEDUP_WINDOW_HOURS=120):
        assert dedup.find_duplicates(probe)


def test_closed_cases_are_not_candidates_even_when_indexed(desk: Street) -> None:
    parent = new_case(desk, PARENT_TEXT)
    probe = {"text": SURE_TEXT, "lng": A1[0], "lat": A1[1], "category": "0103"}
    assert dedup.find_duplicates(probe)
    # Closed behind the index's back (the index still holds it): re-read from the database, dropped.
    Case.objects.filter(pk=parent.pk).update(status="closed")
    assert not dedup.find_duplicates(probe)


def test_index_catches_up_with_new_cases_without_rebuild(desk: Street) -> None:
    new_case(desk, "湖州街5号路灯不亮，晚上一片漆黑", category="1201")
    assert dedup.find_duplicates({"text": SURE_TEXT, "lng": A1[0], "lat": A1[1], "category": "0103"}) == []
    built = dedup.INDEX.built_at
    assert built and dedup.INDEX.n == 1
    parent = new_case(desk, PARENT_TEXT)
    found = dedup.find_duplicates({"text": SURE_TEXT, "lng": A1[0], "lat": A1[1], "category": "0103"})
    assert [c.case for c in found] == [parent] and dedup.INDEX.built_at == built


def test_keep_is_recorded_and_the_pair_not_shown_again(desk: Street) -> None:
    parent = new_case(desk, PARENT_TEXT)
    other = new_case(desk, LIKELY_TEXT, at=east(A1, 15))
    assert dedup.likely_pairs(desk.users["dispatcher"])
    dedup.keep_pair(desk.users["dispatcher"], parent, other)
    event = CaseEvent.objects.get(action=dedup.KEEP_ACTION)
    assert event.case == other and event.data["other_id"] == parent.pk
    assert dedup.likely_pairs(desk.users["dispatcher"]) == []
    assert dedup.find_duplicates(other) == []


# --- the page ----------------------------------------------------------------------------------------------
def test_duplicates_page_by_role_with_merge_and_keep(desk: Street, client) -> None:  # type: ignore[no-untyped-def]
    parent = new_case(desk, PARENT_TEXT)
    other = new_case(desk, LIKELY_TEXT, at=east(A1, 15))
    url = "/intake/text/duplicates/"
    assert client.get(url).status_code == 302  # anonymous → login
    for username in ("grid_a1", "resident", "community_a"):
        client.login(username=username, password=PASSWORD)
        assert client.get(url).status_code == 403
    client.login(username="dispatcher", password=PASSWORD)
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert parent.number in body and other.number in body and "合并" in body and "保留" in body
    # A grid worker cannot decide; a dispatcher merges with one click.
    client.login(username="grid_a1", password=PASSWORD)
    denied = client.post(
        "/intake/text/duplicates/decide/", {"case": other.pk, "other": parent.pk, "decision": "merge"}
    )
    assert denied.status_code == 403
    client.login(username="dispatcher", password=PASSWORD)
    done = client.post(
        "/intake/text/duplicates/decide/", {"case": other.pk, "other": parent.pk, "decision": "merge"}
    )
    assert done.status_code == 302
    other.refresh_from_db()
    assert other.status == "merged" and other.duplicate_of == parent
    assert f'id="pair-{other.pk}-' not in client.get(url).content.decode()


def test_keep_from_the_page(desk: Street, client) -> None:  # type: ignore[no-untyped-def]
    parent = new_case(desk, PARENT_TEXT)
    other = new_case(desk, LIKELY_TEXT, at=east(A1, 15))
    client.login(username="dispatcher", password=PASSWORD)
    client.post("/intake/text/duplicates/decide/", {"case": other.pk, "other": parent.pk, "decision": "keep"})
    other.refresh_from_db()
    assert other.status != "merged"
    assert CaseEvent.objects.filter(case=other, action=dedup.KEEP_ACTION).exists()
    assert f'id="pair-{other.pk}-' not in client.get("/intake/text/duplicates/").content.decode()


def test_reports_without_coordinates_are_compared_by_text(desk: Street) -> None:
    placed = new_case(desk, PARENT_TEXT)
    unplaced = services.register_case(
        desk.users["dispatcher"],
        title="湖州街路灯不亮",
        description="晚上一片漆黑，好几天了",
        category="1201",
    )
    # An unplaced report finds the placed case through the LSH buckets, the distance unknown.
    found = dedup.find_duplicates({"text": PARENT_TEXT, "category": "0103"})
    assert [c.case for c in found] == [placed] and found[0].distance_m is None and "无坐标" in found[0].reason
    # A placed report finds the unplaced case by text alone; a different text finds nothing.
    near = dedup.find_duplicates(
        {"text": "湖州街路灯不亮 晚上一片漆黑", "lng": A1[0], "lat": A1[1], "category": "1201"}
    )
    assert [c.case for c in near] == [unplaced]
    assert not dedup.find_duplicates({"text": "完全不同的事情", "category": "1201"})
