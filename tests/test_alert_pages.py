"""The alert pages as people use them: the board and an alarm's page are area-scoped, acknowledging is
idempotent, the rule editor refuses bad parameters at their place and saves nothing, a stale edit is a
conflict, the live stream delivers a new alarm to the right readers only, and the device page shows its
readings, refusals, token and overrides."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client

from tests.factories import Street
from zhizhi import clock
from zhizhi.alerts import alarms, services
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlarmEvent, AlertRule, DeviceRuleOverride
from zhizhi.cases.models import Category
from zhizhi.models import ChangeLogEntry, LiveEvent

WATER = {
    "ladder": [
        {"above": 1.2, "for_seconds": 120, "severity": "major"},
        {"above": 1.5, "for_seconds": 0, "severity": "critical"},
    ],
    "clear": {"below": 1.1, "for_seconds": 60},
}


def client_for(street: Street, name: str) -> Client:
    client = Client()
    client.force_login(street.users[name])
    return client


def make_device(street: Street, code: str = "WL-1", grid: str = "A1", kind: str = "water_level") -> Device:
    lng = {"A1": 120.1025, "A2": 120.1075, "B1": 120.1125, "B2": 120.1175}[grid]
    return Device.objects.create(
        code=code, name=f"{code}水位计", kind=kind, grid=street.grids[grid], lng=lng, lat=30.305, unit="m"
    )


def make_rule(code: str = "WL", **kw: Any) -> AlertRule:
    fields = {"name": "河道水位", "kind": "threshold", "device_kind": "water_level", "params": WATER, **kw}
    return AlertRule.objects.create(code=code, **fields)


def raise_alarm(street: Street, grid: str = "A1", code: str = "WL-1", severity: str = "major") -> Alarm:
    rule = AlertRule.objects.filter(code="WL").first() or make_rule()
    device = Device.objects.filter(code=code).first() or make_device(street, code, grid)
    return alarms.report(rule, device, severity, at=clock.now(), value=1.3)


def categories(street: Street) -> None:
    top = Category.objects.create(code="09", name="设施管理")
    Category.objects.create(code="0901", name="河道水位", parent=top, department=street.units["QYFZB"])
    Category.objects.create(code="0902", name="井盖", parent=top, department=street.units["street"])


# --- the board and an alarm's page --------------------------------------------------------------------
def test_board_lists_only_alarms_in_the_readers_area(street: Street) -> None:
    mine = raise_alarm(street, "A1", "WL-1")
    other = raise_alarm(street, "B1", "WL-2")
    page = client_for(street, "grid_a1").get("/alerts/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="alarm-{mine.pk}"' in html and f'id="alarm-{other.pk}"' not in html
    b1 = client_for(street, "grid_b1").get("/alerts/").content.decode()
    assert f'id="alarm-{other.pk}"' in b1 and f'id="alarm-{mine.pk}"' not in b1
    leader = client_for(street, "leader").get("/alerts/").content.decode()
    assert f'id="alarm-{mine.pk}"' in leader and f'id="alarm-{other.pk}"' in leader
    # The htmx refresh of the rows is scoped the same way.
    rows = client_for(street, "grid_b1").get("/alerts/rows/").content.decode()
    assert f'id="alarm-{other.pk}"' in rows and f'id="alarm-{mine.pk}"' not in rows
    # A live event's refresh asks for the changed alarms only: the other grid's alarm is not given out.
    changed = client_for(street, "grid_b1").get(f"/alerts/rows/?ids={mine.pk},{other.pk}")
    assert re.findall(r'id="alarm-(\d+)"', changed.content.decode()) == [str(other.pk)]
    assert json.loads(changed["X-Severity-Counts"]) == {"major": 1}
    filtered = client_for(street, "leader").get(
        f"/alerts/rows/?ids={mine.pk},{other.pk}&community=330105001001"
    )
    assert re.findall(r'id="alarm-(\d+)"', filtered.content.decode()) == [str(mine.pk)]


def test_an_alarm_outside_the_area_is_a_404_and_residents_are_refused(street: Street) -> None:
    alarm = raise_alarm(street, "A1")
    assert client_for(street, "grid_b1").get(f"/alerts/alarms/{alarm.pk}/").status_code == 404
    assert client_for(street, "grid_b1").post(f"/alerts/alarms/{alarm.pk}/ack/").status_code == 404
    assert Alarm.objects.get(pk=alarm.pk).acknowledged_at is None
    page = client_for(street, "grid_a1").get(f"/alerts/alarms/{alarm.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        'data-event="raised"' in html
        and "WL-1水位计" in html
        and f"/alerts/devices/{alarm.device_id}/" in html
    )
    assert client_for(street, "resident").get("/alerts/").status_code == 403
    assert client_for(street, "resident").get(f"/alerts/alarms/{alarm.pk}/").status_code == 403


def test_board_filters_by_severity_kind_community_and_acknowledgement(street: Street) -> None:
    major = raise_alarm(street, "A1", "WL-1", "major")
    critical = raise_alarm(street, "B1", "WL-2", "critical")
    alarms.acknowledge(critical, street.users["leader"])
    leader = client_for(street, "leader")

    def ids(query: str) -> set[int]:
        html = leader.get(f"/alerts/rows/?{query}").content.decode()
        return {int(n) for n in re.findall(r'id="alarm-(\d+)"', html)}

    assert ids("severity=critical") == {critical.pk}
    assert ids("ack=no") == {major.pk}
    assert ids("ack=yes") == {critical.pk}
    assert ids(f"community={street.communities['A'].code}") == {major.pk}
    assert ids("device_kind=smoke") == set()
    assert ids("rule_kind=threshold") == {major.pk, critical.pk}
    alarms.clear(major, at=clock.now())
    assert ids("status=active") == {critical.pk}
    assert ids("status=cleared") == {major.pk}
    assert ids("") == {major.pk, critical.pk}  # recently cleared ones stay on the board


def test_acknowledge_is_idempotent(street: Street) -> None:
    alarm = raise_alarm(street, "A1")
    first = client_for(street, "grid_a1").post(f"/alerts/alarms/{alarm.pk}/ack/")
    assert first.status_code == 302
    alarm.refresh_from_db()
    at, by = alarm.acknowledged_at, alarm.acknowledged_by_id
    assert at is not None and by == street.users["grid_a1"].pk
    # A double click, and a second person a moment later: nothing changes.
    again = client_for(street, "grid_a1").post(
        f"/alerts/alarms/{alarm.pk}/ack/", headers={"HX-Request": "true"}
    )
    assert again.status_code == 200 and f'data-acked="{alarm.pk}"' in again.content.decode()
    client_for(street, "leader").post(f"/alerts/alarms/{alarm.pk}/ack/")
    alarm.refresh_from_db()
    assert (alarm.acknowledged_at, alarm.acknowledged_by_id) == (at, by)
    assert AlarmEvent.objects.filter(alarm=alarm, kind="acknowledged").count() == 1
    assert alarm.status == Alarm.ACTIVE  # acknowledged is not cleared
    assert client_for(street, "grid_a1").get(f"/alerts/alarms/{alarm.pk}/ack/").status_code == 405


# --- live ---------------------------------------------------------------------------------------------
def _stream(client: Client, after: int) -> str:
    response = client.get(f"/alerts/stream/?once=1&after={after}")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def test_the_stream_delivers_a_new_alarm_to_readers_of_its_area(street: Street) -> None:
    start = LiveEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    alarm = raise_alarm(street, "A1")
    body = _stream(client_for(street, "grid_a1"), start)
    frames = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert [(f["id"], f["kind"], f["severity"], f["status"]) for f in frames] == [
        (alarm.pk, "raised", "major", "active")
    ]
    assert "event: alarm" in body
    assert (
        str(alarm.pk)
        not in _stream(client_for(street, "grid_b1"), start).split("retry:")[-1].split("\n", 1)[-1]
    )
    # Escalation, acknowledgement and clearing are announced too; a plain repeat of the same state is not.
    alarms.report(alarm.rule, alarm.device, "major", at=clock.now(), value=1.31)  # type: ignore[arg-type]
    alarms.report(alarm.rule, alarm.device, "critical", at=clock.now(), value=1.6)  # type: ignore[arg-type]
    alarms.acknowledge(alarm, street.users["leader"])
    alarms.clear(Alarm.objects.get(pk=alarm.pk), at=clock.now())
    kinds = [
        json.loads(line[6:])["kind"]
        for line in _stream(client_for(street, "leader"), start).splitlines()
        if line.startswith("data: ")
    ]
    assert kinds == ["raised", "escalated", "acknowledged", "cleared"]
    assert client_for(street, "resident").get("/alerts/stream/?once=1").status_code == 403


# --- the rule editor ------------------------------------------------------------------------------
def rule_post(**overrides: str) -> dict[str, str]:
    data = {
        "code": "WL-NEW",
        "name": "新水位规则",
        "kind": "threshold",
        "device_kind": "water_level",
        "category_code": "",
        "enabled": "on",
        "rungs": "3",
        "rung-0-direction": "above",
        "rung-0-limit": "1.2",
        "rung-0-for_seconds": "120",
        "rung-0-severity": "major",
        "rung-1-direction": "above",
        "rung-1-limit": "1.5",
        "rung-1-for_seconds": "0",
        "rung-1-severity": "critical",
        "rung-2-limit": "",
        "clear_direction": "below",
        "clear_limit": "1.1",
        "clear_for_seconds": "60",
    }
    data.update(overrides)
    return data


def test_rule_form_saves_a_guided_threshold_ladder(street: Street) -> None:
    categories(street)
    response = client_for(street, "dispatcher").post("/alerts/rules/new/", rule_post(category_code="0901"))
    assert response.status_code == 302
    rule = AlertRule.objects.get(code="WL-NEW")
    assert rule.params == WATER
    assert (rule.kind, rule.device_kind, rule.category_code, rule.enabled, rule.creates_case) == (
        "threshold", "water_level", "0901", True, False
    )  # fmt: skip
    assert ChangeLogEntry.objects.filter(object_id=str(rule.pk), action="create").exists()
    # The editor shows the stored ladder back in its rows.
    html = client_for(street, "dispatcher").get(f"/alerts/rules/{rule.pk}/").content.decode()
    assert 'name="rung-1-limit" value="1.5"' in html and 'name="clear_limit" value="1.1"' in html


def test_rule_form_keeps_the_step_down_wait_and_checks_it(street: Street) -> None:
    client = client_for(street, "dispatcher")
    response = client.post("/alerts/rules/new/", rule_post(deescalate_after_seconds="300"))
    assert response.status_code == 302
    rule = AlertRule.objects.get(code="WL-NEW")
    assert rule.params == {**WATER, "deescalate_after_seconds": 300}
    html = client.get(f"/alerts/rules/{rule.pk}/").content.decode()
    assert 'name="deescalate_after_seconds" value="300"' in html
    bad = client.post("/alerts/rules/new/", rule_post(code="WL-BAD", deescalate_after_seconds="-1"))
    assert bad.status_code == 400
    assert "参数 deescalate_after_seconds 应为非负数" in bad.content.decode()
    assert not AlertRule.objects.filter(code="WL-BAD").exists()


def test_rule_form_rejects_bad_params_at_their_place_and_saves_nothing(street: Street) -> None:
    response = client_for(street, "dispatcher").post(
        "/alerts/rules/new/",
        rule_post(
            **{"code": "", "rung-1-limit": "很高", "rung-0-for_seconds": "-5", "category_code": "9999"}
        ),
    )
    assert response.status_code == 400
    html = response.content.decode()
    rung0 = html.split('id="rung-0"')[1].split("</tr>")[0]
    rung1 = html.split('id="rung-1"')[1].split("</tr>")[0]
    assert "for_seconds 应为非负数" in rung0 and "must be a non-negative number" in rung0
    assert "above 应为数值" in rung1 and "must be a number" in rung1
    assert "请填写规则编码" in html and "The rule code is required" in html
    assert "No responsibility-list item 9999" in html
    assert 'value="很高"' in html  # what was typed stays in the form
    assert not AlertRule.objects.exists()

    # A rate rule without its window; a JSON rule whose JSON does not parse.
    rate = client_for(street, "dispatcher").post(
        "/alerts/rules/new/", {"code": "R", "name": "速率", "kind": "rate_of_change", "delta": "0.3"}
    )
    assert (
        rate.status_code == 400
        and "Parameter within_seconds must be a positive number" in rate.content.decode()
    )
    broken = client_for(street, "dispatcher").post(
        "/alerts/rules/new/", {"code": "J", "name": "登记", "kind": "registry", "params_json": '{"a": '}
    )
    assert broken.status_code == 400 and "Params are not valid JSON" in broken.content.decode()
    quiet = client_for(street, "dispatcher").post(
        "/alerts/rules/new/",
        {
            "code": "Q",
            "name": "无活动",
            "kind": "inactivity",
            "silent_seconds": "3600",
            "quiet_start": "25:99",
        },
    )
    assert quiet.status_code == 400 and "Quiet hours: two HH:MM times" in quiet.content.decode()
    clear = client_for(street, "dispatcher").post("/alerts/rules/new/", rule_post(clear_limit="低"))
    assert clear.status_code == 400 and "Clear below must be a number" in clear.content.decode()
    assert not AlertRule.objects.exists()


def test_a_stale_edit_is_refused_and_keeps_the_other_change(street: Street) -> None:
    rule = make_rule()
    client = client_for(street, "dispatcher")
    form = rule_post(code="WL", name="改名一", version=str(rule.version))
    assert client.post(f"/alerts/rules/{rule.pk}/", form).status_code == 302
    stale = client.post(f"/alerts/rules/{rule.pk}/", {**form, "name": "改名二"})
    assert stale.status_code == 409 and "changed by someone else" in stale.content.decode()
    assert AlertRule.objects.get(pk=rule.pk).name == "改名一"


def test_only_editors_change_rules_and_a_department_its_own(street: Street) -> None:
    categories(street)
    rule = make_rule(category_code="0901")  # 0901 belongs to QYFZB, the dept user's unit
    other = make_rule(code="MH", name="井盖", category_code="0902")
    grid = client_for(street, "grid_a1")
    assert grid.get("/alerts/rules/").status_code == 200
    page = grid.get(f"/alerts/rules/{rule.pk}/").content.decode()
    assert "<fieldset disabled>" in page and 'id="save-rule"' not in page
    assert grid.post(f"/alerts/rules/{rule.pk}/", rule_post(code="WL", version="1")).status_code == 403
    assert grid.post(f"/alerts/rules/{rule.pk}/toggle/", {"version": "1"}).status_code == 403
    dept = client_for(street, "dept")
    mine = rule_post(code="WL", name="区域发展办改", category_code="0901", version="1")
    ok = dept.post(f"/alerts/rules/{rule.pk}/", mine)
    assert ok.status_code == 302
    assert (
        dept.post(
            f"/alerts/rules/{other.pk}/", rule_post(code="MH", category_code="0902", version="1")
        ).status_code
        == 403
    )
    # …nor hand its own rule to another department.
    moved = dept.post(f"/alerts/rules/{rule.pk}/", rule_post(code="WL", category_code="0902", version="2"))
    assert moved.status_code == 403
    assert AlertRule.objects.get(pk=rule.pk).category_code == "0901"
    assert AlertRule.objects.get(pk=other.pk).name == "井盖"
    toggle = client_for(street, "leader").post(f"/alerts/rules/{other.pk}/toggle/", {"version": "1"})
    assert toggle.status_code == 302 and not AlertRule.objects.get(pk=other.pk).enabled


# --- devices ------------------------------------------------------------------------------------------
def test_device_page_renders_readings_refusals_and_alarms(street: Street) -> None:
    device = make_device(street)
    raw = services.issue_token(device)
    now = clock.now().replace(microsecond=0)
    readings = [
        {"at": (now - dt.timedelta(minutes=10 - i)).isoformat(), "value": 1.0 + i / 10} for i in range(5)
    ]
    readings += [{"at": (now - dt.timedelta(minutes=3)).isoformat(), "value": 55}]  # implausible
    readings += [{"at": (now - dt.timedelta(minutes=2)).isoformat(), "value": "n/a"}]
    result = services.ingest("WL-1", raw, readings)
    assert (result.accepted, len(result.rejected)) == (5, 2)
    alarm = raise_alarm(street, "A1")
    page = client_for(street, "grid_a1").get(f"/alerts/devices/{device.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    series = json.loads(re.search(r'data-series="([^"]*)"', html).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert [v for _, v in series] == [1.0, 1.1, 1.2, 1.3, 1.4]
    assert "超出合理范围" in html and "读数不是数字" in html
    assert f"/alerts/alarms/{alarm.pk}/" in html and "vendor/echarts.min.js" in html
    assert client_for(street, "grid_b1").get(f"/alerts/devices/{device.pk}/").status_code == 404
    listing = client_for(street, "grid_a1").get("/alerts/devices/").content.decode()
    assert f'id="device-{device.pk}" data-state="alarm"' in listing
    assert "WL-1" not in client_for(street, "grid_b1").get("/alerts/devices/").content.decode()


def test_a_token_is_shown_once_and_only_editors_issue_it(street: Street) -> None:
    device = make_device(street)
    assert client_for(street, "grid_a1").post(f"/alerts/devices/{device.pk}/token/").status_code == 403
    response = client_for(street, "dispatcher").post(f"/alerts/devices/{device.pk}/token/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = re.search(r'id="token-value">([^<]+)<', response.content.decode()).group(1)  # type: ignore[union-attr]
    assert services.authenticate("WL-1", token) == device
    again = client_for(street, "dispatcher").get(f"/alerts/devices/{device.pk}/").content.decode()
    assert token not in again and token[:8] in again


def test_device_override_is_checked_against_the_rule(street: Street) -> None:
    device = make_device(street)
    rule = make_rule()
    client = client_for(street, "grid_a1")
    url = f"/alerts/devices/{device.pk}/overrides/{rule.pk}/"
    bad = client.post(url, {"params": '{"ladder": [{"above": "高"}]}'})
    assert bad.status_code == 400 and "Parameter above must be a number" in bad.content.decode()
    assert client.post(url, {"params": "{oops"}).status_code == 400
    assert not DeviceRuleOverride.objects.exists()
    ladder = {"ladder": [{"above": 2.0, "for_seconds": 60, "severity": "major"}]}
    assert client.post(url, {"params": json.dumps(ladder)}).status_code == 302
    assert DeviceRuleOverride.objects.get(device=device, rule=rule).params == ladder
    assert client_for(street, "grid_b1").post(url, {"params": "{}"}).status_code == 404
    assert client.post(url, {"params": ""}).status_code == 302
    assert not DeviceRuleOverride.objects.exists()


def test_map_layers_are_scoped(street: Street) -> None:
    raise_alarm(street, "A1", "WL-1")
    make_device(street, "WL-2", "B1")
    a1 = client_for(street, "grid_a1")
    devices = a1.get("/alerts/devices.geojson").json()["features"]
    assert [(f["properties"]["code"], f["properties"]["state"]) for f in devices] == [("WL-1", "alarm")]
    marks = a1.get("/alerts/alarms.geojson").json()["features"]
    assert len(marks) == 1 and marks[0]["geometry"]["coordinates"] == [120.1025, 30.305]
    assert client_for(street, "grid_b1").get("/alerts/alarms.geojson").json()["features"] == []
    assert client_for(street, "resident").get("/alerts/devices.geojson").status_code == 403
    assert "alerts/map_layer.js" in a1.get("/map/").content.decode()


def test_nav_link_for_staff_only(street: Street) -> None:
    assert 'href="/alerts/"' in client_for(street, "grid_a1").get("/").content.decode()
    assert 'href="/alerts/"' not in client_for(street, "resident").get("/").content.decode()


@pytest.mark.parametrize("name", ["leader", "dispatcher", "dept", "community_a", "grid_a1", "admin"])
def test_staff_open_every_alert_page(street: Street, name: str) -> None:
    alarm = raise_alarm(street, "A1")
    client = client_for(street, name)
    for url in ("/alerts/", "/alerts/rules/", "/alerts/rules/new/", "/alerts/devices/",
                f"/alerts/alarms/{alarm.pk}/", f"/alerts/devices/{alarm.device_id}/"):  # fmt: skip
        assert client.get(url).status_code == (
            403 if url.endswith("/new/") and name in ("community_a", "grid_a1") else 200
        ), url


def test_a_silent_device_charts_the_day_before_its_last_report(street: Street) -> None:
    device = make_device(street)
    last = clock.now() - dt.timedelta(days=2)
    for minutes, value in ((0, 0.9), (60, 1.0), (25 * 60, 0.5)):
        Reading.objects.create(device=device, at=last - dt.timedelta(minutes=minutes), value=value)
    Device.objects.filter(pk=device.pk).update(last_value=0.9, last_seen_at=last)
    html = client_for(street, "grid_a1").get(f"/alerts/devices/{device.pk}/").content.decode()
    series = json.loads(re.search(r'data-series="([^"]*)"', html).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert [v for _, v in series] == [1.0, 0.9]  # the reading 25 h before the last is outside
    assert "最后上报前24小时读数" in html
    assert 'data-state="offline"' in html


def test_alarm_page_shows_evidence_and_the_linked_case_and_subject(street: Street) -> None:
    rule = AlertRule.objects.create(code="LIST", name="名单比对", kind="list_match")
    person = street.person("old", grid="A1", house="A1-1-101", name="张老伯")
    evidence = {"revenue_wan": 7.5, "entries": [{"region": "某市某区", "level": "高"}], "months": {"a": 1}}
    where = {"area_path": person.area_path, "person": person, "title": "名单命中"}
    alarm = alarms.raise_or_update(
        rule, f"person:{person.pk}", "major", at=clock.now(), evidence=evidence, **where
    )
    html = client_for(street, "grid_a1").get(f"/alerts/alarms/{alarm.pk}/").content.decode()
    assert "<th>region</th>" in html and "<td>某市某区</td>" in html  # a list of records is a table
    assert "revenue_wan" in html and "7.5" in html and '{"a": 1}' in html.replace("&quot;", '"')
    assert f"/r/people.person/{person.pk}/" in html and "名单命中" in html
    assert client_for(street, "grid_b1").get(f"/alerts/alarms/{alarm.pk}/").status_code == 404
