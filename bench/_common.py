"""What the benchmarks share: a throwaway database per engine and the environment of a child run."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


def fresh_database(engine: str, tmp: str, pg_name: str) -> str:
    """A new empty database: a SQLite file in `tmp`, or PostgreSQL `pg_name` dropped and created."""
    if engine == "postgres":
        pg_admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        pg_admin(f"CREATE DATABASE {pg_name}")
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    return f"sqlite:///{tmp}/bench.sqlite3"


def child_env(tmp: str, url: str, **extra: Any) -> dict[str, str]:
    """Settings for a child process that runs Django against `url` with a throwaway data key."""
    return {
        **os.environ,
        "ZHIZHI_VAR_DIR": tmp,
        "DATABASE_URL": url,
        "ZHIZHI_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
        "DJANGO_SETTINGS_MODULE": "zhizhi.settings",
        "ZHIZHI_LOG_LEVEL": "WARNING",
        **{k: str(v) for k, v in extra.items()},
    }


def run_child(
    script: str,
    engine: str,
    pg_name: str,
    args: list[str],
    *,
    prefix: str = "zhizhi-bench-",
    extra_env: Callable[[str], dict[str, Any]] | None = None,
) -> Any:
    """Run `script --child *args` against a fresh database of `engine`; the JSON on its last stdout line.

    The PostgreSQL database is dropped afterwards; a failed child ends the benchmark with its stderr.
    `extra_env(tmp)` adds settings that depend on the child's throwaway directory.
    """
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        url = fresh_database(engine, tmp, pg_name)
        env = child_env(tmp, url, **(extra_env(tmp) if extra_env else {}))
        try:
            out = subprocess.run(
                [sys.executable, script, "--child", *args],
                env=env,
                cwd=Path(script).resolve().parent.parent,
                check=False,
                capture_output=True,
                text=True,
            )
        finally:
            if engine == "postgres":
                pg_admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
    if out.returncode != 0:
        sys.exit(f"{engine}: the child failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child_shown(script: str, engine: str, pg_name: str, args: list[str], *, prefix: str) -> int:
    """Run `script --child *args` against a fresh database of `engine`, its output shown as it comes;
    the child's exit code. The PostgreSQL database is dropped afterwards."""
    import subprocess
    import sys

    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            env = child_env(tmp, fresh_database(engine, tmp, pg_name))
            cmd = [sys.executable, script, "--child", *args]
            return subprocess.run(
                cmd, env=env, cwd=Path(script).resolve().parent.parent, check=False
            ).returncode
    finally:
        if engine == "postgres":
            pg_admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best of `repeat` wall times (seconds) and the last result."""
    import time

    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def insert_series(model: Any, first: int, last: int, expressions: dict[str, str]) -> float:
    """INSERT one `model` row per g in first..last server-side (PostgreSQL generate_series), then ANALYZE;
    `expressions` are SQL over g per column, other columns take the field default. Seconds taken."""
    import time

    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    columns, values, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.column in expressions:
            values.append(expressions[f.column].replace("%", "%%"))
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.get_default(), connection))
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series({first}, {last}) AS g"
    )
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - t0


def pg_reachable() -> bool:
    """Whether the PostgreSQL server answers; any failure means: SQLite only."""
    try:
        pg_admin("SELECT 1")
    except Exception:
        return False
    return True


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank over the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def require_service(name: str) -> None:
    """End the benchmark, saying how to start it, when service `name` (scripts/check_services.py)
    does not answer on 127.0.0.1."""
    import sys

    from scripts.check_services import SERVICES, reachable

    port, start = SERVICES[name]
    if not reachable(port):
        sys.exit(f"{name} is not reachable on 127.0.0.1:{port}. Start it with: {start}")
