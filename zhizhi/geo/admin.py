from django.contrib import admin

from zhizhi.admin import ScopedAdmin
from zhizhi.geo.models import Building, Region


@admin.register(Region)
class RegionAdmin(ScopedAdmin):
    list_display = ("code", "name", "level", "parent")
    list_filter = ("level",)
    search_fields = ("code", "name")
    raw_id_fields = ("parent",)


@admin.register(Building)
class BuildingAdmin(ScopedAdmin):
    list_display = ("code", "name", "address", "kind", "grid", "units", "floors")
    list_filter = ("kind",)
    search_fields = ("code", "name", "address")
    raw_id_fields = ("grid",)
