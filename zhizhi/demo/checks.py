"""Finding the demo street's injected errors again, by query, as the data-quality work will.

Each finder returns the rows it found (people, houses, enterprises) so tests can check that the
counts in docs/demo-data.md are exactly what the database holds, and a person can run them from
`manage.py shell`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Count

from zhizhi import validators
from zhizhi.enterprises.models import Enterprise
from zhizhi.people.models import House, Person, Residency
from zhizhi.problems import Invalid


def _decrypted_ids() -> list[tuple[Person, str]]:
    return [(p, p.decrypt_sensitive("id_number")) for p in Person.objects.exclude(id_number_enc="")]


def invalid_id_check_digit() -> list[Person]:
    out = []
    for person, number in _decrypted_ids():
        try:
            validators.id_number(number)
        except Invalid as exc:
            if any(p.code == "id_checksum" for p in exc.problems):
                out.append(person)
    return out


def id_gender_birth_mismatch() -> list[Person]:
    out = []
    for person, number in _decrypted_ids():
        try:
            validators.id_number(number)
        except Invalid:
            continue
        birth, gender = validators.id_birth_and_gender(number)
        if birth != person.birth_date or gender != person.gender:
            out.append(person)
    return out


def two_current_houses() -> list[Person]:
    ids = (
        Residency.objects.current()
        .values("person_id")
        .annotate(n=Count("house_id", distinct=True))
        .filter(n__gt=1)
        .values("person_id")
    )
    return list(Person.objects.filter(pk__in=ids))


def deceased_still_resident() -> list[Person]:
    ids = Residency.objects.current().values("person_id")
    return list(Person.objects.filter(status="deceased", pk__in=ids))


def overcrowded_house(limit: int = 12) -> list[House]:
    ids = (
        Residency.objects.current()
        .values("house_id")
        .annotate(n=Count("person_id", distinct=True))
        .filter(n__gt=limit)
        .values("house_id")
    )
    return list(House.objects.filter(pk__in=ids).select_related("building"))


def enterprise_in_vacant_house() -> list[Enterprise]:
    return list(Enterprise.objects.filter(house__use="vacant"))


def duplicate_id_number() -> list[list[Person]]:
    hashes = (
        Person.objects.exclude(id_number_hash="")
        .values("id_number_hash")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("id_number_hash", flat=True)
    )
    groups: dict[str, list[Person]] = {}
    for person in Person.objects.filter(id_number_hash__in=list(hashes)).order_by("pk"):
        groups.setdefault(person.id_number_hash, []).append(person)
    return list(groups.values())


FINDERS: dict[str, Callable[[], list[Any]]] = {
    "invalid_id_check_digit": invalid_id_check_digit,
    "id_gender_birth_mismatch": id_gender_birth_mismatch,
    "two_current_houses": two_current_houses,
    "deceased_still_resident": deceased_still_resident,
    "overcrowded_house": overcrowded_house,
    "enterprise_in_vacant_house": enterprise_in_vacant_house,
    "duplicate_id_number": duplicate_id_number,
}


def find_injected_errors() -> dict[str, list[Any]]:
    """Every kind of injected error, with the rows (or groups of rows) that show it."""
    return {key: finder() for key, finder in FINDERS.items()}
