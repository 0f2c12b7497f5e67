"""Bad input to the registries: every problem is reported with its field, in Chinese and English,
and nothing is written."""

from __future__ import annotations

import pytest

from tests.factories import Street, make_id_number
from zhizhi import registry
from zhizhi.enterprises.models import Enterprise
from zhizhi.people.models import Person
from zhizhi.problems import Invalid

pytestmark = pytest.mark.django_db


def _with_check(body: str) -> str:
    from stdnum.cn import ric

    return body + ric.calc_check_digit(body + "0")


def _create_person(street: Street, **raw: str) -> Person:
    data = {"name": "王五", "id_number": make_id_number("19900315", "F"), "grid": "330105001001001", **raw}
    return registry.create(registry.get("people.person"), street.users["admin"], data)


def _problems(exc: pytest.ExceptionInfo[Invalid]) -> dict[str, str]:
    return {p.field: p.code for p in exc.value.problems}


@pytest.mark.parametrize(
    ("id_number", "code"),
    [
        ("33010519900315002", "id_length"),
        ("3301051990031500AX", "id_format"),
        ("330105199003150021", "id_checksum"),
        (_with_check("33010519900230002"), "id_component"),  # 30 February
        (_with_check("99999919900315002"), "id_component"),  # no such region code
    ],
)
def test_invalid_id_numbers_are_rejected_with_a_reason(street: Street, id_number: str, code: str) -> None:
    with pytest.raises(Invalid) as exc:
        _create_person(street, id_number=id_number)
    problem = exc.value.problems[0]
    assert (problem.field, problem.code) == ("id_number", code)
    assert problem.zh and problem.en and "身份证" in problem.zh
    assert not Person.objects.exists()


def test_gender_and_birth_come_from_the_id_and_must_agree(street: Street) -> None:
    person = _create_person(street)
    assert (person.gender, person.birth_date.isoformat()) == ("F", "1990-03-15")
    with pytest.raises(Invalid) as exc:
        _create_person(
            street, id_number=make_id_number("19900315", "F"), gender="男", birth_date="1990-03-16"
        )
    assert _problems(exc) == {"birth_date": "birth_mismatch", "gender": "gender_mismatch"}


def test_impossible_and_future_dates(street: Street) -> None:
    for value, code in [
        ("2023-02-30", "date_invalid"),
        ("1600-01-01", "date_too_old"),
        ("2999-01-01", "date_future"),
    ]:
        with pytest.raises(Invalid) as exc:
            _create_person(street, birth_date=value)
        assert _problems(exc)["birth_date"] == code


def test_phone_validation_and_all_problems_at_once(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        _create_person(street, phone="12345", population_type="外星", grid="999")
    assert _problems(exc) == {"phone": "phone_invalid", "population_type": "choice", "grid": "ref_missing"}
    assert all(" / " in p.message for p in exc.value.problems)


def test_same_id_number_twice_is_a_duplicate(street: Street) -> None:
    number = make_id_number("19700101", "M")
    _create_person(street, id_number=number)
    with pytest.raises(Invalid) as exc:
        _create_person(street, id_number=number.lower(), name="另一个人")
    assert _problems(exc) == {"id_number": "duplicate"}


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("91330105MA2AAAAA1", "uscc_length"),
        ("91330105MA2AAAAA1Y", "uscc_checksum"),
        ("91330105MA2AAIAA1X", "uscc_format"),
    ],
)
def test_invalid_credit_codes(street: Street, code: str, problem: str) -> None:
    raw = {
        "name": "乙公司",
        "credit_code": code,
        "legal_representative": "李四",
        "registered_address": "x",
        "industry": "I",
        "grid": "330105001001001",
    }
    with pytest.raises(Invalid) as exc:
        registry.create(registry.get("enterprises.enterprise"), street.users["admin"], raw)
    assert _problems(exc)["credit_code"] == problem
    assert not Enterprise.objects.exists()


def test_elderly_residents_keep_their_1980s_region_code(street: Street) -> None:
    """330105 dates from 1983; a resident born in 1940 still holds a 330105… number."""
    person = _create_person(street, id_number=_with_check("33010519400101002"))
    assert person.birth_date.year == 1940


def test_grid_worker_cannot_create_outside_their_grid(street: Street) -> None:
    from zhizhi.problems import Forbidden

    data = {"name": "王五", "id_number": make_id_number("19900315", "F"), "grid": "330105001002001"}
    with pytest.raises(Forbidden):
        registry.create(registry.get("people.person"), street.users["grid_a1"], data)
    assert not Person.objects.exists()
    registry.create(
        registry.get("people.person"), street.users["grid_a1"], {**data, "grid": "330105001001001"}
    )
    assert Person.objects.get().area_path == street.grids["A1"].path


def test_editing_birth_date_alone_is_checked_against_the_stored_id(street: Street) -> None:
    person = _create_person(street)
    reg = registry.get("people.person")
    with pytest.raises(Invalid) as exc:
        registry.update(reg, street.users["admin"], person, {"birth_date": "1991-01-01"}, person.version)
    assert _problems(exc) == {"birth_date": "birth_mismatch"}
    person.refresh_from_db()
    registry.update(reg, street.users["admin"], person, {"note": "核实", "gender": "女"}, person.version)


def test_mobile_fast_path_agrees_with_phonenumbers() -> None:
    """The cached 7-digit-prefix check for mobiles gives phonenumbers' own verdict."""
    import random

    import phonenumbers

    from zhizhi import validators

    rnd = random.Random(7)
    for _ in range(5000):
        number = "1" + "".join(rnd.choice("0123456789") for _ in range(10))
        try:
            expected = phonenumbers.is_valid_number(phonenumbers.parse(number, "CN"))
        except phonenumbers.NumberParseException:
            expected = False
        try:
            validators.phone(number)
            got = True
        except Invalid:
            got = False
        assert got == expected, number
    assert validators.phone("+86 138-1234-5678") == "13812345678"
