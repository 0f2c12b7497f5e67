from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "zhizhi.orgs"
    label = "orgs"
    verbose_name = "组织与人员"
