"""Intake from every channel: the resident report page and its follow link, hotline work orders
(push, import, repeats and out-of-order updates), camera events, patrols, the rate limit, and the
result fed back once to every channel of a case and of the reports merged into it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.factories import PASSWORD
from tests.fakes import FakeGateway
from tests.test_cases_support import A1, PNG, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, CaseEvent, Category
from zhizhi.intake import services
from zhizhi.intake.models import Camera, CameraEventType, ChannelMessage, ColumnMapping, SourceEndpoint
from zhizhi.notify.models import OutboxMessage
from zhizhi.notify.services import deliver_due
from zhizhi.permissions import create_token
from zhizhi.problems import Invalid

OUTSIDE = (120.150, 30.305)  # inside China, outside every grid of the street
PHONE = "13900001111"


def report_form(**over: Any) -> dict[str, Any]:
    data = {
        "description": "小区门口垃圾堆了三天没人清理",
        "category": "0102",
        "lng": str(A1[0]),
        "lat": str(A1[1]),
        "reporter_name": "王先生",
        "reporter_phone": PHONE,
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def codes(response: Any) -> str:
    return response.content.decode()


@pytest.fixture(autouse=True)
def fresh_dedup_index() -> None:
    """The dedup index lives in the process; each test's database starts its ids afresh."""
    from zhizhi.intake import dedup, suggest

    dedup.invalidate()
    suggest.use(None)  # its cached list items would carry another test's ids


@pytest.fixture
def gateway(settings: Any) -> Iterator[FakeGateway]:
    fake = FakeGateway()
    settings.ZHIZHI_SMS_URL = fake.url + "/sms"
    yield fake
    fake.close()


@pytest.fixture
def api(loop: CaseMaker) -> Client:
    raw, _ = create_token(loop.user("dispatcher"), "12345对接")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


# --- resident report ----------------------------------------------------------------------------
def test_resident_report_gets_a_number_and_a_follow_link(loop: CaseMaker) -> None:
    photo = SimpleUploadedFile("现场.png", PNG, content_type="image/png")
    response = Client().post("/intake/report/", {**report_form(), "photos": [photo]})
    assert response.status_code == 201, codes(response)
    case = Case.objects.get(channel="web")
    assert case.number in codes(response)
    assert case.status == "dispatched"  # certain category + resolved grid → auto-dispatch
    assert case.reporter_phone_masked.endswith("1111") and PHONE not in str(case.reporter_phone_enc)
    assert case.photos.count() == 1
    message = ChannelMessage.objects.get(case=case)
    assert len(message.follow_token) >= 24
    page = Client().get(f"/intake/follow/{message.follow_token}/")
    assert page.status_code == 200 and case.number in codes(page) and "待签收" in codes(page)
    assert Client().get("/intake/follow/not-a-real-token-at-all-xxxxx/").status_code == 404


def test_report_without_category_is_filed_by_the_suggestion(loop: CaseMaker) -> None:
    response = Client().post("/intake/report/", report_form(category=None))
    assert response.status_code == 201
    case = Case.objects.get(channel="web")
    # The text names the item (垃圾 → 0102): a sure suggestion in a resolved grid is dispatched;
    # an unsure one would wait in the dispatcher's queue.
    code = (case.category or case.suggested_category).code  # type: ignore[union-attr]
    assert code == "0102"
    assert case.status == ("dispatched" if case.category_certain else "registered")


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"lng": None, "lat": None}, "location_required"),
        ({"lat": None}, "location_incomplete"),
        ({"gps_lng": "120.1300", "gps_lat": "30.3050"}, "location_contradictory"),
        ({"lng": str(OUTSIDE[0]), "lat": str(OUTSIDE[1])}, "location_outside"),
        ({"description": "脏" * 4001}, "too_long"),
        ({"reporter_phone": "12"}, "reporter_phone"),
    ],
)
def test_bad_report_is_refused_in_both_languages(loop: CaseMaker, over: dict[str, Any], code: str) -> None:
    with pytest.raises(Invalid) as exc:
        services.resident_report(**{k: v for k, v in report_form(**over).items()}, ip="10.0.0.1")
    found = {p.code for p in exc.value.problems} | {p.field for p in exc.value.problems}
    assert code in found, exc.value.problems
    assert all(p.zh and p.en for p in exc.value.problems)
    response = Client().post("/intake/report/", report_form(**over))
    assert response.status_code == 400 and " / " in codes(response)
    assert not Case.objects.exists()


