"""API for enterprises, executives and tax records (generic registry endpoints)."""

from zhizhi.api import register_registry

enterprises = register_registry("enterprises.enterprise", "enterprises")
executives = register_registry("enterprises.executive", "executives")
tax_records = register_registry("enterprises.taxrecord", "tax-records")
