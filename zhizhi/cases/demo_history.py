"""Six months of case history for the demo street, generated in memory and bulk-inserted.

The history is what the closed loop would have left behind had it run for `months` months: every
case walks the transition table (`zhizhi.cases.transitions`) step by step in a small in-memory
simulator that stamps the same time columns as `services._act`, computes the SLA columns with the
real `sla.refresh` (so with `worktime.add`), and replays what the minute sweep would have done
between two actions (yellow at 80 %, red at the deadline, automatic escalation after the grace).
Nothing goes through the service functions (20,000 cases × ten actions would take many minutes);
instead the cases, the 联办 tasks and the timeline events are written with `bulk_create`.

Everything random comes from one `random.Random(seed)` (and one seeded Faker for names), in a fixed
order, so the same seed on the same street and the same "now" gives the same history. Cases whose
next step lies after "now" stop where they are: the workbenches get live cases in every state,
green, yellow and red. No outbox rows are written (history must not send 20,000 text messages).

See docs/demo-cases.md for the shares.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from faker import Faker
from shapely.geometry import Point, shape
from shapely.prepared import prep

from zhizhi import clock
from zhizhi.cases import routing, sla, transitions, worktime
from zhizhi.cases.models import Case, CaseEvent, CaseSequence, CaseTask, Category
from zhizhi.cases.services import RETURN_REASONS, TIME_COLUMNS, supervisors_of
from zhizhi.demo.plan import MOBILE_PREFIXES, ROADS
from zhizhi.geo import spatial
from zhizhi.geo.models import Building, Region
from zhizhi.models import ChangeLogEntry
from zhizhi.orgs.models import OrgUnit, User

BATCH = 2000

# Where reports come from: (source label, Case.channel, share). 信访 has no channel of its own in
# Case.CHANNELS, so it is entered by the command centre ("dispatcher") with an "XF-" external id.
SOURCES = [
    ("12345", "hotline", 0.35),
    ("市长信箱", "mailbox", 0.06),
    ("居民信箱", "mailbox", 0.08),
    ("信访", "dispatcher", 0.03),
    ("web", "web", 0.12),
    ("camera", "camera", 0.10),
    ("patrol", "patrol", 0.26),
]
EXTERNAL_PREFIX = {"12345": "12345-", "市长信箱": "SZXX-", "居民信箱": "JMXX-", "信访": "XF-", "web": "WEB-"}
SOURCE_ZH = {
    "12345": "12345热线",
    "市长信箱": "市长信箱",
    "居民信箱": "居民信箱",
    "信访": "信访",
    "web": "网页/小程序",
    "camera": "视频AI",
    "patrol": "网格巡查",
}

# Fates (shares of all cases; several may apply to one case).
P_CANCEL_OF_REPORTED = 0.06  # of cases that wait in the queue as reports (≈ 2 % overall)
P_MERGE_OF_REPORTED = 0.04
P_UNCERTAIN_HOTLINE = 0.15  # hotline cases the dispatcher must dispatch by hand
P_RETURN = 0.05
P_OVERDUE = 0.065  # plus cases that turn red while waiting for an extension decision: ≈ 8 %
P_VERIFY_FAIL = 0.03
P_EXTEND = 0.04  # about 15 % of requests are denied and some cases never get that far: ≈ 3 % extended
P_DENY_OF_EXTEND = 0.15
P_DEFER = 0.02
P_LATE_SIGN = 0.03
SATISFACTION_WEIGHTS = [("satisfied", 0.85), ("basic", 0.10), ("unsatisfied", 0.05)]
P_REOPEN_OF_UNSATISFIED = 0.4
P_VISIT_BY_LINK = 0.3

# Open states that the last days' cases are held in on purpose, so every workbench has work.
HOLD_STATES = (
    "reported",
    "registered",
    "returned",
    "dispatched",
    "handling",
    "extension_pending",
    "deferred",
    "finished",
    "closed",
    "unsatisfied",
)
HOLD_DAYS = 8
P_HOLD = 0.1

# Category texts: (substring of the 小类 name, weight, details, effects). The first match wins;
# every other item gets a generic text built from its name and keywords, with weight 1.
SCENARIOS: list[tuple[str, float, list[str], list[str]]] = [
    (
        "垃圾满溢",
        14,
        ["垃圾桶满溢，垃圾散落一地", "垃圾箱已经满了没人倒", "垃圾房门口堆满垃圾袋"],
        ["气味很大", "招苍蝇", "路过都要捂鼻子"],
    ),
    (
        "暴露垃圾",
        12,
        ["有人乱扔垃圾袋，堆在路边", "绿化带里堆了一堆生活垃圾", "路边暴露垃圾没人清理"],
        ["很臭", "影响环境", "夏天蚊蝇很多"],
    ),
    (
        "积存垃圾",
        6,
        ["角落里积存了好多垃圾渣土", "墙角堆积的垃圾好久没清了"],
        ["影响环境", "下雨后有污水流出"],
    ),
    ("道路不洁", 5, ["路面很脏，有油污和泥浆", "人行道上落叶和杂物没人扫"], ["走路容易滑倒", "影响市容"]),
    (
        "乱张贴小广告",
        6,
        ["楼道和电线杆上贴满了小广告", "单元门上被贴了开锁、贷款广告"],
        ["很难看", "撕了又贴"],
    ),
    ("施工占道", 3, ["施工材料堆在人行道上", "工地围挡占了半条路"], ["行人只能走机动车道", "很不安全"]),
    ("工地扬尘", 3, ["工地没有洒水，尘土飞扬", "渣土没有覆盖，风一吹全是灰"], ["窗户都不敢开", "呛得咳嗽"]),
    (
        "占道经营",
        8,
        ["路边摊占道经营，把人行道堵了", "水果摊摆到马路上"],
        ["行人只能绕行", "早晚高峰特别堵"],
    ),
    ("店外经营", 6, ["饭店把桌椅摆到店门外", "商铺把货物堆到门口人行道"], ["行人没法走", "影响通行"]),
    ("流动摊贩", 4, ["有流动摊贩在学校门口摆摊", "三轮车卖菜的停在路口"], ["堵住路口", "垃圾乱丢"]),
    ("露天烧烤", 4, ["晚上有人在路边露天烧烤", "夜宵摊烧烤烟很大"], ["烟熏到楼上住户", "晚上吵到十二点"]),
    (
        "机动车违停",
        14,
        ["有私家车长期违停在消防通道", "路口有车辆乱停，占了人行道", "小区门口车辆双排停放"],
        ["救护车都进不来", "早高峰堵得走不动", "出行很不方便"],
    ),
    (
        "非机动车乱停放",
        7,
        ["电动车乱停堵在楼道口", "非机动车停得乱七八糟"],
        ["老人进出不方便", "推不出自己的车"],
    ),
    ("共享单车堆积", 6, ["地铁口共享单车堆了一大片", "共享单车倒在人行道上"], ["人都走不过去", "影响出行"]),
    (
        "僵尸车",
        3,
        ["一辆车停了半年多没动，落满灰", "路边有辆废弃车辆，轮胎都瘪了"],
        ["占用车位", "存在安全隐患"],
    ),
    ("餐饮油烟", 8, ["楼下饭店油烟直排", "餐馆的排烟管对着居民窗户"], ["家里全是油烟味", "衣服都不能晾"]),
    ("装修垃圾", 5, ["装修垃圾堆在楼道口", "有人把装修垃圾倒在绿化带"], ["好几天了没人清运", "影响通行"]),
    ("道路破损", 8, ["路面破了一个大坑", "道路坑洼不平，有几处破损"], ["电动车经过容易摔倒", "下雨天积水"]),
    (
        "人行道板松动",
        5,
        ["人行道板松动，踩上去会翘起来", "人行道砖缺了好几块"],
        ["老人容易绊倒", "下雨溅一身泥水"],
    ),
    ("窨井堵塞", 5, ["窨井堵了，污水往外冒", "下水道堵塞，雨水排不出去"], ["臭味很大", "路面积水"]),
    (
        "路灯不亮",
        8,
        ["路灯坏了好几盏，晚上一片漆黑", "这一段路灯一直不亮"],
        ["晚上回家很害怕", "存在安全隐患"],
    ),
    ("井盖", 4, ["井盖松动，车子压过去哐哐响", "井盖破损缺了一角"], ["存在安全隐患", "晚上看不清容易踩空"]),
    ("树木倒伏", 2, ["大风把树吹倒了，压在路上", "一棵行道树倒伏，挡住了车道"], ["车辆无法通行", "很危险"]),
    ("树枝遮挡", 3, ["树枝太长挡住了路灯和窗户", "树枝遮挡交通标志"], ["家里采光很差", "司机看不到标志"]),
    ("毁绿种菜", 3, ["有人在绿化带里开荒种菜", "小区绿地被挖了种菜"], ["还浇粪水，很臭", "破坏绿化"]),
    (
        "屋面渗漏",
        7,
        ["顶楼屋面漏水，下雨天滴个不停", "房顶渗水，墙面都发霉了"],
        ["家里没法住", "电线受潮有隐患"],
    ),
    ("外墙脱落", 3, ["外墙瓷砖掉下来了", "外墙面有大块脱落"], ["差点砸到人", "楼下行人很危险"]),
    (
        "加装电梯",
        3,
        ["老小区想加装电梯，想了解政策", "加装电梯意见不统一"],
        ["老人上下楼太难", "希望社区协调"],
    ),
    ("楼道照明", 5, ["楼道灯坏了好几层", "楼道声控灯不亮"], ["晚上上楼看不见", "老人摔过一次"]),
    ("楼道堆物", 7, ["楼道里堆满杂物和纸板箱", "邻居在楼道里堆旧家具"], ["消防通道被堵", "有火灾隐患"]),
    ("单元门禁", 4, ["单元门禁坏了关不上", "门禁刷卡没反应"], ["陌生人随便进出", "不安全"]),
    ("电梯故障", 4, ["电梯经常停运", "电梯运行有异响"], ["老人上下楼困难", "不敢坐"]),
    ("停水", 3, ["小区突然停水，没有通知", "一整天没水"], ["生活很不方便", "老人做不了饭"]),
    ("停电", 3, ["楼里停电好几个小时", "晚上突然停电"], ["冰箱里的东西都坏了", "电梯也停了"]),
    (
        "夜间施工噪声",
        6,
        ["工地晚上十一点还在施工", "夜里施工机器声很大"],
        ["吵得睡不着觉", "孩子第二天要上学"],
    ),
    ("装修噪声", 6, ["楼上装修周末一早就开始电钻", "邻居装修中午也不停"], ["家里老人没法休息", "吵得头疼"]),
    ("广场舞噪声", 7, ["广场舞音响声音太大", "晚上跳舞放音乐到很晚"], ["孩子没法写作业", "吵得睡不着"]),
    ("邻里噪声", 5, ["楼上邻居半夜经常有响声", "隔壁深夜唱歌打麻将"], ["严重影响休息", "沟通过没有用"]),
    ("犬只扰民", 4, ["邻居家的狗整天叫", "楼下养的狗半夜狂吠"], ["吵得睡不着", "孩子害怕"]),
    ("商铺喇叭叫卖", 4, ["商铺门口喇叭循环叫卖", "店家用音箱招揽生意"], ["声音很大", "从早放到晚"]),
    (
        "消防通道堵塞",
        6,
        ["消防通道被车辆和杂物堵死", "消防通道停满了车"],
        ["万一着火车进不来", "存在严重隐患"],
    ),
    ("电动车楼道充电", 6, ["有人把电动车推进楼道充电", "电动车停在楼道里充电"], ["有火灾隐患", "很危险"]),
    ("飞线充电", 5, ["有人从楼上拉电线下来给电动车充电", "飞线充电挂在树上"], ["下雨天容易漏电", "很危险"]),
    ("违章搭建", 5, ["有住户在院子里违章搭建", "一楼住户私自扩建"], ["占用公共空间", "影响邻居采光"]),
    ("群租房", 4, ["一套房子住了十几个人", "房子隔成很多小间出租"], ["人员进出复杂", "有安全隐患"]),
    ("漏水纠纷", 5, ["楼上漏水到我家", "楼上卫生间渗水到楼下天花板"], ["找楼上不理", "家里墙面发霉"]),
    (
        "物业服务质量",
        4,
        ["物业不作为，卫生没人管", "物业服务差，报修没人来"],
        ["业主意见很大", "希望社区督促"],
    ),
    ("停车位纠纷", 4, ["有人占了我的固定车位", "小区车位被外来车占用"], ["多次沟通无果", "每天找不到位置"]),
    ("拖欠工资", 3, ["老板拖欠了三个月工资", "公司拖欠工资不给"], ["家里生活困难", "找老板找不到"]),
    ("独居老人探视", 4, ["独居老人需要定期探视", "老人一个人住，子女在外地"], ["身体不太好", "家属请求关注"]),
    ("道路积水", 3, ["下大雨道路积水很深", "路口积水没过脚踝"], ["车辆熄火", "行人过不去"]),
    ("地下室进水", 2, ["地下室进水了", "地下车库开始进水"], ["车要被淹", "很着急"]),
    ("流浪犬猫", 3, ["小区里流浪猫狗很多", "有流浪狗在小区追人"], ["孩子害怕", "到处翻垃圾"]),
    ("犬只未牵绳", 3, ["有人遛狗不牵绳", "大型犬在小区里乱跑"], ["吓到小孩", "有安全隐患"]),
    ("无证经营", 2, ["路边有家小店无证经营", "小作坊没有营业执照"], ["卫生条件差", "担心食品安全"]),
    ("食品安全", 2, ["买到过期食品", "小吃店卫生条件很差"], ["吃了拉肚子", "担心健康"]),
    ("政策咨询", 3, ["想咨询社保、医保相关政策", "咨询老年优待政策"], ["不知道找哪个部门", "希望有人解答"]),
]
DURATIONS = [
    "已经两天了",
    "持续一个多星期了",
    "今天早上发现的",
    "好几天了",
    "这个月已经第三次了",
    "昨天晚上开始",
]
REQUESTS = ["希望尽快处理", "请相关部门来看看", "多次反映未解决，请重视", "麻烦尽快派人处理", "希望给个答复"]
SPOTS = ["楼下", "门口", "旁边", "单元楼道", "北门", "南门附近", "东侧", "停车场"]
RESULTS = [
    "已到现场处置完毕，现场已恢复正常。",
    "已联系责任单位处理，经复查问题已解决。",
    "已约谈当事人并督促整改，现已整改到位。",
    "已安排人员清理，附处置后照片。",
    "已协调物业及相关方完成维修。",
    "经现场核实已处理，已电话告知反映人。",
]
REJECT_REASONS = [
    "不属于受理范围",
    "反映人信息不全，无法核实",
    "非本辖区事项，已告知反映人",
    "咨询类，已当场答复",
]
FAIL_NOTES = ["现场核查仍有遗留问题", "处置照片与现场不符", "问题未彻底解决，反映人仍有意见"]
EXPLANATIONS = [
    "已按政策规定处理，反映人诉求超出政策范围，已做好解释",
    "问题已解决，反映人对处理时长不满，已说明",
]


class _Event(NamedTuple):
    at: dt.datetime
    actor_id: int | None
    action: str
    from_status: str
    to_status: str
    note: str
    data: dict[str, Any]


@dataclass
class _Category:
    row: Category
    weight: float
    details: list[str]
    effects: list[str]
    assisting: list[OrgUnit] = field(default_factory=list)


@dataclass
class _Grid:
    region: Region
    polygon: Any
    prepared: Any
    bounds: tuple[float, float, float, float]
    buildings: list[Building]
    community: str


class _Context:
    """What the generator reads from the database once: categories, grids, buildings, people."""

    def __init__(self) -> None:
        leaves = list(
            Category.objects.filter(parent__isnull=False, active=True)
            .select_related("department")
            .prefetch_related("assisting")
            .order_by("code")
        )
        if not leaves:
            raise ValueError("权责清单为空，请先导入 / The responsibility list is empty: load it first")
        self.categories: list[_Category] = []
        for leaf in leaves:
            match = next((s for s in SCENARIOS if s[0] in leaf.name), None)
            weight, details, effects = (match[1], match[2], match[3]) if match else (1.0, [], [])
            self.categories.append(_Category(leaf, weight, details, effects))
        self.weights = [c.weight for c in self.categories]

        communities = dict(Region.objects.filter(level=Region.COMMUNITY).values_list("pk", "name"))
        by_grid: dict[int, list[Building]] = defaultdict(list)
        for b in Building.objects.order_by("code"):
            by_grid[b.grid_id].append(b)
        self.grids: list[_Grid] = []
        for g in Region.objects.filter(level=Region.GRID).exclude(boundary=None).order_by("code"):
            poly = shape(g.boundary)
            name = communities.get(g.parent_id or 0, "")
            self.grids.append(_Grid(g, poly, prep(poly), poly.bounds, by_grid.get(g.pk, []), name))
        if not self.grids:
            raise ValueError("没有网格，请先载入演示街道 / No grids: load the demo street first")
        roads = {b.address.removeprefix("拱墅区").split("路")[0] + "路" for b in Building.objects.all()}
        self.roads = sorted(r for r in roads if 2 <= len(r) <= 6) or ROADS

        users = list(User.objects.filter(is_active=True).order_by("id"))
        self.by_id = {u.pk: u for u in users}
        self.dispatcher = next((u for u in users if u.role == "dispatcher"), None)
        self.leader = next((u for u in users if u.role == "street_leader"), None)
        admin = next((u for u in users if u.is_superuser), None)
        self.dispatcher = self.dispatcher or self.leader or admin
        self.leader = self.leader or admin
        self.resident = next((u for u in users if u.role == "resident"), None)
        self.members: dict[int, list[User]] = defaultdict(list)
        # Everyone of a unit, volunteers included: any of them acts for its 联办 task (task_member).
        self.people: dict[int, list[User]] = defaultdict(list)
        for u in users:
            if u.org_unit_id:
                self.people[u.org_unit_id].append(u)
            if u.org_unit_id and u.role not in ("resident", "volunteer"):
                self.members[u.org_unit_id].append(u)
        workers = {u.pk for u in users if u.role == "grid_worker"}
        self.grid_workers: dict[int, list[User]] = defaultdict(list)
        for user_id, region_id in User.regions.through.objects.values_list("user_id", "region_id"):
            if user_id in workers:
                self.grid_workers[region_id].append(self.by_id[user_id])
        self.community_units = {
            u.region_id: u for u in OrgUnit.objects.filter(kind="community", active=True).order_by("id")
        }
        self.spatial = spatial.index()
        self._routes: dict[tuple[Any, ...], routing.Route] = {}
        self._supervisors: dict[int, User | None] = {}

    def route(self, cat: Category, grid: Region) -> routing.Route:
        """The real routing, asked once per distinct (rule, unit, grid) combination."""
        # A named unit that is not a grid or community unit is routed the same from every grid.
        named = cat.department if cat.department_id else None
        where = None if named is not None and named.kind not in ("grid", "community") else grid.pk
        helpers = tuple(u.pk for u in cat.assisting.all()) if cat.responsibility == "joint" else ()
        key = (cat.responsibility, cat.department_id, cat.assign_rule, where, helpers)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = routing.route(cat, grid)
        return found

    def supervisor(self, unit: OrgUnit | None) -> User | None:
        if unit is None:
            return self.leader
        if unit.pk not in self._supervisors:
            self._supervisors[unit.pk] = supervisors_of(unit).first() or self.leader
        return self._supervisors[unit.pk]

    def member(self, unit: OrgUnit | None, rng: random.Random) -> User | None:
        people = self.members.get(unit.pk, []) if unit else []
        return people[0] if people else None


class _Sim:
    """One case walking the transition table in memory, with what the minute sweep would add."""

    def __init__(self, case: Case, now: dt.datetime, grace: dt.timedelta) -> None:
        self.case = case
        self.now = now
        self.grace = grace
        self.events: list[_Event] = []
        self.tasks: list[CaseTask] = []
        self.last = case.reported_at
        self.stopped = False
        self.hold: str = ""

    @property
    def has_assist(self) -> bool:
        return any(t.role == "assist" for t in self.tasks)

    def step(
        self,
        action: str,
        at: dt.datetime,
        actor: Any,
        change: Callable[[dt.datetime, dict[str, Any]], str | None] | None = None,
        note: str = "",
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Apply `action` at `at` unless that is after now (then the case stops here for good)."""
        if self.stopped:
            return False
        at = max(at, self.last)
        if at > self.now:
            self.stopped = True
            return False
        c = self.case
        self._sweep(at)
        row = transitions.find(c.status, action)
        assert row is not None, (c.status, action)
        info: dict[str, Any] = dict(data or {})
        target = (change(at, info) if change else None) or row.targets[0]
        assert target in row.targets, (action, target)
        before = c.status
        c.status = target
        column = TIME_COLUMNS.get(target)
        if target != before and column and getattr(c, column) is None:
            setattr(c, column, at)
        self._refresh()
        self._event(at, actor, action, before, target, note, info)
        self.last = at
        if self.hold and target == self.hold:
            self.stopped = True  # held open on purpose: the next step would come after now
        return True

    def _event(self, at: dt.datetime, actor: Any, action: str, a: str, b: str, note: str, data: dict) -> None:
        self.events.append(_Event(at, actor.pk if actor is not None else None, action, a, b, note, data))

    def _refresh(self) -> None:
        c = self.case
        stage, due = c.stage, c.stage_due_at
        sla.refresh(c)
        # sla._stage_applies asks the database whether assisting tasks exist; these rows do not
        # exist yet, so the reinforcement stage (联办 with a reinforce limit) is computed here.
        if (
            self.has_assist
            and c.status in transitions.OPEN
            and c.sla_start_at is not None
            and c.reinforced_at is None
            and sla.limit_of(c, "reinforce") is not None
            and c.signed_at is not None
            and (c.onsite_at is not None or sla.limit_of(c, "onsite") is None)
        ):
            amount, unit = sla.limit_of(c, "reinforce")  # type: ignore[misc]
            start = c.sla_start_at + dt.timedelta(seconds=c.paused_seconds)
            c.stage = "reinforce"
            c.stage_warn_at = worktime.add(start, amount * sla.WARN_FRACTION, unit)
            c.stage_due_at = worktime.add(start, amount, unit)
            if stage != "reinforce" or due != c.stage_due_at:
                c.sla_level, c.escalate_at = "green", None

    def _sweep(self, until: dt.datetime) -> None:
        """What `sla.sweep` (every minute) would have done before `until`."""
        c = self.case
        if c.status not in transitions.OPEN or c.stage_due_at is None or c.stage_warn_at is None:
            return
        if c.sla_level == "green" and c.stage_warn_at < until and c.stage_warn_at < c.stage_due_at:
            self._mark("yellow", c.stage_warn_at)
        if c.sla_level in ("green", "yellow") and c.stage_due_at < until:
            self._mark("red", c.stage_due_at)
        while c.escalate_at is not None and c.escalate_at < until:
            at = max(c.escalate_at, self.last)
            if c.escalation_level >= sla.MAX_ESCALATION:
                c.escalate_at = None
                break
            c.escalation_level += 1
            c.escalate_at = at + self.grace if c.escalation_level < sla.MAX_ESCALATION else None
            self._refresh()
            self._event(
                at,
                None,
                "escalate",
                c.status,
                c.status,
                "超时未处置，系统自动升级",
                {"level": c.escalation_level},
            )
            self.last = max(self.last, at)

    def _mark(self, level: str, at: dt.datetime) -> None:
        # A threshold that already lay in the past when the stage began is seen by the next sweep.
        at = max(at, self.last)
        c = self.case
        before, c.sla_level = c.sla_level, level
        if level == "red":
            if c.stage == "handle":
                c.overdue = True
            if c.escalation_level < sla.MAX_ESCALATION and c.stage_due_at is not None:
                c.escalate_at = c.stage_due_at + self.grace
        due = c.stage_due_at.isoformat() if c.stage_due_at else None
        self._event(
            at,
            None,
            f"sla_{level}",
            c.status,
            c.status,
            "",
            {"stage": c.stage, "from_level": before, "due_at": due},
        )
        self.last = max(self.last, at)

    def finish_sweep(self) -> None:
        self._sweep(self.now)


