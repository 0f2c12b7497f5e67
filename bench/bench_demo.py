"""Wall time of `manage.py demo_street` (full scale) on a fresh temporary SQLite database.

Migrates a new database in a temporary directory, then times the command alone, in a child
process as `make demo` runs it. Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_demo.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="1.0")
    parser.add_argument("--seed", default="42")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zhizhi-bench-demo-") as tmp:
        env = {
            **os.environ,
            "ZHIZHI_VAR_DIR": tmp,
            "DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite3",
            "ZHIZHI_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "DJANGO_SETTINGS_MODULE": "zhizhi.settings",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        started = time.perf_counter()
        subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, cwd=ROOT)
        migrated = time.perf_counter()
        result = subprocess.run(
            [*manage, "demo_street", "--seed", args.seed, "--scale", args.scale],
            env=env,
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        done = time.perf_counter()
        size = Path(tmp, "demo.sqlite3").stat().st_size
    took = [line for line in result.stdout.splitlines() if "Took" in line]
    cores = os.cpu_count()
    print(f"demo_street on a fresh SQLite database (scale {args.scale}, seed {args.seed}, {cores} cores)")
    print(f"  migrate            {migrated - started:6.1f} s")
    print(f"  demo_street wall   {done - migrated:6.1f} s   (includes Python and Django start-up)")
    if took:
        print(f"  inside the command {took[0].strip()}")
    print(f"  database size      {size / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
