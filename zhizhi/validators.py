"""Validation of the values every registry shares, each failure a bilingual `Problem`.

Functions return the cleaned value or raise `Invalid` with one problem naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from typing import Any

import phonenumbers
from shapely.geometry import shape
from shapely.validation import explain_validity
from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric, uscc

from zhizhi.problems import Invalid, Problem

# Mainland China (with the South China Sea islands' latitude cut at 18°N for land grids).
CHINA_LNG = (73.4, 135.1)
CHINA_LAT = (3.8, 53.6)


def _fail(
    field: str, code: str, zh: str, en: str, value: Any = None, expected_zh: str = "", expected_en: str = ""
) -> Invalid:
    return Invalid(
        [Problem(code, zh, en, field=field, value=value, expected_zh=expected_zh, expected_en=expected_en)]
    )


def id_number(value: str, field: str = "id_number") -> str:
    """GB 11643 resident ID: 18 characters, check digit, real birth date, known region code."""
    number = re.sub(r"[\s-]", "", str(value or "")).upper()
    try:
        return _validate_ric(number)
    except stdnum_errors.InvalidLength:
        raise _fail(
            field,
            "id_length",
            "身份证号应为18位",
            "An ID number has 18 characters",
            value,
            "18位数字（末位可为X）",
            "18 digits (the last may be X)",
        ) from None
    except stdnum_errors.InvalidFormat:
        raise _fail(
            field, "id_format", "身份证号前17位应为数字", "The first 17 characters must be digits", value
        ) from None
    except stdnum_errors.InvalidChecksum:
        raise _fail(
            field,
            "id_checksum",
            "身份证号校验位错误",
            "The ID number's check digit is wrong",
            value,
            f"校验位 {ric.calc_check_digit(number)}",
            f"check digit {ric.calc_check_digit(number)}",
        ) from None
    except stdnum_errors.InvalidComponent:
        raise _fail(
            field,
            "id_component",
            "身份证号中的出生日期或地区码无效",
            "The birth date or region code inside the ID number is not valid",
            value,
        ) from None


def _birth_date(number: str) -> dt.date:
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise stdnum_errors.InvalidComponent() from None


@lru_cache(maxsize=8192)
def _region_ever_existed(code: str) -> bool:
    return any("county" in props for _, props in numdb.get("cn/loc").info(code))


def _validate_ric(number: str) -> str:
    """stdnum's checks, except that a region code is accepted if it ever existed.

    stdnum also requires the county to have existed in the birth year, but ID numbers were first
    issued in the 1980s with the region code of that time: a resident born in 1950 in 拱墅区 holds
    a 330105… number although the code dates from 1983. Rejecting them would reject real people.
    The region lookup is cached: a street's residents share a few hundred codes, and the lookup
    was most of an import's validation time.
    """
    if len(number) != 18:
        raise stdnum_errors.InvalidLength()
    if not number[:-1].isdigit() or not number[:-1].isascii():
        raise stdnum_errors.InvalidFormat()
    if number[-1] != ric.calc_check_digit(number):
        raise stdnum_errors.InvalidChecksum()
    _birth_date(number)  # an impossible birth date raises InvalidComponent
    if not _region_ever_existed(number[:6]):
        raise stdnum_errors.InvalidComponent()
    return number


def id_birth_and_gender(number: str) -> tuple[dt.date, str]:
    """The birth date and gender ("M"/"F") an ID number encodes (17th digit odd = male)."""
    return _birth_date(number), ("M" if int(number[16]) % 2 else "F")


def credit_code(value: str, field: str = "credit_code") -> str:
    """GB 32100 unified social credit code: 18 characters with a check character."""
    code = uscc.compact(str(value or ""))
    try:
        return uscc.validate(code)
    except stdnum_errors.InvalidLength:
        raise _fail(
            field, "uscc_length", "统一社会信用代码应为18位", "A credit code has 18 characters", value
        ) from None
    except stdnum_errors.InvalidChecksum:
        raise _fail(
            field,
            "uscc_checksum",
            "统一社会信用代码校验位错误",
            "The credit code's check character is wrong",
            value,
        ) from None
    except stdnum_errors.ValidationError:
        raise _fail(
            field,
            "uscc_format",
            "统一社会信用代码格式错误",
            "The credit code is not well formed",
            value,
            "18位数字或大写字母（不含I、O、Z、S、V）",
            "18 digits or capital letters (no I, O, Z, S, V)",
        ) from None


_MOBILE = re.compile(r"(?:\+?86)?(1\d{10})")


@lru_cache(maxsize=4096)
def _mobile_prefix_valid(prefix: str) -> bool:
    # China's mobile ranges are decided by the first digits; the remaining ones are free.
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(prefix + "0000", "CN"))
    except phonenumbers.NumberParseException:
        return False


def phone(value: str, field: str = "phone") -> str:
    """A Chinese mobile or landline number, returned in national form without separators."""
    raw = str(value or "").strip()
    compact = re.sub(r"[\s-]", "", raw)
    mobile = _MOBILE.fullmatch(compact)
    if mobile:
        # Fast path for mobiles (most rows of an import): validity is cached per 7-digit prefix.
        if _mobile_prefix_valid(mobile.group(1)[:7]):
            return mobile.group(1)
        raise _fail(
            field,
            "phone_invalid",
            "电话号码无效",
            "The phone number is not a valid number",
            value,
            "11位手机号或带区号的固话",
            "an 11-digit mobile or a landline with area code",
        )
    try:
        parsed = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        raise _fail(
            field,
            "phone_format",
            "电话号码格式错误",
            "The phone number is not well formed",
            value,
            "如 13812345678 或 0571-85251618",
            "e.g. 13812345678 or 0571-85251618",
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise _fail(
            field,
            "phone_invalid",
            "电话号码无效",
            "The phone number is not a valid number",
            value,
            "11位手机号或带区号的固话",
            "an 11-digit mobile or a landline with area code",
        )
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in national if ch.isdigit())


def date(value: Any, field: str, *, not_future: bool = False, today: dt.date | None = None) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        text = str(value or "").strip().replace("/", "-").replace(".", "-")
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            raise _fail(
                field,
                "date_invalid",
                "日期无效",
                "Not a valid date",
                text,
                "YYYY-MM-DD，如 2024-02-29",
                "YYYY-MM-DD, e.g. 2024-02-29",
            ) from None
    if value.year < 1880:
        raise _fail(field, "date_too_old", "日期早于1880年", "The date is before 1880", value.isoformat())
    if not_future and today is not None and value > today:
        raise _fail(
            field, "date_future", "日期不能晚于今天", "The date cannot be in the future", value.isoformat()
        )
    return value


def coordinates(lng: Any, lat: Any, field: str = "location") -> tuple[float, float]:
    """A WGS-84 point inside China; a swapped pair gets its own message."""
    try:
        x, y = float(lng), float(lat)
    except (TypeError, ValueError):
        raise _fail(
            field,
            "coord_number",
            "经纬度必须是数字",
            "Longitude and latitude must be numbers",
            f"{lng},{lat}",
        ) from None

    def inside(a: float, b: float) -> bool:
        return CHINA_LNG[0] <= a <= CHINA_LNG[1] and CHINA_LAT[0] <= b <= CHINA_LAT[1]

    if inside(x, y):
        return x, y
    if inside(y, x):
        raise _fail(
            field,
            "coord_swapped",
            "经纬度似乎填反了",
            "Longitude and latitude look swapped",
            f"{lng},{lat}",
            f"经度 {y}，纬度 {x}",
            f"longitude {y}, latitude {x}",
        )
    raise _fail(
        field,
        "coord_outside_china",
        "坐标不在中国境内",
        "The coordinates are outside China",
        f"{lng},{lat}",
        "经度73.4–135.1，纬度3.8–53.6",
        "longitude 73.4–135.1, latitude 3.8–53.6",
    )


def polygon(value: Any, field: str = "boundary") -> dict:
    """A GeoJSON Polygon or MultiPolygon (or a Feature holding one) that is valid and inside China."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _fail(
                field, "geojson_json", "边界不是有效的JSON", "The boundary is not valid JSON"
            ) from None
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
        raise _fail(
            field,
            "geojson_type",
            "边界应为GeoJSON面（Polygon或MultiPolygon）",
            "The boundary must be a GeoJSON Polygon or MultiPolygon",
        )
    try:
        geom = shape(value)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise _fail(
            field, "geojson_shape", "边界坐标结构错误", "The boundary's coordinates are malformed"
        ) from None
    # A bow-tie has zero net area yet is a self-intersection: report the reason, not "empty".
    if geom.is_empty or (geom.area == 0 and geom.is_valid):
        raise _fail(field, "polygon_empty", "边界为空或面积为零", "The boundary is empty or has no area")
    if not geom.is_valid:
        reason = explain_validity(geom)
        raise _fail(
            field,
            "polygon_invalid",
            f"边界自相交或无效：{reason}",
            f"The boundary intersects itself or is invalid: {reason}",
        )
    minx, miny, maxx, maxy = geom.bounds
    for x, y in ((minx, miny), (maxx, maxy)):
        coordinates(x, y, field)
    return value


def period_order(
    values: dict[str, Any], instance: Any, zh: str, start: str = "start_date", end: str = "end_date"
) -> list[Problem]:
    """A from/to pair (任职/离任, 起始/截止 …) whose end must not come before its start; the values
    not being changed are taken from `instance`."""
    first = values.get(start, getattr(instance, start, None) if instance else None)
    last = values.get(end, getattr(instance, end, None) if instance else None)
    if first and last and last < first:
        return [
            Problem(
                "end_before_start",
                zh,
                "The end date is before the start date",
                field=end,
                value=last.isoformat(),
            )
        ]
    return []
