"""Emergency pages through the test client: declare (and its bilingual errors), the board and its
live stream, the list of people of special care with logged reveals, the phone page and its marks,
instructions and their receipts, the report (page and Excel), and who may open what."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from openpyxl import load_workbook

from tests.factories import PASSWORD, Street
from tests.test_emergency import buildings, community_b_worker, declare, populate
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import EvacuationTask, HelpRequest, Incident
from zhizhi.models import RevealLog
from zhizhi.notify import services as notify
from zhizhi.notify.models import InboxMessage

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def login(name: str) -> Client:
    client = Client()
    assert client.login(username=name, password=PASSWORD)
    return client


def test_declare_page_creates_the_incident_and_opens_the_board(street: Street) -> None:
    populate(street)
    desk = login("dispatcher")
    page = desk.get("/emergency/new/")
    assert page.status_code == 200 and b"declare-map" in page.content
    ids = ",".join(str(i) for i in buildings(street, "A1", "A2"))
    data = {
        "kind": "collapse",
        "area_mode": "buildings",
        "building_ids": ids,
        "location": "建国北路",
        "request_id": "w1",
    }
    answer = desk.post("/emergency/new/", data)
    incident = Incident.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/emergency/{incident.pk}/"
    assert desk.post("/emergency/new/", data).status_code == 302 and Incident.objects.count() == 1
    board = desk.get(f"/emergency/{incident.pk}/")
    html = board.content.decode()
    assert board.status_code == 200
    assert 'id="hh-total">6<' in html and 'id="v-total">4<' in html and "A1-1幢" in html
    assert f"/emergency/{incident.pk}/events/" in html
    listing = desk.get("/emergency/").content.decode()
    assert incident.number in listing


def test_declare_errors_are_shown_in_both_languages_and_nothing_is_written(street: Street) -> None:
    populate(street)
    desk = login("dispatcher")
    answer = desk.post(
        "/emergency/new/",
        {
            "kind": "fire",
            "area_mode": "radius",
            "center_lng": "120.1025",
            "center_lat": "30.305",
            "radius_m": "0",
        },
    )
    html = answer.content.decode()
    assert answer.status_code == 400
    assert "半径应大于0米" in html and "The radius must be more than 0 metres" in html
    assert Incident.objects.count() == 0
    answer = desk.post(
        "/emergency/new/", {"kind": "fire", "area_mode": "polygon", "polygon": '{"type": "Point"}'}
    )
    assert answer.status_code == 400 and "GeoJSON" in answer.content.decode()
    # Not the command centre: the page itself is refused.
    assert login("grid_a1").get("/emergency/new/").status_code == 403
    assert login("community_a").post("/emergency/new/", {"kind": "fire"}).status_code == 403


def test_workers_see_their_tasks_and_mark_them_from_the_phone(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1", "B1")).incident
    phone = login("grid_a1")
    # The board is the command centre's: a worker with tasks is sent to their own page.
    assert phone.get(f"/emergency/{incident.pk}/")["Location"] == f"/emergency/{incident.pk}/mine/"
    page = phone.get(f"/emergency/{incident.pk}/mine/").content.decode()
    mine = list(EvacuationTask.objects.filter(incident=incident, assignee=street.users["grid_a1"]))
    assert mine and all(f'id="task-{t.pk}"' in page for t in mine)
    others = EvacuationTask.objects.filter(incident=incident).exclude(assignee=street.users["grid_a1"])
    assert not any(f'id="task-{t.pk}"' in page for t in others)
    task = mine[0]
    answer = phone.post(
        f"/emergency/tasks/{task.pk}/mark/", {"status": "evacuated", "request_id": "x1"}, **HX
    )
    assert answer.status_code == 200 and 'data-status="evacuated"' in answer.content.decode()
    # Another grid's household: 403 with both languages.
    b1 = EvacuationTask.objects.get(incident=incident, grid=street.grids["B1"])
    answer = phone.post(f"/emergency/tasks/{b1.pk}/mark/", {"status": "evacuated"}, **HX)
    assert answer.status_code == 403
    assert (
        "该住户不在您负责的网格" in answer.content.decode()
        and "not in a grid you serve" in answer.content.decode()
    )
    answer = phone.post(f"/emergency/tasks/{task.pk}/mark/", {"status": "gone"}, **HX)
    assert answer.status_code == 400
    # Calling a household: the worker reveals a resident's phone of their own task (logged), not another's.
    resident = next(
        p
        for p in street.people.values()
        if p.status == "active" and p.residencies.filter(house=task.house).exists()
    )
    shown = phone.post(f"/emergency/{incident.pk}/reveal/", {"person": resident.pk}, **HX)
    assert shown.status_code == 200 and f"tel:{resident.decrypt_sensitive('phone')}" in shown.content.decode()
    assert (
        RevealLog.objects.filter(
            actor=street.users["grid_a1"], purpose=f"emergency {incident.number}"
        ).count()
        == 1
    )
    b1_resident = street.people["b1_101"]
    assert (
        phone.post(f"/emergency/{incident.pk}/reveal/", {"person": b1_resident.pk}, **HX).status_code == 403
    )
    assert 'id="area-totals"' in login("dispatcher").get(f"/emergency/{incident.pk}/").content.decode()
    # The board's stream carries the mark with the new counts.
    stream = login("leader").get(f"/emergency/{incident.pk}/events/?once=1&after=0")
    body = b"".join(stream.streaming_content).decode()  # type: ignore[attr-defined]
    frames = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    marked = [f for f in frames if f.get("type") == "marked"]
    assert marked and marked[-1]["households_done"] == 1 and marked[-1]["building"]["done"] == 1
    # A B-community worker without tasks cannot open the incident at all.
    stranger = community_b_worker(street)
    assert stranger.pk
    client_b = login("community_b")
    assert client_b.get(f"/emergency/{incident.pk}/").status_code == 404
    assert client_b.get(f"/emergency/{incident.pk}/mine/").status_code == 404


def test_care_list_page_and_logged_reveals(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1", "A2")).incident
    leader = login("leader")
    page = leader.get(f"/emergency/{incident.pk}/care/").content.decode()
    assert page.index("居民a1_2_201") < page.index("居民a1_201") < page.index("居民a1_101")
    assert "卧床" in page and "高龄(按出生日期)" in page
    person = street.people["a1_2_201"]
    answer = leader.post(f"/emergency/{incident.pk}/reveal/", {"person": person.pk}, **HX)
    assert answer.status_code == 200 and person.decrypt_sensitive("phone") in answer.content.decode()
    answer = leader.post(f"/emergency/{incident.pk}/reveal/", {"all": "1"}, **HX)
    assert 'data-count="4"' in answer.content.decode()
    assert RevealLog.objects.filter(purpose=f"emergency {incident.number}").count() == 5
    # Community B's worker cannot open community A's list.
    community_b_worker(street)
    refused = login("community_b").get(f"/emergency/{incident.pk}/care/")
    assert refused.status_code == 403 and "不在您的辖区" in refused.content.decode()
    assert (
        login("community_b").post(f"/emergency/{incident.pk}/reveal/", {"all": "1"}, **HX).status_code == 403
    )
    assert login("community_a").get(f"/emergency/{incident.pk}/care/").status_code == 200


def test_instruction_from_the_board_and_its_receipts(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    desk = login("dispatcher")
    answer = desk.post(
        f"/emergency/{incident.pk}/broadcast/",
        {
            "subject": "立即疏散",
            "body": "全体到位",
            "audience": "chosen",
            "roles": ["grid_worker"],
            "request_id": "i1",
        },
    )
    assert answer.status_code == 302
    item = services.broadcasts_of(incident).get()
    # The board's banner names how many people the instruction went to.
    assert item.total == 2 and "指令已发送给2人" in desk.get(answer.url).content.decode()
    notify.deliver_due()
    message = InboxMessage.objects.get(
        user=street.users["grid_a1"], outbox_key__startswith=f"broadcast:{item.pk}:"
    )
    # The worker opens it in the platform inbox: the command centre sees it read.
    assert login("grid_a1").get(f"/inbox/{message.pk}/").status_code == 200
    receipts = desk.get(f"/emergency/{incident.pk}/broadcasts/{item.pk}/").content.decode()
    assert "A1网格员" in receipts and "B1网格员" in receipts and receipts.count("未读") == 1
    bad = desk.post(f"/emergency/{incident.pk}/broadcast/", {"subject": "", "body": "x"}, **HX)
    assert bad.status_code == 400 and "A subject is required" in bad.content.decode()
    assert (
        login("grid_a1")
        .post(f"/emergency/{incident.pk}/broadcast/", {"subject": "x", "body": "y"})
        .status_code
        == 403
    )


def test_report_page_and_excel(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    for task in EvacuationTask.objects.filter(incident=incident):
        services.mark_task(
            street.users["leader"], task.pk, "needs_help" if task.seq == 1 else "evacuated", note="担架"
        )
    leader = login("leader")
    page = leader.get(f"/emergency/{incident.pk}/report/").content.decode()
    assert "启动应急" in page and "需要协助" in page and "@media print" not in page
    assert 'id="r-households">3/4<' in page
    book = load_workbook(
        io.BytesIO(b"".join(leader.get(f"/emergency/{incident.pk}/report.xlsx").streaming_content))
    )  # type: ignore[attr-defined]
    assert book.sheetnames == ["概况", "时间线", "住户任务", "协助请求", "指令"]
    tasks = list(book["住户任务"].iter_rows(values_only=True))
    assert len(tasks) == 5 and {r[10] for r in tasks[1:]} == {"需要协助", "已撤离"}
    assert [r[1] for r in book["时间线"].iter_rows(min_row=2, values_only=True)][:2] == [
        "启动应急",
        "分派撤离任务",
    ]
    assert len(list(book["协助请求"].iter_rows(min_row=2))) == 1
    # The help request is handled from the board's list (command centre only).
    item = HelpRequest.objects.get(incident=incident)
    assert login("grid_a1").post(f"/emergency/{incident.pk}/help/{item.pk}/resolve/", **HX).status_code == 403
    listed = leader.get(f"/emergency/{incident.pk}/help/").content.decode()
    assert f'id="help-{item.pk}"' in listed
    handled = leader.post(f"/emergency/{incident.pk}/help/{item.pk}/resolve/", **HX)
    assert handled.status_code == 200 and 'id="no-help"' in handled.content.decode()
    item.refresh_from_db()
    assert item.resolved_by == street.users["leader"]
    # Closing ends the clock and leads to the report; a worker may not close.
    assert login("grid_a1").post(f"/emergency/{incident.pk}/close/").status_code == 403
    assert leader.post(f"/emergency/{incident.pk}/close/")["Location"] == f"/emergency/{incident.pk}/report/"


def test_unassigned_households_are_reassigned_from_the_board(street: Street) -> None:
    populate(street)
    street.person("b2", grid="B2", house="B2-1-101")  # B2 has no worker
    incident = declare(street, building_ids=buildings(street, "B2")).incident
    task = EvacuationTask.objects.get(incident=incident)
    desk = login("dispatcher")
    board = desk.get(f"/emergency/{incident.pk}/").content.decode()
    assert 'id="unassigned-list"' in board and f"/tasks/{task.pk}/assign/" in board and "B1网格员" in board
    moved = desk.post(
        f"/emergency/{incident.pk}/tasks/{task.pk}/assign/", {"assignee": street.users["grid_b1"].pk}
    )
    assert moved.status_code == 302
    task.refresh_from_db()
    assert task.assignee == street.users["grid_b1"]
    assert 'id="unassigned-list"' not in desk.get(f"/emergency/{incident.pk}/").content.decode()
    assert (
        login("grid_b1")
        .post(f"/emergency/{incident.pk}/tasks/{task.pk}/assign/", {"assignee": 1})
        .status_code
        == 403
    )
