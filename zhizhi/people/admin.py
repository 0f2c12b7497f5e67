from django.contrib import admin

from zhizhi.admin import ScopedAdmin
from zhizhi.people.models import CareTag, House, Person, Residency


@admin.register(House)
class HouseAdmin(ScopedAdmin):
    list_display = ("building", "unit", "floor", "room", "area_m2", "use")
    list_filter = ("use",)
    search_fields = ("room", "building__code", "building__name")
    raw_id_fields = ("building", "owner")


@admin.register(Person)
class PersonAdmin(ScopedAdmin):
    # Only the masks are listed; plaintext is reachable only through the logged reveal on the pages.
    list_display = ("name", "gender", "birth_date", "id_number_masked", "phone_masked", "status", "grid")
    list_filter = ("status", "population_type", "gender")
    search_fields = ("name",)
    raw_id_fields = ("grid",)


@admin.register(Residency)
class ResidencyAdmin(ScopedAdmin):
    list_display = ("person", "house", "relation", "start_date", "end_date")
    list_filter = ("relation",)
    search_fields = ("person__name",)
    raw_id_fields = ("person", "house")


@admin.register(CareTag)
class CareTagAdmin(ScopedAdmin):
    list_display = ("person", "kind", "level", "source", "verified_on")
    list_filter = ("kind", "source")
    search_fields = ("person__name",)
    raw_id_fields = ("person",)