def test_gps_alone_and_a_nearby_tap_are_accepted(loop: CaseMaker) -> None:
    form = report_form(lng=None, lat=None, gps_lng=str(A1[0]), gps_lat=str(A1[1]))
    assert services.resident_report(**form).case is not None
    near = report_form(gps_lng=str(A1[0] + 0.001), gps_lat=str(A1[1]), reporter_phone="13900002222")
    assert services.resident_report(**near).case is not None


def test_html_in_a_report_is_stored_as_text_and_shown_escaped(loop: CaseMaker) -> None:
    evil = '<script>alert("x")</script><b>垃圾</b>'
    got = services.resident_report(**report_form(description=evil))
    assert got.case is not None and got.case.description == evil
    page = codes(Client().get(f"/intake/follow/{got.message.follow_token}/"))
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_photos_must_be_images_of_bounded_size(loop: CaseMaker, settings: Any) -> None:
    fake = SimpleUploadedFile("x.jpg", b"MZ\x90\x00 not an image", content_type="image/jpeg")
    response = Client().post("/intake/report/", {**report_form(), "photos": [fake]})
    assert response.status_code == 400 and "photo_type" not in codes(response)
    assert "不是图片" in codes(response) and "not an image" in codes(response)
    settings.ZHIZHI_PHOTO_MAX_BYTES = 1000
    huge = SimpleUploadedFile("big.png", PNG + b"\0" * 5000, content_type="image/png")
    response = Client().post("/intake/report/", {**report_form(), "photos": [huge]})
    assert response.status_code == 400 and "too large" in codes(response)
    assert not Case.objects.exists()


def test_a_burst_from_one_phone_gets_429_and_the_window_resets(loop: CaseMaker, settings: Any) -> None:
    settings.ZHIZHI_INTAKE_RATE_PHONE = "2/3600"
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    client = Client()
    with clock.frozen_at(start):
        assert client.post("/intake/report/", report_form()).status_code == 201
        assert client.post("/intake/report/", report_form()).status_code == 201
        third = client.post("/intake/report/", report_form())
        assert third.status_code == 429
        assert "提交过于频繁" in codes(third) and "Too many reports" in codes(third)
        assert int(third["Retry-After"]) > 0
    assert Case.objects.count() == 2
    with clock.frozen_at(start + dt.timedelta(hours=1, minutes=1)):
        assert client.post("/intake/report/", report_form()).status_code == 201


def test_a_burst_from_one_address_gets_429(loop: CaseMaker, settings: Any) -> None:
    settings.ZHIZHI_INTAKE_RATE_IP = "1/60"
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert client.post("/intake/report/", report_form()).status_code == 201
    assert client.post("/intake/report/", report_form(reporter_phone="13900003333")).status_code == 429
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert other.post("/intake/report/", report_form(reporter_phone="13900004444")).status_code == 201


def test_public_outline_has_no_personal_data(loop: CaseMaker) -> None:
    data = Client().get("/intake/outline.geojson").json()
    assert len(data["features"]) == 4
    assert set(data["features"][0]["properties"]) == {"name"}


def test_rating_from_the_follow_link_once_closed(loop: CaseMaker) -> None:
    got = services.resident_report(**report_form())
    assert got.case is not None
    g, d = loop.user("grid_a1"), loop.user("dispatcher")
    case_services.sign_for(g, got.case.pk)
    loop.finish(Case.objects.get(pk=got.case.pk), g)
    case_services.verify_case(d, got.case.pk, passed=True)
    url = f"/intake/follow/{got.message.follow_token}/"
    assert "已清理" in codes(Client().get(url))
    response = Client().post(url, {"satisfaction": "满意"})
    assert response.status_code == 200 and 'id="rated"' in codes(response)
    assert Case.objects.get(pk=got.case.pk).satisfaction == "satisfied"


