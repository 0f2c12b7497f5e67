"""The shared core: the data key, masking, area scopes per role, reveal logging, API tokens,
and concurrent edits of one record over two real database connections."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from django.db import connection, connections

from tests.factories import Street, tag
from zhizhi import crypto
from zhizhi.enterprises.models import Enterprise
from zhizhi.geo.models import Building
from zhizhi.models import RevealLog
from zhizhi.people.models import CareTag, House, Person
from zhizhi.permissions import create_token, reveal, user_for_token
from zhizhi.problems import Conflict, Forbidden, Invalid


def test_key_file_is_created_with_mode_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys" / "data.key"
    assert crypto.generate_key_file(path) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert crypto.generate_key_file(path) is False  # never overwritten


def test_ciphertexts_differ_for_equal_values_but_hashes_match() -> None:
    a, b = crypto.encrypt("330105198001010011"), crypto.encrypt("330105198001010011")
    assert a != b and crypto.decrypt(a) == crypto.decrypt(b) == "330105198001010011"
    assert crypto.lookup_hash("x") == crypto.lookup_hash("x") != crypto.lookup_hash("y")


@pytest.mark.parametrize(
    ("value", "masked"),
    [("33010519800101123X", "330105********123X"), ("13812345678", "138****5678")],
)
def test_masks(value: str, masked: str) -> None:
    mask = crypto.mask_id_number if len(value) == 18 else crypto.mask_phone
    assert mask(value) == masked


@pytest.mark.django_db
def test_each_role_sees_its_scope(street: Street) -> None:
    a1 = street.person("a1", grid="A1", house="A1-1-101")
    a2 = street.person("a2", grid="A2", house="A2-1-101")
    b1 = street.person("b1", grid="B1", house="B1-1-101")
    tag(a1, "living_alone")
    ent_a = Enterprise.objects.create(
        name="甲公司",
        credit_code="91330105MA2AAAAA1X",
        legal_representative="张三",
        registered_address="x",
        industry="I",
        grid=street.grids["A1"],
    )
    u = street.users
    assert set(Person.objects.visible_to(u["grid_a1"])) == {a1}
    assert set(Person.objects.visible_to(u["grid_b1"])) == {b1}
    assert set(Person.objects.visible_to(u["community_a"])) == {a1, a2}
    assert set(Person.objects.visible_to(u["leader"])) == {a1, a2, b1}
    assert set(Person.objects.visible_to(u["dispatcher"])) == {a1, a2, b1}
    assert set(Person.objects.visible_to(u["admin"])) == {a1, a2, b1}
    # 区域发展办 sees the street's enterprises but no residents; the resident and anonymous see nothing.
    assert set(Enterprise.objects.visible_to(u["dept"])) == {ent_a}
    assert not Person.objects.visible_to(u["dept"]).exists()
    assert not Person.objects.visible_to(u["resident"]).exists()
    assert not Person.objects.visible_to(None).exists()
    # Derived rows follow their person/house: care tags, houses, buildings.
    assert CareTag.objects.visible_to(u["grid_a1"]).count() == 1
    assert CareTag.objects.visible_to(u["grid_b1"]).count() == 0
    assert set(House.objects.visible_to(u["grid_b1"]).values_list("building__code", flat=True)) == {"B-B1"}
    assert Building.objects.visible_to(u["community_a"]).count() == 2
    # Grid workers may change rows of their grid only.
    assert Person.objects.visible_to(u["grid_a1"], "change").count() == 1
    assert not Person.objects.visible_to(u["dispatcher"], "change").exists()


@pytest.mark.django_db
def test_reveal_needs_purpose_scope_and_is_logged(street: Street) -> None:
    a1 = street.person("a1", grid="A1")
    b1 = street.person("b1", grid="B1")
    worker = street.users["grid_a1"]
    with pytest.raises(Invalid):
        reveal(worker, a1, "phone", " ")
    with pytest.raises(Forbidden):
        reveal(worker, b1, "phone", "入户走访核实")
    with pytest.raises(Forbidden):
        reveal(street.users["dispatcher"], a1, "phone", "回访")
    value = reveal(worker, a1, "phone", "入户走访核实", ip="127.0.0.1")
    assert value.startswith("1381234") and len(value) == 11
    log = RevealLog.objects.get()
    assert (log.actor, log.field, log.purpose, log.object_id) == (worker, "phone", "入户走访核实", str(a1.pk))
    assert RevealLog.objects.visible_to(street.users["leader"]).count() == 1
    assert not RevealLog.objects.visible_to(worker).exists()


@pytest.mark.django_db
def test_api_tokens_store_only_a_hash(street: Street) -> None:
    raw, token = create_token(street.users["leader"], "integration")
    assert raw not in token.key_hash and token.prefix == raw[:8]
    assert user_for_token(raw) == street.users["leader"]
    assert user_for_token(raw + "x") is None
    token.enabled = False
    token.save()
    assert user_for_token(raw) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_edits_on_two_connections_never_erase_each_other(street: Street) -> None:
    """Two people open the same record, both save: exactly one wins, the other gets Conflict.

    Each thread has its own database connection (on PostgreSQL two real server sessions; on
    SQLite two connections to the test database file)."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(
        (":memory:", "file:memorydb")
    ):
        pytest.skip("in-memory SQLite cannot be opened by a second connection; PostgreSQL runs this test")
    person = street.person("c", grid="A1")
    copies = [Person.objects.get(pk=person.pk), Person.objects.get(pk=person.pk)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(copy: Person, note: str) -> None:
        try:
            copy.note = note
            barrier.wait()
            copy.save()
            outcomes.append("saved:" + note)
        except Conflict:
            outcomes.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=edit, args=(c, f"编辑{i}")) for i, c in enumerate(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "saved"]
    winner = next(o.split(":")[1] for o in outcomes if o.startswith("saved"))
    fresh = Person.objects.get(pk=person.pk)
    assert fresh.note == winner and fresh.version == 2
