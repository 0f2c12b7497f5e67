from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CasesConfig(AppConfig):
    name = "zhizhi.cases"
    label = "cases"
    verbose_name = "案件闭环"

    def ready(self) -> None:
        from zhizhi.cases.services import ensure_case_permissions

        post_migrate.connect(ensure_case_permissions, sender=self)