# --- hotline work orders ------------------------------------------------------------------------
def order(**over: Any) -> dict[str, Any]:
    data = {
        "source": "12345",
        "order_id": "GD20261123001",
        "title": "路灯不亮",
        "content": "测试路A1号门口垃圾桶满溢",
        "category": "0102",
        "lng": A1[0],
        "lat": A1[1],
        "reporter_name": "李女士",
        "reporter_phone": "13800001234",
    }
    data.update(over)
    return data


def test_the_same_work_order_three_times_is_one_case(api: Client) -> None:
    answers = [
        api.post("/api/v1/intake/workorders", order(), content_type="application/json") for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 200, 200]
    numbers = {a.json()["case_number"] for a in answers}
    assert len(numbers) == 1
    assert Case.objects.filter(channel="hotline").count() == 1
    message = ChannelMessage.objects.get(channel="hotline")
    assert message.external_id == "12345:GD20261123001" and message.count == 3
    assert "13800001234" not in str(message.payload)


def test_an_update_before_its_order_waits_then_joins(api: Client) -> None:
    post = lambda body: api.post("/api/v1/intake/workorders", body, content_type="application/json")  # noqa: E731
    early = post(
        {"source": "12345", "order_id": "GD9", "kind": "update", "seq": 2, "content": "市民再次来电催办"}
    )
    assert early.status_code == 202 and early.json()["status"] == "waiting"
    assert not Case.objects.exists()
    again = post(
        {"source": "12345", "order_id": "GD9", "kind": "update", "seq": 2, "content": "市民再次来电催办"}
    )
    assert again.status_code == 202
    created = post(order(order_id="GD9"))
    assert created.status_code == 201
    repeat = post(order(order_id="GD9"))
    assert repeat.status_code == 200 and repeat.json()["case_number"] == created.json()["case_number"]
    case = Case.objects.get()
    updates = list(CaseEvent.objects.filter(case=case, action="channel_update"))
    assert [e.note for e in updates] == ["市民再次来电催办"]
    late = post(
        {"source": "12345", "order_id": "GD9", "kind": "update", "seq": 2, "content": "市民再次来电催办"}
    )
    assert late.status_code == 200
    assert CaseEvent.objects.filter(case=case, action="channel_update").count() == 1


