from django.apps import AppConfig


class EnterprisesConfig(AppConfig):
    name = "zhizhi.enterprises"
    label = "enterprises"
    verbose_name = "实有单位"
