from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "zhizhi.alerts"
    label = "alerts"
    verbose_name = "感知预警"
