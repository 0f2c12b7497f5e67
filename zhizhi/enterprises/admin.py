from django.contrib import admin

from zhizhi.admin import ScopedAdmin
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord


@admin.register(Enterprise)
class EnterpriseAdmin(ScopedAdmin):
    list_display = ("name", "credit_code", "legal_representative", "industry", "status", "grid")
    list_filter = ("industry", "status")
    search_fields = ("name", "credit_code", "legal_representative")
    raw_id_fields = ("building", "house", "grid")


@admin.register(Executive)
class ExecutiveAdmin(ScopedAdmin):
    list_display = ("enterprise", "name", "position", "start_date", "end_date")
    list_filter = ("position",)
    search_fields = ("name", "enterprise__name")
    raw_id_fields = ("enterprise",)


@admin.register(TaxRecord)
class TaxRecordAdmin(ScopedAdmin):
    list_display = ("enterprise", "period", "revenue", "tax_paid", "tax_paid_here")
    list_filter = ("tax_paid_here",)
    search_fields = ("enterprise__name",)
    raw_id_fields = ("enterprise",)
