from django.apps import AppConfig
from django.db.models.signals import post_migrate


class Open311Config(AppConfig):
    name = "zhizhi.open311"
    label = "open311"
    verbose_name = "Open311 对接"

    def ready(self) -> None:
        from zhizhi.open311.services import ensure_open311_permissions

        post_migrate.connect(ensure_open311_permissions, sender=self)
