"""The registry declarations against their models and the API: nothing can silently go missing.

- every concrete field of a registry model is a Column, internal (stamps, scope, the stored forms
  of a protected value, non-editable derived fields) or listed below as intentionally excluded;
- every Column shows in the API's output schema;
- every `Registry.filters` entry works as an API filter (by code, label or natural key).
"""

from __future__ import annotations

import functools

import pytest
from django.db import models

from tests.battery.samples import SAMPLES
from tests.battery.test_registry_api import client_for
from tests.factories import Street
from zhizhi.api import api, path_for
from zhizhi.api_common import INTERNAL_FIELDS, INTERNAL_SUFFIXES
from zhizhi.registry import Column, Registry, registries

KEYS = sorted(registries())

# Fields kept out of the API and of imports on purpose, each with the reason.
INTENTIONALLY_EXCLUDED: dict[str, dict[str, str]] = {
    # Retiring a unit changes who receives cases; it is done in the admin, not by a spreadsheet.
    "orgs.orgunit": {"active": "retired in the admin only"},
}


def undeclared_fields(reg: Registry) -> list[str]:
    columns = {c.name for c in reg.columns}
    sensitive = {c.name for c in reg.columns if c.kind == "sensitive"}
    excluded = INTENTIONALLY_EXCLUDED.get(reg.key, {})
    missing = []
    for f in reg.model._meta.concrete_fields:
        if f.name in columns or f.name in INTERNAL_FIELDS or f.primary_key or not f.editable:
            continue
        if f.name.endswith(INTERNAL_SUFFIXES) and f.name.rsplit("_", 1)[0] in sensitive:
            continue
        if f.name in excluded:
            continue
        missing.append(f.name)
    return missing


@pytest.mark.parametrize("key", KEYS)
def test_every_model_field_is_declared(key: str) -> None:
    reg = registries()[key]
    assert undeclared_fields(reg) == [], (
        f"{key}: add a Column (so the API, pages and imports carry it) or list the field in "
        "INTENTIONALLY_EXCLUDED with a reason"
    )
    field_names = {f.name for f in reg.model._meta.concrete_fields}
    for col in reg.columns:
        if col.kind == "sensitive":
            assert {f"{col.name}_enc", f"{col.name}_hash", f"{col.name}_masked"} <= field_names
        else:
            assert col.name in field_names, f"{key}: column {col.name} is not a model field"
    for name in INTENTIONALLY_EXCLUDED.get(key, {}):
        assert name in field_names, f"{key}: excluded field {name} no longer exists"


def test_the_check_catches_a_new_field() -> None:
    """A field added to a model without a Column makes the check above fail."""
    reg = registries()["geo.building"]
    extra = models.CharField("新字段", max_length=10, default="")
    extra.set_attributes_from_name("parking_spaces")
    extra.model = reg.model
    reg.model._meta.local_fields.append(extra)
    reg.model._meta._expire_cache()
    try:
        assert undeclared_fields(reg) == ["parking_spaces"]
    finally:
        reg.model._meta.local_fields.remove(extra)
        reg.model._meta._expire_cache()
    assert undeclared_fields(reg) == []


@functools.cache
def openapi() -> dict:
    return api.get_openapi_schema()


def expected_output(col: Column) -> set[str]:
    if col.kind == "sensitive":
        return {f"{col.name}_masked"}
    if col.kind == "choice":
        return {col.name, f"{col.name}_label"}
    return {col.name}


@pytest.mark.parametrize("key", KEYS)
def test_every_column_is_in_the_output_schema(key: str) -> None:
    reg = registries()[key]
    schema = openapi()
    get_op = schema["paths"][path_for(key) + "{id}/"]["get"]
    ref = get_op["responses"][200]["content"]["application/json"]["schema"]["$ref"]
    props = set(schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"])
    wanted = {"id", "version", "updated_at"}.union(*(expected_output(c) for c in reg.columns))
    assert props == wanted
    assert not {c.name for c in reg.columns if c.kind == "sensitive"} & props


def filter_value(reg: Registry, name: str, obj: object) -> str:
    """The value a client would type to find `obj` by filter `name`."""
    col = reg.column(name)
    value = getattr(obj, name)
    assert value is not None, f"sample for {reg.key} must set {name}"
    if col.kind == "ref":
        assert col.ref is not None
        if col.ref.key.endswith("_hash"):  # a person is found by the plain ID number
            return value.decrypt_sensitive(col.ref.key[: -len("_hash")])
        return col.ref.natural(value)
    if col.kind == "bool":
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize(
    ("key", "name"), [(k, f) for k in KEYS for f in registries()[k].filters], ids=lambda v: str(v)
)
def test_every_filter_works_in_the_api(street: Street, key: str, name: str) -> None:
    reg, sample = registries()[key], SAMPLES[key]
    row = sample.existing(street, "A1")
    sample.existing(street, "B1")
    client = client_for(street, "leader")
    value = filter_value(reg, name, row)
    everything = client.get(path_for(key), {"limit": 500}).json()["count"]
    response = client.get(path_for(key), {name: value, "limit": 500})
    assert response.status_code == 200, response.content
    ids = [r["id"] for r in response.json()["results"]]
    assert row.pk in ids
    stored = getattr(row, name)
    matching = reg.model._default_manager.filter(pk__in=ids, **{name: stored}).count()
    assert matching == len(ids) <= everything
    col = reg.column(name)
    if col.kind == "choice":
        label = getattr(row, f"get_{name}_display")()
        by_label = client.get(path_for(key), {name: label, "limit": 500}).json()
        assert {r["id"] for r in by_label["results"]} == set(ids)
        assert client.get(path_for(key), {name: "不存在的值"}).status_code == 400
    if col.kind == "ref":
        # An unknown key finds nothing (it does not say whether such a row exists elsewhere).
        unknown = client.get(path_for(key), {name: "999999999999999"})
        assert unknown.status_code == 200 and unknown.json()["count"] == 0
