from django.apps import AppConfig


class GeoConfig(AppConfig):
    name = "zhizhi.geo"
    label = "geo"
    verbose_name = "地点"
