from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ZhizhiConfig(AppConfig):
    name = "zhizhi"
    verbose_name = "智治平台"

    def ready(self) -> None:
        from zhizhi.permissions import ensure_default_permissions

        post_migrate.connect(ensure_default_permissions, sender=self)
