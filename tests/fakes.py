"""Loopback test doubles that speak real HTTP: an SMS gateway / robot webhook that records what it
receives, drops repeats by Idempotency-Key, and can be taken down and brought back."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeGateway:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.keys: set[str] = set()
        self.down = False  # answer 503 while True
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if gateway.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                key = self.headers.get("Idempotency-Key", "")
                if key not in gateway.keys:
                    gateway.keys.add(key)
                    gateway.received.append({"path": self.path, "key": key, "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errcode": 0}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
