"""What the benchmarks share: a throwaway database per engine and the environment of a child run."""

from __future__ import annotations

import base64
import os
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