def test_work_order_errors_are_bilingual_and_token_is_required(api: Client, loop: CaseMaker) -> None:
    bad = api.post("/api/v1/intake/workorders", order(source="nowhere"), content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "source_unknown"
    long = api.post("/api/v1/intake/workorders", order(content="字" * 4001), content_type="application/json")
    assert long.status_code == 400
    assert (
        Client().post("/api/v1/intake/workorders", order(), content_type="application/json").status_code
        == 401
    )
    raw, _ = create_token(loop.user("grid_a1"), "not an integrator")
    other = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert (
        other.post("/api/v1/intake/workorders", order(), content_type="application/json").status_code == 403
    )


def test_import_with_a_saved_column_mapping(loop: CaseMaker) -> None:
    client = Client()
    client.login(username="dispatcher", password=PASSWORD)
    mapping = (
        '{"工单号": "order_id", "诉求内容": "content", "事项编码": "category", "经度": "lng", "纬度": "lat"}'
    )
    csv = (
        "工单号,诉求内容,事项编码,经度,纬度\n"
        f"M1,垃圾没人清理,0102,{A1[0]},{A1[1]}\n"
        f"M1,垃圾没人清理,0102,{A1[0]},{A1[1]}\n"
        'M2,=HYPERLINK("x"),0102,,\n'
        f"M3,{'长' * 4001},0102,,\n"
    ).encode()
    upload = SimpleUploadedFile("export.csv", csv, content_type="text/csv")
    response = client.post("/intake/import/", {"source": "mayor_mailbox", "mapping": mapping, "file": upload})
    assert response.status_code == 200, codes(response)
    assert ColumnMapping.objects.get(source="mayor_mailbox").mapping["工单号"] == "order_id"
    assert Case.objects.filter(channel="mailbox").count() == 2
    assert "row 5" in codes(response)
    formula = Case.objects.get(external_id="mayor_mailbox:M2")
    assert formula.description.startswith("=HYPERLINK")  # stored as text, never evaluated
    # The saved mapping is used again without being sent.
    again = SimpleUploadedFile("export.csv", csv, content_type="text/csv")
    client.post("/intake/import/", {"source": "mayor_mailbox", "file": again})
    assert Case.objects.filter(channel="mailbox").count() == 2


def test_operator_form_registers_a_hotline_case(loop: CaseMaker) -> None:
    client = Client()
    client.login(username="dispatcher", password=PASSWORD)
    response = client.post(
        "/intake/operator/",
        {"source": "12345", "content": "楼下垃圾堆积", "category": "0102", "lng": A1[0], "lat": A1[1]},
    )
    assert response.status_code == 200 and 'id="created"' in codes(response)
    assert Case.objects.get().channel == "hotline"
    grid = Client()
    grid.login(username="grid_a1", password=PASSWORD)
    assert grid.get("/intake/operator/").status_code == 403


# --- camera events and patrols ------------------------------------------------------------------
@pytest.fixture
def camera(loop: CaseMaker) -> Camera:
    CameraEventType.objects.create(name="垃圾满溢", category=Category.objects.get(code="0102"))
    return Camera.objects.create(code="CAM-001", name="测试路口", lng=A1[0], lat=A1[1])


def test_a_camera_burst_is_one_case_until_the_window_passes(
    api: Client, camera: Camera, settings: Any, loop: CaseMaker
) -> None:
    settings.ZHIZHI_CAMERA_WINDOW_MINUTES = 30
    # The window alone is under test: with dedup on, the later case would also join the open one.
    settings.ZHIZHI_INTAKE_DEDUP = False
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    post = lambda body: api.post("/api/v1/intake/camera-events", body, content_type="application/json")  # noqa: E731
    answers = []
    for i in range(5):
        with clock.frozen_at(start + dt.timedelta(minutes=5 * i)):
            answers.append(post({"camera": "CAM-001", "event_type": "垃圾满溢", "event_id": f"E{i}"}))
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200]
    assert Case.objects.filter(channel="camera").count() == 1
    message = ChannelMessage.objects.get(channel="camera")
    assert message.count == 5 and message.last_seen == start + dt.timedelta(minutes=20)
    with clock.frozen_at(start + dt.timedelta(minutes=21)):
        assert post({"camera": "CAM-001", "event_type": "垃圾满溢", "event_id": "E4"}).status_code == 200
    assert ChannelMessage.objects.get(channel="camera").count == 5  # a redelivered event counts once
    with clock.frozen_at(start + dt.timedelta(minutes=60)):
        assert post({"camera": "CAM-001", "event_type": "垃圾满溢", "event_id": "E9"}).status_code == 201
    assert Case.objects.filter(channel="camera").count() == 2
    # A sighting after the case was finished is a new problem, even inside the window.
    newest = Case.objects.filter(channel="camera").order_by("-id").first()
    assert newest is not None
    g = loop.user("grid_a1")
    with clock.frozen_at(start + dt.timedelta(minutes=61)):
        case_services.sign_for(g, newest.pk)
        loop.finish(Case.objects.get(pk=newest.pk), g)
    with clock.frozen_at(start + dt.timedelta(minutes=62)):
        assert post({"camera": "CAM-001", "event_type": "垃圾满溢", "event_id": "E10"}).status_code == 201
    case = Case.objects.filter(channel="camera").first()
    assert case is not None and (case.lng, case.lat) == A1 and case.category.code == "0102"


def test_camera_errors(api: Client, camera: Camera) -> None:
    post = lambda body: api.post("/api/v1/intake/camera-events", body, content_type="application/json")  # noqa: E731
    assert post({"camera": "NOPE", "event_type": "垃圾满溢"}).json()["errors"][0]["code"] == "camera_unknown"
    assert post({"camera": "CAM-001", "event_type": "飞碟"}).status_code == 400
    bad = post({"camera": "CAM-001", "event_type": "垃圾满溢", "snapshot_base64": "bm90IGFuIGltYWdl"})
    assert bad.status_code == 400 and "not an image" in codes(bad)
    import base64

    ok = post(
        {"camera": "CAM-001", "event_type": "垃圾满溢", "snapshot_base64": base64.b64encode(PNG).decode()}
    )
    assert ok.status_code == 201
    assert Case.objects.get(channel="camera").photos.count() == 1


