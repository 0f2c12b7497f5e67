"""The documented demo accounts: one per role, plus the superuser. README.md and docs/ list the same."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_URL = "http://127.0.0.1:8000/"
# Every other demo staff account (the other grid workers, community workers, departments) uses this.
SHARED_PASSWORD = "zhizhi-demo"  # noqa: S105 - a published demo password, not a secret


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str  # orgs.User.role code ("" for the superuser)
    role_zh: str
    scope_zh: str
    scope_en: str


DEMO_LOGINS: list[DemoLogin] = [
    DemoLogin("admin", "admin123", "", "系统管理员", "全部（超级用户）", "everything (superuser)"),
    DemoLogin("leader", "leader123", "street_leader", "街道领导", "小河街道全街道", "the whole street"),
    DemoLogin(
        "dispatcher", "dispatcher123", "dispatcher", "指挥中心坐席", "小河街道全街道", "the whole street"
    ),
    DemoLogin(
        "qyfzb",
        "qyfzb123",
        "dept_staff",
        "科室工作人员（区域发展办）",
        "全街道企业、楼幢",
        "enterprises and buildings of the street",
    ),
    DemoLogin(
        "ggfwb",
        "ggfwb123",
        "dept_staff",
        "科室工作人员（公共服务办）",
        "全街道居民与关怀对象",
        "residents and people of special care",
    ),
    DemoLogin(
        "community01",
        "community123",
        "community_worker",
        "社区工作者",
        "塘河新村社区",
        "塘河新村 community",
    ),
    DemoLogin(
        "grid01",
        "grid123",
        "grid_worker",
        "网格员",
        "塘河新村社区第1网格",
        "grid 1 of 塘河新村 community",
    ),
    DemoLogin("volunteer", "volunteer123", "volunteer", "志愿者", "全街道网格（只读）", "the street's grids"),
    DemoLogin("resident", "resident123", "resident", "居民", "无登记数据权限", "no registry access"),
]


def password_for(username: str) -> str:
    for login in DEMO_LOGINS:
        if login.username == username:
            return login.password
    return SHARED_PASSWORD
