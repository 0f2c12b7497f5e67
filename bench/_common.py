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