def test_patrol_report_page(loop: CaseMaker) -> None:
    client = Client()
    client.login(username="grid_a1", password=PASSWORD)
    photo = SimpleUploadedFile("p.png", PNG, content_type="image/png")
    response = client.post(
        "/intake/patrol/",
        {
            "category": "0102",
            "description": "巡查发现垃圾堆放",
            "lng": A1[0],
            "lat": A1[1],
            "photos": [photo],
        },
    )
    assert response.status_code == 201, codes(response)
    case = Case.objects.get(channel="patrol")
    assert case.photos.count() == 1 and case.status == "dispatched"
    missing = client.post("/intake/patrol/", {"category": "0102"})
    assert missing.status_code == 400 and "location" in codes(missing).lower()
    assert Client().get("/intake/patrol/").status_code == 302


# --- feedback to every channel ------------------------------------------------------------------
def test_the_result_reaches_every_merged_channel_once(
    api: Client, loop: CaseMaker, gateway: FakeGateway
) -> None:
    SourceEndpoint.objects.create(source="12345", name="12345热线", callback_url=gateway.url + "/callback")
    d, g = loop.user("dispatcher"), loop.user("grid_a1")
    parent_no = api.post("/api/v1/intake/workorders", order(), content_type="application/json").json()
    parent = Case.objects.get(number=parent_no["case_number"])
    # Two more reports of the same problem: another hotline order and a resident's web report.
    child_no = api.post(
        "/api/v1/intake/workorders",
        order(order_id="GD2", reporter_phone="13800005678"),
        content_type="application/json",
    ).json()
    child = Case.objects.get(number=child_no["case_number"])
    web = services.resident_report(**report_form(reporter_phone="13900009999"))
    assert web.case is not None
    # Sure duplicates were merged on arrival (intake → dedup); the dispatcher merges the rest.
    for report in (child, web.case):
        report.refresh_from_db()
        if report.status != "merged":
            case_services.merge_case(d, report.pk, into=parent.number)
        assert Case.objects.get(pk=report.pk).duplicate_of_id == parent.pk
    case_services.sign_for(g, parent.pk)
    loop.finish(Case.objects.get(pk=parent.pk), g)
    assert ChannelMessage.objects.filter(fed_back_at__isnull=True).count() == 0
    callbacks = OutboxMessage.objects.filter(channel="webhook")
    assert callbacks.count() == 2
    sms = OutboxMessage.objects.filter(idempotency_key__startswith="intake:result:")
    assert sorted(m.recipient for m in sms) == sorted(
        [f"case:{child.pk}:reporter", f"case:{web.case.pk}:reporter"]
    )
    # Verification and the sweep do not send anything again.
    case_services.verify_case(d, parent.pk, passed=True)
    assert services.sweep_feedback() == 0
    assert OutboxMessage.objects.filter(channel="webhook").count() == 2
    deliver_due()
    deliver_due()
    got = {r["path"]: r for r in gateway.received}
    bodies = [r["body"] for r in gateway.received if r["path"] == "/callback"]
    assert sorted(b["order_id"] for b in bodies) == ["GD2", "GD20261123001"]
    assert all(b["case_number"] == parent.number and b["result"] == "已清理" for b in bodies)
    texts = [r["body"]["text"] for r in gateway.received if r["path"] == "/sms"]
    assert sum(parent.number in t and "已清理" in t for t in texts) >= 2
    assert "/sms" in got
    # The merged resident's follow link shows the parent's result.
    follow = codes(Client().get(f"/intake/follow/{web.message.follow_token}/"))
    assert parent.number in follow and "已清理" in follow and web.case.number in follow
    # Staff see every channel behind the case; the web report's secret link is not among them.
    listed = api.get(f"/api/v1/intake/cases/{parent.pk}/messages").json()["messages"]
    assert sorted(m["channel"] for m in listed) == ["hotline", "hotline", "web"]
    assert all(m["fed_back_at"] for m in listed) and "follow_token" not in str(listed)
    outsider = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(loop.user('cg'), 'x')[0]}")
    assert outsider.get(f"/api/v1/intake/cases/{parent.pk}/messages").status_code == 404
    # The export for hotline systems that pull.
    rows = api.get("/api/v1/intake/workorders/results", {"since": "2000-01-01T00:00:00"}).json()
    assert rows["count"] == 2 and {r["order_id"] for r in rows["results"]} == {"GD2", "GD20261123001"}
    sheet = api.get("/api/v1/intake/workorders/results", {"since": "2000-01-01T00:00:00", "format": "csv"})
    assert sheet["Content-Type"].startswith("text/csv")
    text = sheet.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("source,order_id,case_number") and "GD2" in text
    future = api.get("/api/v1/intake/workorders/results", {"since": "2999-01-01T00:00:00+00:00"}).json()
    assert future["count"] == 0
    assert api.get("/api/v1/intake/workorders/results", {"since": "yesterday"}).status_code == 400


