"""The generic API battery: list, get, create, update, import and export for EVERY registry in
`zhizhi.registry.registries()`, each as anonymous, unpermitted, permitted and area-constrained users.

A registry takes part by declaring its data in tests/battery/samples.py; nothing here names a model.
Permitted readers are the street leader, permitted writers the community-A worker; the
constrained user has grid A1 (or community A) in scope and grid B1 out of it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.battery.samples import SAMPLES
from tests.factories import Street
from zhizhi.api import path_for
from zhizhi.registry import Registry, registries

KEYS = sorted(registries())
ROLES = ["anonymous", "unpermitted", "permitted", "constrained"]


def test_every_registry_has_a_sample_and_a_route() -> None:
    assert set(SAMPLES) == set(KEYS)
    for key in KEYS:
        assert path_for(key).startswith("/api/v1/")


_shared: dict[str, Any] = {}


def client_for(street: Street, user: str | None) -> Client:
    client = Client()
    # One request handler for the whole battery: loading the middleware stack (which scans the
    # static files) per client would cost more than the tests themselves. Cookies stay per client.
    client.handler = _shared.setdefault("handler", client.handler)
    if user is not None:
        client.force_login(street.users[user])
    return client


def reader(role: str, key: str) -> str | None:
    return {"anonymous": None, "unpermitted": "resident", "permitted": "leader"}.get(
        role, SAMPLES[key].constrained
    )


def writer(role: str, key: str) -> str | None:
    return {"anonymous": None, "unpermitted": "resident", "permitted": "community_a"}.get(
        role, SAMPLES[key].constrained
    )


DENIED = {"anonymous": 401, "unpermitted": 403}


def count(reg: Registry) -> int:
    return reg.model._default_manager.count()


def post_json(client: Client, url: str, data: dict[str, Any], **headers: str) -> Any:
    return client.post(url, data, content_type="application/json", headers=headers)


def patch_json(client: Client, url: str, data: dict[str, Any], **headers: str) -> Any:
    return client.patch(url, data, content_type="application/json", headers=headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestList:
    def test_list(self, street: Street, key: str, role: str) -> None:
        sample = SAMPLES[key]
        a1, b1 = sample.existing(street, "A1"), sample.existing(street, "B1")
        response = client_for(street, reader(role, key)).get(path_for(key), {"limit": 500})
        if role in DENIED:
            assert response.status_code == DENIED[role]
            assert set(response.json()) == {"errors"}
            return
        assert response.status_code == 200, response.content
        body = response.json()
        ids = {row["id"] for row in body["results"]}
        assert body["count"] == len(ids)
        assert a1.pk in ids
        assert (b1.pk in ids) is (role == "permitted")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestGet:
    def test_get(self, street: Street, key: str, role: str) -> None:
        sample = SAMPLES[key]
        a1, b1 = sample.existing(street, "A1"), sample.existing(street, "B1")
        client = client_for(street, reader(role, key))
        response = client.get(f"{path_for(key)}{a1.pk}/")
        if role in DENIED:
            assert response.status_code == DENIED[role]
            return
        assert response.status_code == 200, response.content
        row = response.json()
        assert row["id"] == a1.pk and row["version"] == a1.version
        assert response["ETag"] == f'"{a1.version}"'
        # Protected values only ever leave masked.
        assert not [k for k in row if k.endswith(("_enc", "_hash"))]
        for name in getattr(registries()[key].model, "SENSITIVE", {}):
            assert name not in row and f"{name}_masked" in row
        other = client.get(f"{path_for(key)}{b1.pk}/")
        if role == "permitted":
            assert other.status_code == 200
        else:
            assert other.status_code == 404
            assert sample.marker(b1) not in other.content.decode()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestCreate:
    def test_create(self, street: Street, key: str, role: str) -> None:
        reg, sample = registries()[key], SAMPLES[key]
        client = client_for(street, writer(role, key))
        raw_b1 = sample.new(street, "B1")
        before = count(reg)
        if role in DENIED or role == "constrained":
            response = post_json(client, path_for(key), raw_b1)
            assert response.status_code == DENIED.get(role, 403), response.content
            assert count(reg) == before, "a refused create must write nothing"
            if role != "constrained" or not sample.constrained_creates:
                return
        raw = sample.new(street, "A1")
        before = count(reg)
        response = post_json(client, path_for(key), raw)
        assert response.status_code == 201, response.content
        assert count(reg) == before + 1
        created = response.json()
        assert client.get(f"{path_for(key)}{created['id']}/").status_code == 200


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestUpdate:
    def test_update(self, street: Street, key: str, role: str) -> None:
        reg, sample = registries()[key], SAMPLES[key]
        client = client_for(street, writer(role, key))
        a1, b1 = sample.existing(street, "A1"), sample.existing(street, "B1")
        url = f"{path_for(key)}{a1.pk}/"
        if role in DENIED:
            response = patch_json(client, url, {**sample.change, "version": a1.version})
            assert response.status_code == DENIED[role]
            assert reg.model._default_manager.get(pk=a1.pk).version == a1.version
            return
        response = patch_json(client, url, {**sample.change, "version": a1.version})
        assert response.status_code == 200, response.content
        row = response.json()
        assert row["version"] == a1.version + 1
        assert {k: row[k] for k in sample.changed} == sample.changed
        # A second writer still holding the old version is refused, not silently applied.
        stale = patch_json(client, url, sample.change, **{"If-Match": f'"{a1.version}"'})
        assert stale.status_code == 409
        assert stale.json()["current_version"] == a1.version + 1
        out_url = f"{path_for(key)}{b1.pk}/"
        out = patch_json(client, out_url, {**sample.change, "version": b1.version})
        if role == "permitted":
            # The community worker is bounded by community A as well; the superuser is not.
            assert out.status_code == 404
            admin = client_for(street, "admin")
            assert patch_json(admin, out_url, {**sample.change, "version": b1.version}).status_code == 200
        else:
            assert out.status_code == 404
            assert reg.model._default_manager.get(pk=b1.pk).version == b1.version


def csv_upload(reg: Registry, raw: dict[str, Any]) -> SimpleUploadedFile:
    buf = io.StringIO()
    writer_ = csv.writer(buf)
    cols = [reg.column(name) for name in raw]
    writer_.writerow([c.zh for c in cols])
    writer_.writerow([raw[c.name] for c in cols])
    return SimpleUploadedFile("upload.csv", buf.getvalue().encode("utf-8-sig"), content_type="text/csv")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestImport:
    def test_import(self, street: Street, key: str, role: str) -> None:
        reg, sample = registries()[key], SAMPLES[key]
        # Grid workers may not import at all: the constrained importer is the community-A worker.
        user = {"anonymous": None, "unpermitted": "resident"}.get(role, "community_a")
        client = client_for(street, user)
        url = f"{path_for(key)}import"
        raw = sample.new(street, "B1" if role == "constrained" else "A1")
        before = count(reg)
        response = client.post(url, {"file": csv_upload(reg, raw)})
        if role in DENIED:
            assert response.status_code == DENIED[role]
            assert count(reg) == before
        elif role == "constrained":
            assert response.status_code >= 400, response.content
            assert count(reg) == before, "nothing of a refused import is written"
        else:
            assert response.status_code == 200, response.content
            assert count(reg) == before + 1


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", KEYS)
class TestExport:
    def test_export(self, street: Street, key: str, role: str) -> None:
        sample = SAMPLES[key]
        a1, b1 = sample.existing(street, "A1"), sample.existing(street, "B1")
        user = {"anonymous": None, "unpermitted": "resident", "permitted": "leader"}.get(role, "community_a")
        client = client_for(street, user)
        response = client.get(f"{path_for(key)}export", {"format": "csv"})
        if role in DENIED:
            assert response.status_code == DENIED[role]
            return
        assert response.status_code == 200, response.content
        text = b"".join(getattr(response, "streaming_content", [response.content])).decode("utf-8-sig")
        assert sample.marker(a1) in text
        assert (sample.marker(b1) in text) is (role == "permitted")
        if role == "permitted":
            xlsx = client.get(f"{path_for(key)}export", {"format": "xlsx"})
            assert xlsx.status_code == 200
            assert b"".join(getattr(xlsx, "streaming_content", [xlsx.content]))[:2] == b"PK"
