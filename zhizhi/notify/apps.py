from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "zhizhi.notify"
    label = "notify"
    verbose_name = "通知"