def test_the_sweep_feeds_back_a_report_merged_after_the_finish(loop: CaseMaker, settings: Any) -> None:
    settings.ZHIZHI_INTAKE_DEDUP = False  # the late report must stay separate until linked below
    g = loop.user("grid_a1")
    parent = loop.new()
    late = services.resident_report(**report_form(reporter_phone="13900007777"))
    assert late.case is not None
    case_services.sign_for(g, parent.pk)
    loop.finish(parent, g)
    # Merging is only allowed from open statuses, so a late report is linked by the core directly.
    Case.objects.filter(pk=late.case.pk).update(duplicate_of=parent, status="merged")
    assert services.sweep_feedback() == 1
    assert services.sweep_feedback() == 0
    assert (
        OutboxMessage.objects.filter(
            recipient=f"case:{late.case.pk}:reporter", idempotency_key__startswith="intake:"
        ).count()
        == 1
    )


# --- phone verification code --------------------------------------------------------------------
def test_report_page_renders_for_anyone(loop: CaseMaker) -> None:
    page = Client().get("/intake/report/")
    assert page.status_code == 200 and "intake-map" in codes(page) and "0102" in codes(page)


def test_phone_code_is_texted_checked_and_limited(
    loop: CaseMaker, settings: Any, gateway: FakeGateway
) -> None:
    settings.ZHIZHI_INTAKE_VERIFY_PHONE = True
    client = Client()
    sent = client.post("/intake/report/code/", {"reporter_phone": PHONE})
    assert sent.status_code == 200 and sent.json()["sent"]
    deliver_due()
    texts = [r["body"] for r in gateway.received if r["path"] == "/sms"]
    assert len(texts) == 1 and texts[0]["phone"] == PHONE
    code = "".join(ch for ch in texts[0]["text"] if ch.isdigit())[:6]
    assert PHONE not in str(OutboxMessage.objects.get(idempotency_key__startswith="intake:code:").recipient)
    # Without a code, with a wrong one: refused; the right one works once.
    assert client.post("/intake/report/", report_form()).status_code == 400
    wrong = "000000" if code != "000000" else "111111"
    assert client.post("/intake/report/", report_form(code=wrong)).status_code == 400
    assert client.post("/intake/report/", report_form(code=code)).status_code == 201
    assert client.post("/intake/report/", report_form(code=code)).status_code == 400  # used
    assert Case.objects.count() == 1


def test_phone_code_expires_and_counts_attempts(loop: CaseMaker, settings: Any) -> None:
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    with clock.frozen_at(start):
        services.send_code(PHONE)
    with clock.frozen_at(start + dt.timedelta(minutes=11)), pytest.raises(Invalid) as exc:
        services.check_code(PHONE, "123456")
    assert exc.value.problems[0].code == "code_wrong"
    services.send_code(PHONE)
    for _ in range(services.CODE_ATTEMPTS):
        with pytest.raises(Invalid):
            services.check_code(PHONE, "abcdef")
    with pytest.raises(Invalid) as exc:
        services.check_code(PHONE, "abcdef")
    assert exc.value.problems[0].code == "code_attempts"
    assert Client().post("/intake/report/code/", {"reporter_phone": "1"}).status_code == 400