class Generator:
    """Builds the history in memory (`build`) and writes it (`write`)."""

    def __init__(
        self, seed: int = 7, months: int = 6, count: int = 20000, now: dt.datetime | None = None
    ) -> None:
        self.seed, self.months, self.count = seed, months, count
        self.now = now or clock.now()
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.ctx = _Context()
        self.grace = sla.grace()
        self.sims: list[_Sim] = []
        self.merge_into: dict[int, int] = {}  # index of merged case → index of the case it joins
        self.sources: list[str] = []
        self.numbers: Counter[str] = Counter()
        self.external: Counter[str] = Counter()

    # --- small helpers ---------------------------------------------------------------------------
    def wt(self, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
        return worktime.add(start, max(amount, 0.0), unit)

    def minutes(self, start: dt.datetime, low: float, high: float) -> dt.datetime:
        return start + dt.timedelta(minutes=self.rng.uniform(low, high))

    def work_hours(self, start: dt.datetime, low: float, high: float) -> dt.datetime:
        return self.wt(start, self.rng.uniform(low, high), "work_hours")

    def pick_source(self) -> tuple[str, str]:
        r, acc = self.rng.random(), 0.0
        for label, channel, share in SOURCES:
            acc += share
            if r < acc:
                return label, channel
        return SOURCES[-1][0], SOURCES[-1][1]

    def reported_moment(self, source: str) -> dt.datetime:
        span = dt.timedelta(days=30.4 * self.months)
        day = (self.now - span + dt.timedelta(seconds=self.rng.uniform(0, span.total_seconds()))).astimezone(
            timezone.get_current_timezone()
        )
        if source == "patrol":
            hour = self.rng.uniform(8.5, 17.5)
        elif source == "camera":
            hour = self.rng.uniform(0, 24)
        else:
            hour = (
                self.rng.choice([7, 8, 9, 9, 10, 10, 11, 11, 13, 14, 14, 15, 15, 16, 17, 18, 19, 20, 21])
                + self.rng.random()
            )
        moment = day.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(hours=hour)
        return min(moment, self.now - dt.timedelta(minutes=1))

    def place(self) -> tuple[_Grid, float, float, str, str]:
        """A grid, a point inside it, the short place name (title) and the address."""
        rng = self.rng
        while True:
            g = rng.choice(self.ctx.grids)
            if g.buildings and rng.random() < 0.7:
                b = rng.choice(g.buildings)
                x, y = b.lng + rng.uniform(-0.00015, 0.00015), b.lat + rng.uniform(-0.00015, 0.00015)
                spot = rng.choice(SPOTS)
                where, address = f"{b.name}{spot}", f"{b.address}（{b.name}{spot}）"
            else:
                minx, miny, maxx, maxy = g.bounds
                x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                road = rng.choice(self.ctx.roads)
                if rng.random() < 0.5:
                    where = f"{road}{rng.randint(1, 399)}号附近"
                else:
                    where = f"{road}与{rng.choice(self.ctx.roads)}交叉口"
                address = f"拱墅区{where}"
            x, y = round(x, 6), round(y, 6)
            if not g.prepared.contains(Point(x, y)):
                continue
            hit = self.ctx.spatial.lookup(x, y)
            if hit is not None and hit.grid_id == g.region.pk:
                return g, x, y, where, address

    def texts(self, cat: _Category, source: str, where: str) -> tuple[str, str]:
        rng = self.rng
        name = cat.row.name
        if cat.details:
            detail, effect = rng.choice(cat.details), rng.choice(cat.effects)
        else:
            words = list(cat.row.keywords or [name])
            picked = rng.sample(words, k=min(2, len(words)))
            detail = f"发现{name}问题，现场{'、'.join(picked)}情况明显"
            effect = rng.choice(["影响周边居民", "存在安全隐患", "群众意见较大", "影响正常生活"])
        if source == "camera":
            return (
                f"{where}{name}（视频AI）",
                f"{where}摄像头识别到疑似{name}，置信度0.{rng.randint(82, 98)}，请核实处置。",
            )
        if source == "patrol":
            return f"{where}{name}", f"网格员巡查发现：{where}{detail}，{effect}，已拍照上报。"
        prefix = {"12345": "市民来电反映：", "信访": "信访人反映：", "web": "居民在线反映："}.get(
            source, "来信反映："
        )
        body = f"{prefix}{where}{detail}，{rng.choice(DURATIONS)}，{effect}，{rng.choice(REQUESTS)}。"
        return f"{where}{name}", body

    # --- one case --------------------------------------------------------------------------------
    def build(self) -> list[_Sim]:
        plans = []
        for _ in range(self.count):
            source, channel = self.pick_source()
            plans.append((self.reported_moment(source), source, channel))
        plans.sort(key=lambda p: p[0])
        recent: dict[int, list[int]] = defaultdict(list)  # category id → indexes of mergeable cases
        for index, (reported, source, channel) in enumerate(plans):
            sim = self.one(index, reported, source, channel, recent)
            self.sims.append(sim)
            self.sources.append(source)
        return self.sims

    def one(
        self, index: int, reported: dt.datetime, source: str, channel: str, recent: dict[int, list[int]]
    ) -> _Sim:
        rng, ctx = self.rng, self.ctx
        cat = rng.choices(ctx.categories, weights=ctx.weights)[0]
        grid, x, y, where, address = self.place()
        title, description = self.texts(cat, source, where)
        local = reported.astimezone(timezone.get_current_timezone())
        day = local.strftime("%Y%m%d")
        self.numbers[day] += 1
        external = ""
        if source in EXTERNAL_PREFIX:
            self.external[source] += 1
            external = f"{EXTERNAL_PREFIX[source]}{day}{self.external[source]:06d}"
        case = Case(
            number=f"ZZ{day}{self.numbers[day]:04d}",
            title=title[:200],
            description=description,
            category=cat.row,
            status="",
            channel=channel,
            external_id=external,
            lng=x,
            lat=y,
            address=address[:200],
            grid=grid.region,
            rate_token=secrets.token_urlsafe(18),  # a real secret: not part of what the seed fixes
            urgent=cat.row.urgent,
            reported_at=reported,
            area_path=grid.region.path,
            created_at=reported,
        )
        has_reporter = source not in ("patrol", "camera")
        if has_reporter:
            case.reporter_name = self.fake.name()
            case.set_sensitive(
                "reporter_phone", rng.choice(MOBILE_PREFIXES) + f"{rng.randint(0, 99999999):08d}"
            )
            if source == "web" and ctx.resident is not None and rng.random() < 0.02:
                case.reporter_user = ctx.resident
        sim = _Sim(case, self.now, self.grace)
        if self.now - reported < dt.timedelta(days=HOLD_DAYS) and rng.random() < P_HOLD:
            sim.hold = rng.choice(HOLD_STATES)
        self.walk(sim, index, cat, grid, source, has_reporter, recent)
        if not sim.stopped or sim.case.status in transitions.OPEN:
            sim.finish_sweep()
        case.created_by_id = sim.events[0].actor_id if sim.events else None
        case.updated_by_id = sim.events[-1].actor_id if sim.events else None
        case.updated_at = max(sim.last, reported)
        return sim

    def walk(
        self,
        sim: _Sim,
        index: int,
        cat: _Category,
        grid: _Grid,
        source: str,
        has_reporter: bool,
        recent: dict[int, list[int]],
    ) -> None:
        rng, ctx, c = self.rng, self.ctx, sim.case
        dispatcher = ctx.dispatcher
        t = c.reported_at
        route = ctx.route(cat.row, grid.region)
        hold = sim.hold
        via_queue = source in ("市长信箱", "居民信箱", "信访", "web", "camera") or hold == "reported"
        manual = (
            source == "信访"
            or (source == "12345" and rng.random() < P_UNCERTAIN_HOTLINE)
            or hold == "registered"
        )
        if (manual and source == "12345") or (hold == "registered" and not via_queue):
            c.category_certain = False  # the hotline could not tell the category: a person decides

        # Intake: 受理 then 立案 through the queue, or 立案 at once.
        if via_queue:
            reporter_actor = dispatcher if source == "信访" else None
            sim.step(
                "report",
                t,
                reporter_actor,
                data={"suggested_unit": route.unit.code if route.unit else None, "source": SOURCE_ZH[source]},
            )
            if hold == "reported":
                sim.stopped = True
                return
            wait = self.work_hours(t, 0.2, 6) if source != "camera" else self.minutes(t, 2, 30)
            fate = rng.random()
            if fate < P_CANCEL_OF_REPORTED:
                sim.step("reject", wait, dispatcher, note=rng.choice(REJECT_REASONS), data={"reason": "注销"})
                return
            candidates = [
                i
                for i in recent.get(cat.row.pk, [])[-30:]
                if self.sims[i].case.status not in ("cancelled", "merged", "")
            ]
            if fate < P_CANCEL_OF_REPORTED + P_MERGE_OF_REPORTED and candidates:
                target = rng.choice(candidates)
                if sim.step(
                    "merge",
                    wait,
                    dispatcher,
                    data={"into": self.sims[target].case.number},
                    note="重复反映，合并处理",
                ):
                    self.merge_into[index] = target
                return
            sim.step("register", wait, dispatcher)
            t = wait
        else:
            actor = dispatcher
            if source == "patrol":
                workers = ctx.grid_workers.get(grid.region.pk) or []
                actor = workers[0] if workers else dispatcher
            data = {
                "suggested_unit": route.unit.code if route.unit else None,
                "why": route.why_en,
                "source": SOURCE_ZH[source],
            }
            sim.step("register", t, actor, data=data)
        recent[cat.row.pk].append(index)
        if sim.stopped or (hold == "registered" and c.status == "registered"):
            sim.stopped = True
            return

        # 派遣: automatic when the route is certain, else by the dispatcher.
        auto = not manual and route.certain and route.unit is not None
        when = t if auto else self.minutes(t, 5, 90)
        self.dispatch(
            sim,
            when,
            None if auto else dispatcher,
            route.unit,
            route.assignee,
            route.assisting,
            "dispatch",
            auto,
        )
        if sim.stopped:
            return

        sign_limit = sla.limit_of(c, "sign") or (1.0, "work_hours")
        if hold == "returned" or rng.random() < P_RETURN:
            at = self.wt(c.dispatched_at, sign_limit[0] * rng.uniform(0.1, 0.8), sign_limit[1])  # type: ignore[arg-type]
            reason = rng.choice(RETURN_REASONS)
            handler = c.assignee or ctx.member(c.unit, rng)

            def returned(now: dt.datetime, info: dict[str, Any]) -> None:
                c.return_reason, c.returned_at = reason, now
                info["reason"], info["unit"] = reason, c.unit.code if c.unit else None
                sim.tasks = []

            sim.step("return", at, handler, returned, note=f"{reason}，请重新派遣")
            if sim.stopped or hold == "returned":
                sim.stopped = True
                return
            unit, person, assisting = self.other_unit(cat, grid, route)
            self.dispatch(
                sim,
                self.work_hours(sim.last, 0.2, 3),
                dispatcher,
                unit,
                person,
                assisting,
                "redispatch",
                False,
            )
            if sim.stopped:
                return
        if hold == "dispatched":
            sim.stopped = True
            return
        self.handle(sim, cat, has_reporter)

    def other_unit(
        self, cat: _Category, grid: _Grid, route: routing.Route
    ) -> tuple[OrgUnit | None, Any, list[OrgUnit]]:
        """Where a returned case goes next: the community for a grid's case, else the territorial unit."""
        ctx = self.ctx
        unit: OrgUnit | None
        if route.unit is not None and route.unit.kind == "grid":
            unit = ctx.community_units.get(grid.region.parent_id) or route.unit
        else:
            unit = (
                routing.territorial_unit(grid.region)
                if route.unit is None or route.unit.kind != "grid"
                else route.unit
            )
            unit = unit or route.unit
        if unit is None:
            unit = route.unit
        person = route.assignee if unit == route.unit else (ctx.member(unit, self.rng) or route.assignee)
        assisting = (
            [u for u in route.assisting if unit is None or u.pk != unit.pk]
            if cat.row.responsibility == "joint"
            else []
        )
        return unit, person, assisting

    def dispatch(
        self,
        sim: _Sim,
        at: dt.datetime,
        actor: Any,
        unit: Any,
        person: Any,
        assisting: list[OrgUnit],
        action: str,
        auto: bool,
    ) -> None:
        c = sim.case
        ctx = self.ctx

        def change(now: dt.datetime, info: dict[str, Any]) -> None:
            c.unit, c.assignee = unit, person
            c.dispatched_at = now
            c.sla_start_at = now
            c.paused_seconds = 0
            c.signed_at = c.onsite_at = c.reinforced_at = c.followed_up_at = None
            c.return_reason = ""
            sim.tasks = []
            if assisting and unit is not None:
                sim.tasks.append(CaseTask(unit=unit, role="lead", assignee=person))
                for other in assisting:
                    helper = ctx.member(other, self.rng)
                    if helper is None and not ctx.people.get(other.pk):
                        continue  # a unit with nobody in it could never finish its part
                    sim.tasks.append(CaseTask(unit=other, role="assist", assignee=helper))
            info.update(
                unit=unit.code if unit else None,
                assignee=person.username if person else None,
                assisting=[u.code for u in assisting],
                auto=auto,
            )

        if unit is None:  # nobody to send it to: it waits in the dispatcher's queue
            sim.stopped = True
            return
        sim.step(action, at, actor, change)

    def handle(self, sim: _Sim, cat: _Category, has_reporter: bool) -> None:
        rng, ctx, c = self.rng, self.ctx, sim.case
        hold = sim.hold
        handler = c.assignee or ctx.member(c.unit, rng)
        supervisor = ctx.supervisor(c.unit)
        dispatcher = ctx.dispatcher
        sign_limit = sla.limit_of(c, "sign") or (1.0, "work_hours")
        late = rng.random() < P_LATE_SIGN
        u = rng.uniform(1.05, 2.0) if late else rng.uniform(0.05, 0.7)
        at = self.wt(c.dispatched_at, sign_limit[0] * u, sign_limit[1])  # type: ignore[arg-type]

        def signed(now: dt.datetime, info: dict[str, Any]) -> None:
            if c.assignee is None:
                c.assignee = handler
            c.signed_at = now
            for task in sim.tasks:
                if task.role == "lead":
                    task.status, task.signed_at, task.assignee = "signed", now, c.assignee

        if not sim.step("sign", at, handler, signed):
            return
        handler = c.assignee
        if hold == "handling":
            sim.stopped = True
            return

        limit = sla.limit_of(c, "handle") or (3.0, "work_days")
        overdue = rng.random() < P_OVERDUE
        finish_at = self.finish_time(c, limit, overdue)

        # Things during handling, in time order (only those before the planned finish).
        start = _clock_start(c)
        during: list[tuple[dt.datetime, str, Any]] = []
        onsite = sla.limit_of(c, "onsite")
        if onsite:
            during.append((self.wt(start, onsite[0] * rng.uniform(0.3, 0.95), onsite[1]), "arrive", None))
        for task in sim.tasks:
            if task.role == "assist":
                reinforce = sla.limit_of(c, "reinforce")
                when = (
                    self.wt(start, reinforce[0] * rng.uniform(0.3, 0.95), reinforce[1])
                    if reinforce
                    else self.minutes(c.signed_at or sim.last, 10, 120)
                )
                during.append((when, "arrive_assist", task))
        followup = sla.limit_of(c, "followup")
        if followup:
            during.append(
                (self.wt(start, followup[0] * rng.uniform(0.3, 0.9), followup[1]), "followup", None)
            )
        for when, what, task in sorted(during, key=lambda d: d[0]):
            if when >= finish_at:
                continue
            if what == "arrive":
                self.arrive(sim, when, handler, None)
            elif what == "arrive_assist":
                self.arrive(sim, when, self.task_actor(task), task)
            else:
                sim.step(
                    "followup",
                    when,
                    handler,
                    lambda now, info: setattr(c, "followed_up_at", c.followed_up_at or now),
                    note="已电话跟进，处置进展正常",
                )
            if sim.stopped:
                return

        if hold == "deferred" or rng.random() < P_DEFER:
            at = max(sim.last, self.wt(c.sla_start_at, limit[0] * rng.uniform(0.1, 0.5), limit[1]))  # type: ignore[arg-type]
            sim.step(
                "defer",
                at,
                supervisor,
                lambda now, info: setattr(c, "deferred_at", now),
                note="需等待产权单位答复，暂缓办理",
            )
            if sim.stopped or hold == "deferred":
                sim.stopped = True
                return
            back = sim.last + dt.timedelta(days=rng.uniform(2, 10))

            def resume(now: dt.datetime, info: dict[str, Any]) -> None:
                paused = int((now - (c.deferred_at or now)).total_seconds())
                c.paused_seconds += max(paused, 0)
                c.deferred_at = None
                info["paused_seconds"] = paused

            if not sim.step("resume", back, supervisor, resume, note="条件具备，恢复办理"):
                return
            finish_at = self.finish_time(c, limit, overdue)

        if hold == "extension_pending" or rng.random() < P_EXTEND:
            due = c.due_at or finish_at
            at = max(
                sim.last,
                self.wt(_clock_start(c), limit[0] * rng.uniform(0.5, 0.9), limit[1]),
            )
            amount, unit = (
                (limit[0], limit[1])
                if limit[1] == "calendar_minutes"
                else (float(rng.choice([1, 2, 3, 5])), "work_days")
            )
            ask = {
                "amount": amount,
                "unit": unit,
                "reason": "需协调多方，申请延期",
                "by": handler.pk if handler else None,
                "late": at >= due,
            }

            def requested(now: dt.datetime, info: dict[str, Any]) -> None:
                c.extension_request = dict(ask)
                info.update(ask)

            sim.step("request_extension", at, handler, requested, note=str(ask["reason"]))
            if sim.stopped or hold == "extension_pending":
                sim.stopped = True
                return
            decided = self.work_hours(sim.last, 0.5, 8)
            if rng.random() < P_DENY_OF_EXTEND:

                def denied(now: dt.datetime, info: dict[str, Any]) -> None:
                    info["request"], c.extension_request = c.extension_request, None

                sim.step("deny_extension", decided, supervisor, denied, note="理由不充分，请按期办结")
            else:

                def approved(now: dt.datetime, info: dict[str, Any]) -> None:
                    c.extensions = [*(c.extensions or []), [amount, unit]]
                    c.extension_count += 1
                    c.extension_request = None
                    info.update({"amount": amount, "unit": unit, "late": ask["late"]})

                if sim.step("approve_extension", decided, supervisor, approved, note="同意延期"):
                    new_due = c.due_at or finish_at
                    finish_at = (
                        self.wt(due, amount * rng.uniform(0.2, 0.95), unit)
                        if not overdue
                        else self.wt(new_due, limit[0] * rng.uniform(0.1, 0.6), limit[1])
                    )
            if sim.stopped:
                return

        self.finish(sim, finish_at, handler)
        if sim.stopped or hold == "finished":
            sim.stopped = True
            return
        self.verify_and_visit(sim, cat, has_reporter, handler, supervisor, dispatcher, limit)

    def close(self, c: Case, now: dt.datetime) -> None:
        c.verified_at = c.closed_at = now

    def finish_time(self, c: Case, limit: tuple[float, str], overdue: bool) -> dt.datetime:
        start = _clock_start(c)
        share = self.rng.uniform(1.1, 2.0) if overdue else self.rng.betavariate(2.2, 2.0) * 0.92 + 0.03
        return self.wt(start, limit[0] * share, limit[1])

    def task_actor(self, task: CaseTask) -> Any:
        """Who acts for a 联办 task: its assignee, else the first person of its unit."""
        return task.assignee or self.ctx.people[task.unit.pk][0]

    def arrive(self, sim: _Sim, at: dt.datetime, actor: Any, task: CaseTask | None) -> None:
        c = sim.case

        def change(now: dt.datetime, info: dict[str, Any]) -> None:
            if task is None:
                c.onsite_at = c.onsite_at or now
                info["role"] = "lead"
            else:
                if task.signed_at is None:
                    task.status, task.signed_at = "signed", now
                info["role"], info["unit"] = "assist", task.unit.code
            assists = [t for t in sim.tasks if t.role == "assist"]
            if assists and all(t.signed_at is not None for t in assists):
                c.reinforced_at = c.reinforced_at or now

        sim.step("arrive", at, actor, change, note="已到达现场", data=None)

    def finish(self, sim: _Sim, at: dt.datetime, handler: Any) -> None:
        rng, c = self.rng, sim.case
        for task in sim.tasks:
            if task.role == "assist" and task.status != "done":
                when = max(sim.last, at - dt.timedelta(minutes=rng.uniform(5, 90)))
                text = "协办部分已完成"

                def done(
                    now: dt.datetime, info: dict[str, Any], task: CaseTask = task, text: str = text
                ) -> None:
                    task.status, task.finished_at, task.result = "done", now, text
                    task.signed_at = task.signed_at or now
                    info["unit"] = task.unit.code

                if not sim.step("finish_task", when, self.task_actor(task), done, note=text):
                    return
        result = rng.choice(RESULTS)

        def finished(now: dt.datetime, info: dict[str, Any]) -> None:
            c.result = result
            c.finished_at = now
            c.extension_request = None
            c.overdue = c.overdue or bool(c.due_at and now > c.due_at)
            for task in sim.tasks:
                if task.role == "lead":
                    task.status, task.finished_at = "done", now
            info["overdue"] = c.overdue

        sim.step("finish", at, handler, finished, note=result)

    def rework(self, c: Case, sim: _Sim, now: dt.datetime) -> None:
        c.rework_count += 1
        c.finished_at = c.verified_at = c.closed_at = None
        c.sla_start_at = now
        c.paused_seconds = 0
        c.extensions = []
        c.signed_at = c.signed_at or now
        c.followed_up_at = None
        for task in sim.tasks:
            if task.role == "lead":
                task.status, task.finished_at = "signed", None

    def verify_and_visit(
        self,
        sim: _Sim,
        cat: _Category,
        has_reporter: bool,
        handler: Any,
        supervisor: Any,
        dispatcher: Any,
        limit: tuple[float, str],
    ) -> None:
        rng, c = self.rng, sim.case
        hold = sim.hold
        for attempt in range(3):
            at = self.work_hours(sim.last, 0.3, 8)
            fail = attempt == 0 and rng.random() < P_VERIFY_FAIL

            def verified(now: dt.datetime, info: dict[str, Any], fail: bool = fail) -> None:
                c.verified_at = now
                if fail:
                    self.rework(c, sim, now)
                else:
                    c.closed_at = now

            action = "verify_fail" if fail else "verify_pass"
            if not sim.step(
                action,
                at,
                dispatcher,
                verified,
                note=rng.choice(FAIL_NOTES) if fail else "核查通过，准予结案",
            ):
                return
            if not fail:
                break
            self.finish(sim, self.finish_time(c, limit, False), handler)
            if sim.stopped:
                return
        if hold == "closed" or not has_reporter:
            if hold == "closed":
                sim.stopped = True
            return
        for visit in range(2):
            at = self.wt(sim.last, rng.uniform(0.2, 2), "work_days")
            words, weights = zip(*SATISFACTION_WEIGHTS, strict=True)
            mood = (
                "unsatisfied"
                if hold == "unsatisfied" and visit == 0
                else rng.choices(words, weights=weights)[0]
            )
            if visit == 1 and mood == "unsatisfied":
                mood = "basic"
            by_link = rng.random() < P_VISIT_BY_LINK

            def visited(
                now: dt.datetime, info: dict[str, Any], mood: str = mood, by_link: bool = by_link
            ) -> str:
                c.satisfaction, c.visited_at = mood, now
                info["satisfaction"], info["by"] = mood, "reporter" if by_link else "staff"
                return "unsatisfied" if mood == "unsatisfied" else "visited"

            if not sim.step(
                "visit", at, None if by_link else dispatcher, visited, note="电话回访" if not by_link else ""
            ):
                return
            if mood != "unsatisfied":
                return
            if hold == "unsatisfied":
                sim.stopped = True
                return
            later = self.wt(sim.last, rng.uniform(0.2, 1.5), "work_days")
            if rng.random() < P_REOPEN_OF_UNSATISFIED:

                def reopened(now: dt.datetime, info: dict[str, Any]) -> None:
                    self.rework(c, sim, now)
                    c.visited_at = None

                if not sim.step("reopen", later, supervisor, reopened, note="回访不满意，重新办理"):
                    return
                self.finish(sim, self.finish_time(c, limit, False), handler)
                if sim.stopped:
                    return
                at = self.work_hours(sim.last, 0.3, 8)
                if not sim.step(
                    "verify_pass",
                    at,
                    dispatcher,
                    lambda now, info: self.close(c, now),
                    note="核查通过，准予结案",
                ):
                    return
            else:
                sim.step("close_with_explanation", later, supervisor, note=rng.choice(EXPLANATIONS))
                return

    # --- writing ---------------------------------------------------------------------------------
    @transaction.atomic
    def write(self) -> dict[str, int]:
        """Cases by bulk_create (their keys are needed), timeline events by one prepared
        executemany per batch: 150,000 model instances would cost more than the INSERTs."""
        counts = {"cases": 0, "events": 0, "tasks": 0}
        meta = CaseEvent._meta
        columns = ["case", "at", "actor", "action", "from_status", "to_status", "note", "photos", "data"]
        columns.append("request_id")
        column_of = {f.name: str(f.column) for f in meta.concrete_fields}
        names = ", ".join(connection.ops.quote_name(column_of[c]) for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        # Identifiers come from the model, every value is a parameter.
        insert_event = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({names}) VALUES ({marks})"  # noqa: S608
        adapt_time = connection.ops.adapt_datetimefield_value
        data_field = meta.get_field("data")
        empty_list = meta.get_field("photos").get_db_prep_save([], connection)

        def prep_data(value: dict[str, Any]) -> Any:
            return data_field.get_db_prep_save(value, connection)

        for start in range(0, len(self.sims), BATCH):
            chunk = self.sims[start : start + BATCH]
            created = Case.objects.bulk_create([s.case for s in chunk], batch_size=BATCH)
            events: list[tuple[Any, ...]] = []
            tasks = []
            for sim, case in zip(chunk, created, strict=True):
                for e in sim.events:
                    events.append(
                        (
                            case.pk,
                            adapt_time(e.at),
                            e.actor_id,
                            e.action,
                            e.from_status,
                            e.to_status,
                            e.note,
                            empty_list,
                            prep_data(e.data),
                            "",
                        )
                    )
                for task in sim.tasks:
                    task.case = case
                    tasks.append(task)
            with connection.cursor() as cursor:
                cursor.executemany(insert_event, events)
            CaseTask.objects.bulk_create(tasks, batch_size=BATCH)
            counts["cases"] += len(created)
            counts["events"] += len(events)
            counts["tasks"] += len(tasks)
        merged = []
        for index, target in self.merge_into.items():
            case = self.sims[index].case
            case.duplicate_of_id = self.sims[target].case.pk
            merged.append(case)
        Case.objects.bulk_update(merged, ["duplicate_of"], batch_size=BATCH)
        # Case numbers handed out later must continue after the generated ones.
        existing = {s.day: s for s in CaseSequence.objects.filter(day__in=list(self.numbers))}
        fresh = []
        for day, last in self.numbers.items():
            row = existing.get(day)
            if row is None:
                fresh.append(CaseSequence(day=day, last=last))
            elif row.last < last:
                row.last = last
                row.save(update_fields=["last"])
        CaseSequence.objects.bulk_create(fresh, batch_size=BATCH)
        # One summary change-log row, like the demo street's registries (not 20,000 "created").
        street = Region.objects.filter(level=Region.STREET).order_by("id").first()
        ChangeLogEntry.objects.create(
            content_type_id=_case_type_id(),
            object_id="*",
            object_repr=f"演示案件历史 {counts['cases']} 件",
            action="import",
            after={"seed": self.seed, "months": self.months, **counts},
            area_path=street.path if street else "",
        )
        return counts


def _clock_start(c: Case) -> dt.datetime:
    """Where the case's deadlines count from: the SLA start shifted by the time spent deferred."""
    assert c.sla_start_at is not None
    return c.sla_start_at + dt.timedelta(seconds=c.paused_seconds)


def _case_type_id() -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(Case).pk


def generate(
    seed: int = 7, months: int = 6, count: int = 20000, now: dt.datetime | None = None
) -> tuple[Generator, dict[str, int]]:
    """Build and write the history; returns the generator (for its shares) and the row counts."""
    gen = Generator(seed=seed, months=months, count=count, now=now)
    gen.build()
    return gen, gen.write()


def shares(gen: Generator) -> dict[str, Any]:
    """Shares of the generated history, for the command's summary and the docs."""
    cases = [s.case for s in gen.sims]
    n = len(cases) or 1
    actions = Counter(e.action for s in gen.sims for e in s.events)
    touched = {
        a: sum(1 for s in gen.sims if any(e.action == a for e in s.events))
        for a in ("return", "verify_fail", "reopen", "approve_extension", "defer", "request_extension")
    }
    return {
        "status": Counter(c.status for c in cases),
        "source": Counter(gen.sources),
        "overdue": sum(c.overdue for c in cases) / n,
        "returned": touched["return"] / n,
        "reworked": sum(1 for c in cases if c.rework_count) / n,
        "extended": touched["approve_extension"] / n,
        "deferred": touched["defer"] / n,
        "satisfaction": Counter(c.satisfaction for c in cases if c.satisfaction),
        "sla_open": Counter(c.sla_level for c in cases if c.status in transitions.OPEN),
        "actions": actions,
    }
