from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "zhizhi.people"
    label = "people"
    verbose_name = "人口与房屋"
