"""The shared base: encryption, masking, the change log, versions and area scope."""

from __future__ import annotations

import pytest

from tests.factories import Street
from zhizhi.models import ChangeLogEntry
from zhizhi.people.models import Person
from zhizhi.problems import Conflict


def test_person_is_stored_encrypted_and_found_by_hash(street: Street) -> None:
    p = street.person("x", grid="A1")
    raw = Person.objects.values_list("id_number_enc", flat=True).get(pk=p.pk)
    assert raw.startswith("v1:") and p.id_number_masked[:6] not in raw
    assert p.id_number_masked.count("*") == 8
    number = p.decrypt_sensitive("id_number")
    assert Person.objects.with_id_number(number.lower()).get() == p


def test_grid_worker_sees_only_their_grid(street: Street) -> None:
    a = street.person("a", grid="A1")
    street.person("b", grid="B1")
    assert list(Person.objects.visible_to(street.users["grid_a1"])) == [a]
    assert Person.objects.visible_to(street.users["community_a"]).count() == 1
    assert Person.objects.visible_to(street.users["leader"]).count() == 2
    assert Person.objects.visible_to(street.users["volunteer"]).count() == 0


def test_stale_save_raises_conflict_and_changelog_records(street: Street) -> None:
    p = street.person("c", grid="A1")
    first = Person.objects.get(pk=p.pk)
    second = Person.objects.get(pk=p.pk)
    first.note = "第一次修改"
    first.save()
    second.note = "第二次修改"
    with pytest.raises(Conflict):
        second.save()
    assert Person.objects.get(pk=p.pk).note == "第一次修改"
    entry = ChangeLogEntry.objects.filter(object_id=str(p.pk), action="update").first()
    assert entry is not None and entry.before["note"] == "" and entry.after["note"] == "第一次修改"
