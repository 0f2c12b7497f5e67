"""Choice labels of the registry models, marked for translation.

Model choices are written in Chinese (the msgid language); pages pass them through gettext so the
English catalogue (zhizhi/locale/en) can translate them. Listing them here lets `makemessages`
find them. A label missing here is simply shown in Chinese.
"""

from django.utils.translation import gettext_noop as _

CHOICE_LABELS = [
    # change log actions
    _("新增"), _("修改"), _("删除"), _("导入"),
    # region levels, building kinds, org unit kinds
    _("区"), _("街道"), _("社区"), _("网格"),
    _("住宅"), _("商业"), _("办公"), _("混合"), _("公共"),
    _("街道科室"), _("指挥中心"), _("职能部门"), _("志愿者队伍"),
    # roles
    _("街道领导"), _("指挥中心坐席"), _("科室工作人员"), _("社区工作者"), _("网格员"), _("志愿者"), _("居民"),
    # houses and people
    _("自住"), _("出租"), _("商用"), _("空置"), _("男"), _("女"),
    _("户籍"), _("常住"), _("流动"), _("境外"), _("在册"), _("迁出"), _("死亡"),
    _("户主"), _("家庭成员"), _("租户"), _("借住"),
    # care tags and their sources
    _("孤寡"), _("独居"), _("残疾"), _("高龄"), _("卧床"), _("低保"), _("特困"), _("优抚"), _("退役军人"),
    _("民政"), _("残联"), _("社区走访"), _("退役军人事务"),
    # enterprises
    _("农、林、牧、渔业"), _("制造业"), _("建筑业"), _("批发和零售业"), _("交通运输、仓储和邮政业"),
    _("住宿和餐饮业"), _("信息传输、软件和信息技术服务业"), _("金融业"), _("房地产业"), _("租赁和商务服务业"),
    _("科学研究和技术服务业"), _("居民服务、修理和其他服务业"), _("教育"), _("卫生和社会工作"),
    _("文化、体育和娱乐业"), _("存续"), _("在业"), _("吊销"), _("注销"),
    _("法定代表人"), _("董事长"), _("总经理"), _("董事"), _("监事"), _("财务负责人"),
]  # fmt: skip
