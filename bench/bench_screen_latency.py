"""Change-to-screen latency of the cockpit: a change committed → the SSE frame received by a client of
the real server (uvicorn, ASGI, on a free port), and the board JSON the screen re-fetches after it.

The child process migrates a throwaway database (SQLite, and PostgreSQL `bench_screen` when reachable),
loads the demo street (scale 0.05), the responsibility list and the indicator catalogue, starts uvicorn
with the same settings, and opens /cockpit/stream/ as the street leader. It then commits, at random
gaps (so the server's poll phase is sampled evenly), in random order:
- `noop`: a bare `live.publish` on channel "cockpit" (the bus alone: the baseline of this run);
- `alarm`: a new alarm (`alerts.alarms.raise_or_update`, which publishes on "alarm");
- `case`: a case registration (`cases.services.register_case`, which publishes on "case");
and times commit → frame. After each frame a second connection fetches the board the way the screen
does (`/api/v1/cockpit/board?fresh=1`). The screen waits `DEBOUNCE_S` for a burst to settle before
that fetch, so change-to-screen ≈ frame + debounce + board.

Prints figures and ratios against the no-op baseline and the bare poll interval; never asserts.
Run: .venv/bin/python bench/bench_screen_latency.py [--changes 90] [--engine sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import pct, pg_reachable, run_child  # noqa: E402

PG_NAME = "bench_screen"
DEBOUNCE_S = 1.0  # zhizhi/static/cockpit/screen.js DEBOUNCE_MS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the child: Django, the server, the client --------------------------------------------------
def setup() -> tuple[Any, Any, str, Any]:
    import io

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from zhizhi.alerts.rule_models import AlertRule
    from zhizhi.cockpit import services
    from zhizhi.geo.models import Region
    from zhizhi.orgs.models import User

    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    services.load_indicator_file()
    # As after the nightly rollup: yesterday is on record, today is computed live.
    from zhizhi import clock
    from zhizhi.cockpit import rollup

    rollup.backfill(clock.today() - dt.timedelta(days=31), clock.today() - dt.timedelta(days=1))
    rule = AlertRule.objects.create(
        code="BENCH", name="压测告警", kind="threshold", device_kind="water_level"
    )
    street = Region.objects.get(level="street")
    leader = User.objects.get(username="leader")
    session = SessionStore()
    session[SESSION_KEY] = str(leader.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = leader.get_session_auth_hash()
    session.save()
    return rule, street, f"{settings.SESSION_COOKIE_NAME}={session.session_key}", User


class Reader(threading.Thread):
    """Reads the SSE stream and stamps the arrival of each benchmark frame (by its marker)."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.cookie = port, path, cookie
        self.arrived: dict[str, float] = {}
        self.opened = threading.Event()
        self.frames: queue.Queue[str] = queue.Queue()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        conn.request("GET", self.path, headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200, response.status
        data = ""
        while True:
            line = response.readline()
            if not line:
                return
            text = line.decode("utf-8").rstrip("\n")
            if text.startswith("retry:"):
                self.opened.set()
            if text.startswith("data: "):
                data = text[6:]
            elif text == "" and data:
                payload = json.loads(data)
                marker = payload.get("title") or payload.get("marker") or ""
                if marker.startswith("bench-"):
                    self.arrived[marker] = time.perf_counter()
                    self.frames.put(marker)
                data = ""


class BoardFetcher(threading.Thread):
    """After each frame, fetch the board as the screen does; time the fetch."""

    def __init__(self, port: int, url: str, cookie: str, frames: queue.Queue[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.url, self.cookie, self.frames = port, url, cookie, frames
        self.seconds: list[float] = []
        self.cached: list[float] = []

    def get(self, conn: http.client.HTTPConnection, url: str) -> float:
        started = time.perf_counter()
        conn.request("GET", url, headers={"Cookie": self.cookie, "Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return time.perf_counter() - started

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self.loop(conn)
        except (OSError, http.client.HTTPException):
            return  # the server stopped at the end of the run

    def loop(self, conn: http.client.HTTPConnection) -> None:
        while True:
            self.frames.get()
            while not self.frames.empty():  # frames that came meanwhile: one fetch, as the screen's debounce
                self.frames.get_nowait()
            self.seconds.append(self.get(conn, self.url))
            # For comparison: the same board as a plain reader gets it (today's figures shared for a
            # few seconds between readers, services.LIVE_CACHE_SECONDS).
            self.cached.append(self.get(conn, self.url.replace("&fresh=1", "")))


def wait_up(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"uvicorn did not start on port {port}")


def child(changes: int) -> None:
    rule, street, cookie, User = setup()
    from zhizhi import clock, live
    from zhizhi.alerts import alarms
    from zhizhi.cases import services as case_services
    from zhizhi.cockpit import services
    from zhizhi.cockpit.models import Indicator

    dispatcher = User.objects.get(username="dispatcher")
    lng, lat = street.center_lng or 120.1, street.center_lat or 30.3
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "zhizhi.asgi:application", "--port", str(port), "--no-access-log",
         "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
        cwd=ROOT,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        wait_up(port)
        reader = Reader(port, f"/cockpit/stream/?region={street.pk}", cookie)
        reader.start()
        if not reader.opened.wait(30):
            raise SystemExit("the stream did not open")
        # The screen's default tab: the first scene with indicators.
        scene = next(s["code"] for s in services.scenes() if s["indicators"])
        board_url = f"/api/v1/cockpit/board?region={street.pk}&scene={scene}&fresh=1"
        fetcher = BoardFetcher(port, board_url, cookie, reader.frames)
        fetcher.start()
        rng = random.Random(7)
        kinds = ["noop", "alarm", "case"] * (changes // 3)
        rng.shuffle(kinds)
        committed: dict[str, tuple[str, float]] = {}
        for n, kind in enumerate(kinds):
            time.sleep(rng.uniform(0.3, 0.9))
            marker = f"bench-{kind}-{n}"
            if kind == "noop":
                live.publish("cockpit", {"marker": marker}, area_path=street.path)
            elif kind == "alarm":
                alarms.raise_or_update(
                    rule, f"bench:{n}", "minor", at=clock.now(), area_path=street.path, title=marker
                )
            else:
                case_services.register_case(dispatcher, title=marker, lng=lng, lat=lat, channel="hotline")
            committed[marker] = (kind, time.perf_counter())  # autocommit: the change is committed
        time.sleep(3)
        latency: dict[str, list[float]] = {"noop": [], "alarm": [], "case": []}
        lost = 0
        for marker, (kind, at) in committed.items():
            if marker in reader.arrived:
                latency[kind].append(reader.arrived[marker] - at)
            else:
                lost += 1
        from zhizhi import live as bus

        print(
            json.dumps(
                {
                    "latency": latency,
                    "lost": lost,
                    "board": fetcher.seconds,
                    "board_cached": fetcher.cached,
                    "indicators": Indicator.objects.filter(enabled=True).count(),
                    "scene": scene,
                    "scene_indicators": Indicator.objects.filter(enabled=True, scene=scene).count(),
                    "poll_s": bus.POLL_SECONDS,
                }
            )
        )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


# --- the parent: one child per engine, then the figures -----------------------------------------
def run(engine: str, changes: int) -> dict[str, Any]:
    return run_child(__file__, engine, PG_NAME, ["--changes", str(changes)], prefix="bench_screen_")


def report(engine: str, result: dict[str, Any]) -> None:
    poll = result["poll_s"]
    base = result["latency"]["noop"]
    base50 = statistics.median(base)
    print(
        f"[{engine}] {result['indicators']} indicators ({result['scene_indicators']} in the board's scene"
        f" {result['scene']}), poll interval {poll * 1000:.0f} ms,"
        f" frames lost {result['lost']}"
    )
    print(
        f"  {'change':<8}{'n':>4}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p50/noop':>10}{'p50/poll':>10}"
    )
    for kind in ("noop", "alarm", "case"):
        xs = result["latency"][kind]
        if not xs:
            continue
        p50 = statistics.median(xs)
        print(
            f"  {kind:<8}{len(xs):>4}{p50 * 1000:>10.0f}{pct(xs, 0.99) * 1000:>10.0f}{max(xs) * 1000:>10.0f}"
            f"{p50 / base50:>10.2f}{p50 / poll:>10.2f}"
        )
    board = result["board"]
    if board:
        b50, b99 = statistics.median(board), pct(board, 0.99)
        print(
            f"  board?fresh=1 fetch after a frame: p50 {b50 * 1000:.0f} ms, p99 {b99 * 1000:.0f} ms"
            f" (n={len(board)})"
        )
        cached = result["board_cached"]
        c50 = statistics.median(cached)
        print(f"  board (shared few-second cache) p50 {c50 * 1000:.0f} ms: fresh/cached {b50 / c50:.1f}×")
        changes = result["latency"]["alarm"] + result["latency"]["case"]
        total50 = statistics.median(changes) + DEBOUNCE_S + b50
        total99 = pct(changes, 0.99) + DEBOUNCE_S + b99
        print(
            f"  change → new key numbers on screen ≈ frame + {DEBOUNCE_S:.0f} s debounce + board: "
            f"p50 {total50:.2f} s, p99 {total99:.2f} s (promise: 5 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=90)
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.changes)
        return
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    if "postgres" in engines and not pg_reachable():
        print("PostgreSQL not reachable: SQLite only")
        engines = ["sqlite"]
    for engine in engines:
        report(engine, run(engine, args.changes))


if __name__ == "__main__":
    main()
