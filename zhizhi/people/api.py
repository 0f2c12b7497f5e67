"""API for people and housing: the generic registry endpoints plus the everyday questions —
exact lookup by ID number, who lives in a house today, where a person has lived."""

from typing import Any

from django.http import Http404, HttpRequest

from zhizhi import registry, validators
from zhizhi.api import register_registry
from zhizhi.api_common import ERRORS, get_visible, require, select_for, serialize_rows, visible
from zhizhi.people.models import Person, Residency
from zhizhi.people.services import residence_history, residents_of

persons = register_registry("people.person", "persons")
houses = register_registry("people.house", "houses")
residencies = register_registry("people.residency", "residencies")
care_tags = register_registry("people.caretag", "care-tags")

PERSONS = registry.get("people.person")
HOUSES = registry.get("people.house")
RESIDENCIES = registry.get("people.residency")


def _residencies(request: HttpRequest, qs: Any) -> dict[str, Any]:
    """Residency rows (only those the caller may see), shaped like the residency list."""
    user = request.auth  # type: ignore[attr-defined]
    rows = Residency.objects.visible_to(user, "view").filter(pk__in=qs.values("pk"))
    rows = rows.select_related(*select_for(RESIDENCIES)).order_by("-start_date", "-id")
    results = serialize_rows(RESIDENCIES, user, list(rows))
    return {"count": len(results), "results": results}


@persons.get("/lookup", response={200: dict, **ERRORS}, operation_id="people_persons_lookup")
def lookup(request: HttpRequest, id_number: str) -> dict[str, Any]:
    """按身份证号精确查找 Exact lookup by ID number through the keyed hash (no decryption)."""
    user = request.auth  # type: ignore[attr-defined]
    require(user, "view", PERSONS)
    number = validators.id_number(id_number, "id_number")
    person = visible(PERSONS, user).filter(id_number_hash=Person.hash_for("id_number", number)).first()
    if person is None:
        raise Http404()
    return serialize_rows(PERSONS, user, [person])[0]


@persons.get("/{id}/residences", response={200: dict, **ERRORS}, operation_id="people_persons_residences")
def residences(request: HttpRequest, id: int) -> dict[str, Any]:
    """居住史 Where this person has lived: every residency, newest first."""
    person = get_visible(PERSONS, request.auth, id)  # type: ignore[attr-defined]
    require(request.auth, "view", RESIDENCIES)  # type: ignore[attr-defined]
    return _residencies(request, residence_history(person))


@houses.get("/{id}/residents", response={200: dict, **ERRORS}, operation_id="people_houses_residents")
def residents(request: HttpRequest, id: int) -> dict[str, Any]:
    """现住人员 Who lives in this house today."""
    house = get_visible(HOUSES, request.auth, id)  # type: ignore[attr-defined]
    require(request.auth, "view", RESIDENCIES)  # type: ignore[attr-defined]
    return _residencies(request, residents_of(house))
