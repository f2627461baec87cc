"""A load balancer in front of several webhook listeners, as a deployment with more than one
`updates` process has: each POST goes to the next backend in turn, and to the one after when a
backend does not answer (dead or not listening yet). Loopback only, plain HTTP."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from tests.fakes._http import LoopbackServer, QuietHandler
from tests.fakes.webhook import is_loopback_http

#: headers passed through to a backend (Telegram's secret among them)
FORWARDED = ("content-type", "x-telegram-bot-api-secret-token")


class Balancer:
    def __init__(self, backends: list[str]) -> None:
        for url in backends:
            if not is_loopback_http(url):
                raise ValueError(f"not a loopback http:// URL: {url}")
        self.backends = backends
        #: backend URL -> requests it answered
        self.served: Counter[str] = Counter()
        self._next = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(_BalancerHandler, self)

    def url(self, path: str) -> str:
        return self._server.base_url + path

    def __enter__(self) -> Balancer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def order(self) -> list[str]:
        """The backends to try for the next request, starting with the next one in turn."""
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        return self.backends[start:] + self.backends[:start]

    def forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for backend in self.order():
            answer = _post(backend, body, headers)
            if answer is not None:
                with self._lock:
                    self.served[backend] += 1
                return answer
        return 502, b""


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes] | None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None
    finally:
        conn.close()


class _BalancerHandler(QuietHandler):
    def do_POST(self) -> None:
        owner: Balancer = self.server.owner
        headers: dict[str, Any] = {
            name: value for name, value in self.headers.items() if name.lower() in FORWARDED
        }
        status, body = owner.forward(self.read_body(), headers)
        self.send_bytes(status, body)
