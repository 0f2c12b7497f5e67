"""Benchmark: import of N residents from Excel against a raw bulk insert of the same rows.

    .venv/bin/python bench/bench_import.py [--rows 100000] [--db sqlite|postgres]

Runs on a throwaway database (a SQLite file in a temporary directory, or a PostgreSQL database
`bench_import` that it creates and drops), builds the small test street, writes an .xlsx of N
residents, then measures in the same run:

  (a) raw insert   the same rows, already parsed and with ciphertexts precomputed, by one
                   `executemany` INSERT into people_person (the floor no importer can beat);
  (b) read         openpyxl reading the file alone (read-only, values only);
  (c) import       `zhizhi.exchange.import_file` (parse, validate, encrypt, hash, upsert, change log);
  (d) re-import    the same file again (every row unchanged: nothing written);
  (e) validate     `registry.parse` + the registry's rules alone on the same rows, in memory: the
                   per-row validation (ID check digit and region, phone numbering plan) every
                   import must pay, whatever it writes.

It prints rows/s, the peak resident memory (ru_maxrss) after each step, and the ratios import/raw and
import/(read+raw). It never asserts a timing: the figures are for the issue note.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_NAME = "bench_import"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def maxrss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident memory so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def configure(db: str, tmp: Path) -> None:
    os.environ["ZHIZHI_VAR_DIR"] = str(tmp)
    os.environ["ZHIZHI_DATA_KEY"] = base64.b64encode(os.urandom(32)).decode()
    os.environ["ZHIZHI_IMPORT_MAX_BYTES"] = str(500 * 1024 * 1024)
    os.environ["ZHIZHI_LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "zhizhi.settings"
    if db == "sqlite":
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    else:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
            conn.execute(f"CREATE DATABASE {PG_NAME}")
        os.environ["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{PG_NAME}"
    import django

    django.setup()


def drop_postgres() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


def id_number(i: int) -> str:
    from stdnum.cn import ric

    birth = dt.date(1985, 1, 1) + dt.timedelta(days=i // 400)
    body = f"330105{birth:%Y%m%d}{(i % 400) * 2 + 1:03d}"
    return body + ric.calc_check_digit(body + "0")


FIELDS = ["name", "id_number", "gender", "birth_date", "phone", "population_type", "status", "grid", "note"]
HEADERS = ["姓名", "身份证号", "性别", "出生日期", "手机号", "人口类型", "状态", "网格编码", "备注"]


def resident(i: int, grid: str) -> list[object]:
    number = id_number(i)
    birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    return [f"居民{i}", number, "男", birth, f"138{i % 10**8:08d}", "户籍", "在册", grid, f"第{i}号"]


def write_xlsx(path: Path, rows: int, grids: list[str]) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(HEADERS)
    for i in range(rows):
        sheet.append(resident(i, grids[i % len(grids)]))
    book.save(path)


def raw_insert(rows: int, grids: dict[str, object]) -> float:
    """The floor: one executemany INSERT of already-parsed rows, ciphertexts computed beforehand."""
    from django.db import connection, transaction

    from zhizhi import clock, crypto
    from zhizhi.people.models import Person

    now = clock.now()
    codes = list(grids)
    prepared = []
    for i in range(rows):
        name, number, _, birth, phone, *_ = resident(i, codes[i % len(codes)])
        grid = grids[codes[i % len(codes)]]
        prepared.append(
            (
                now, now, 1, grid.path, name, "M", birth,  # type: ignore[attr-defined]
                crypto.encrypt(number), crypto.lookup_hash(number), crypto.mask_id_number(number),
                crypto.encrypt(phone), crypto.lookup_hash(phone), crypto.mask_phone(phone),
                "registered", "active", "", grid.pk, f"第{i}号",  # type: ignore[attr-defined]
            )
        )  # fmt: skip
    columns = (
        "created_at, updated_at, version, area_path, name, gender, birth_date, id_number_enc, "
        "id_number_hash, id_number_masked, phone_enc, phone_hash, phone_masked, population_type, "
        "status, origin, grid_id, note"
    )
    params = ", ".join(["%s"] * 18)
    sql = f"INSERT INTO {Person._meta.db_table} ({columns}) VALUES ({params})"
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, prepared)
    elapsed = time.perf_counter() - start
    return elapsed


def read_only(path: Path) -> float:
    from openpyxl import load_workbook

    start = time.perf_counter()
    book = load_workbook(path, read_only=True, data_only=True)
    count = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert count > 0
    return time.perf_counter() - start


def validate_only(rows: int, grids: list[str]) -> float:
    from zhizhi import registry

    reg = registry.get("people.person")
    raws = [dict(zip(FIELDS, resident(i, grids[i % len(grids)]), strict=True)) for i in range(rows)]
    cache: dict = {}
    today = dt.date.today()
    start = time.perf_counter()
    for raw in raws:
        values, problems = registry.parse(reg, raw, cache=cache, today=today)
        assert not problems and reg.rules is not None
        reg.rules(values, None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmpdir:
        tmp = Path(tmpdir)
        configure(args.db, tmp)
        try:
            run(args.rows, args.db, tmp)
        finally:
            if args.db == "postgres":
                drop_postgres()


def run(rows: int, db: str, tmp: Path) -> None:
    from django.core.management import call_command
    from django.db import transaction

    from tests.factories import build_street
    from zhizhi import exchange, registry
    from zhizhi.models import ChangeLogEntry
    from zhizhi.people.models import Person

    call_command("migrate", verbosity=0)
    street = build_street()
    actor = street.users["community_a"]  # scoped: the realistic case, not a superuser shortcut
    grids = {g.code: g for key, g in street.grids.items() if key.startswith("A")}
    path = tmp / "residents.xlsx"
    t0 = time.perf_counter()
    write_xlsx(path, rows, list(grids))
    print(f"database {db}, {rows:,} residents, file {path.stat().st_size / 1e6:.1f} MB "
          f"(written in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    print(f"peak memory before measuring: {maxrss_mb():.0f} MB")

    # The import runs first so the peak-memory figure after it is the import's own (ru_maxrss only
    # grows); the raw insert, whose prepared rows are held in memory, runs last on an emptied table.
    read = read_only(path)
    print(f"(b) openpyxl read{read:7.2f} s  {rows / read:9,.0f} rows/s   peak {maxrss_mb():.0f} MB")

    reg = registry.get("people.person")
    checked: list[float] = []  # when the last progress call came: every row read and checked

    def progress(done: int, total: int) -> None:
        checked.append(time.perf_counter())

    start = time.perf_counter()
    with path.open("rb") as fh:
        result = exchange.import_file(reg, actor, fh, path.name, progress=progress)
    full = time.perf_counter() - start
    assert result.created == rows and Person.objects.count() == rows
    print(f"(c) import       {full:7.2f} s  {rows / full:9,.0f} rows/s   peak {maxrss_mb():.0f} MB")
    check_phase = checked[-1] - start
    print(
        f"    of which: read + check {check_phase:.2f} s, "
        f"write (rows, change log, scope check) {full - check_phase:.2f} s"
    )

    start = time.perf_counter()
    with path.open("rb") as fh:
        again = exchange.import_file(reg, actor, fh, path.name)
    second = time.perf_counter() - start
    assert again.unchanged == rows and again.created == again.updated == 0
    print(f"(d) re-import    {second:7.2f} s  {rows / second:9,.0f} rows/s   (all unchanged)")

    check = validate_only(rows, list(grids))
    print(f"(e) validate     {check:7.2f} s  {rows / check:9,.0f} rows/s   (parse + rules, no I/O)")

    with transaction.atomic():
        # Nothing refers to these rows yet, so a plain DELETE (no cascade collection) is enough.
        ChangeLogEntry.objects.all()._raw_delete(ChangeLogEntry.objects.db)
        Person.objects.all()._raw_delete(Person.objects.db)
    raw = raw_insert(rows, grids)
    print(f"(a) raw insert   {raw:7.2f} s  {rows / raw:9,.0f} rows/s   peak {maxrss_mb():.0f} MB")

    print(f"ratio import / raw insert          {full / raw:6.1f}x")
    print(f"ratio import / (read + raw insert) {full / (read + raw):6.1f}x")
    print(f"ratio import / (read + validate + raw insert) {full / (read + check + raw):6.1f}x")


if __name__ == "__main__":
    main()
