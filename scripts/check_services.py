"""Fail fast, with the command that starts it, when a service the tests need is not running."""

from __future__ import annotations

import socket
import sys

SERVICES = {
    "postgres": (
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "redis": (
        6379,
        'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    ),
    "mqtt": (1883, "mosquitto -d -c /etc/mosquitto/mosquitto.conf"),
}


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def main(names: list[str]) -> int:
    failed = 0
    for name in names:
        port, start = SERVICES[name]
        if not reachable(port):
            print(
                f"{name} is not reachable on 127.0.0.1:{port}. Start it with:\n    {start}", file=sys.stderr
            )
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(SERVICES)))
