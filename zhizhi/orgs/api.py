"""API for org units: the generic registry endpoints at /api/v1/orgs/units/."""

from zhizhi.api import register_registry

units = register_registry("orgs.orgunit", "units")
