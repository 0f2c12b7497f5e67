from django.apps import AppConfig


class IntakeConfig(AppConfig):
    name = "zhizhi.intake"
    label = "intake"
    verbose_name = "多渠道受理"
