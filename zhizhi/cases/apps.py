from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CasesConfig(AppConfig):
    name = "zhizhi.cases"
    label = "cases"
    verbose_name = "案件闭环"

    def ready(self) -> None:
        from zhizhi.cases.flows import reporter_phone_for
        from zhizhi.cases.services import ensure_case_permissions
        from zhizhi.notify.services import RESOLVERS

        post_migrate.connect(ensure_case_permissions, sender=self)
        RESOLVERS["case"] = reporter_phone_for