def test_admin_lists_intake_registries(loop: CaseMaker, camera: Camera) -> None:
    client = Client()
    client.force_login(loop.user("admin"))
    for name in ("camera", "cameraeventtype", "sourceendpoint", "columnmapping", "channelmessage"):
        assert client.get(f"/admin/intake/{name}/").status_code == 200, name
    assert "CAM-001" in codes(client.get("/admin/intake/camera/"))


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_work_order_three_times_at_once_is_one_case(street: Any) -> None:
    import threading

    from django.db import connection

    from tests.test_cases_support import LIST, add_loop_units

    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections (PostgreSQL); SQLite serialises writers")
    case_services.ensure_case_permissions()
    add_loop_units(street)
    case_services.load_responsibility_list(LIST, None)
    barrier = threading.Barrier(3)
    got: list[Any] = []

    def run() -> None:
        try:
            barrier.wait()
            got.append(services.receive_workorder(street.users["dispatcher"], "12345", order()).case.pk)
        except Exception as exc:  # recorded so the assertion shows it
            got.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and len(set(got)) == 1, got
    assert Case.objects.filter(channel="hotline").count() == 1
    assert ChannelMessage.objects.get(channel="hotline").count == 3


def test_a_callback_survives_a_down_hotline_system_and_arrives_once(
    api: Client, loop: CaseMaker, gateway: FakeGateway
) -> None:
    SourceEndpoint.objects.create(source="12345", callback_url=gateway.url + "/callback")
    g = loop.user("grid_a1")
    number = api.post("/api/v1/intake/workorders", order(), content_type="application/json").json()[
        "case_number"
    ]
    case = Case.objects.get(number=number)
    case_services.sign_for(g, case.pk)
    gateway.down = True
    start = clock.now()
    with clock.frozen_at(start):
        loop.finish(Case.objects.get(pk=case.pk), g)
        assert deliver_due()["retry"] >= 1
    gateway.down = False
    with clock.frozen_at(start + dt.timedelta(hours=2)):
        deliver_due()
        deliver_due()
    callbacks = [r for r in gateway.received if r["path"] == "/callback"]
    assert len(callbacks) == 1 and callbacks[0]["body"]["order_id"] == "GD20261123001"
    assert OutboxMessage.objects.get(channel="webhook").status == OutboxMessage.SENT


def test_a_work_order_outside_the_street_waits_in_the_queue(api: Client) -> None:
    answer = api.post(
        "/api/v1/intake/workorders",
        order(lng=OUTSIDE[0], lat=OUTSIDE[1]),
        content_type="application/json",
    )
    assert answer.status_code == 201
    case = Case.objects.get()
    assert case.grid is None and case.status in ("registered", "reported")
    half = api.post(
        "/api/v1/intake/workorders", order(order_id="GD-half", lat=None), content_type="application/json"
    )
    assert half.status_code == 400


def test_old_rate_counters_are_purged(loop: CaseMaker) -> None:
    start = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
    with clock.frozen_at(start):
        services.hit_rate("ip", "10.0.0.9")
    services.hit_rate("ip", "10.0.0.9")
    assert services.purge_rate_counters() == 1


def test_a_report_merged_into_a_finished_case_is_told_at_once(loop: CaseMaker, api: Client) -> None:
    d, g = loop.user("dispatcher"), loop.user("grid_a1")
    parent = loop.new()
    case_services.sign_for(g, parent.pk)
    loop.finish(parent, g)
    late = api.post(
        "/api/v1/intake/workorders", order(order_id="LATE1", category=None), content_type="application/json"
    ).json()
    child = Case.objects.get(number=late["case_number"])
    assert ChannelMessage.objects.get(case=child).fed_back_at is None
    case_services.merge_case(d, child.pk, into=parent.number)
    assert ChannelMessage.objects.get(case=child).fed_back_at is not None
    sms = OutboxMessage.objects.filter(idempotency_key=f"intake:result:case{parent.pk}:reporter{child.pk}")
    assert sms.count() == 1 and "已清理" in sms.get().body


def test_a_sure_duplicate_report_is_merged_on_arrival(loop: CaseMaker) -> None:
    first = services.resident_report(**report_form())
    second = services.resident_report(**report_form(reporter_phone="13900005555"))
    assert first.case is not None and second.case is not None
    second.case.refresh_from_db()
    assert second.case.status == "merged" and second.case.duplicate_of_id == first.case.pk
    page = codes(Client().get(f"/intake/follow/{second.message.follow_token}/"))
    assert first.case.number in page and second.case.number in page
