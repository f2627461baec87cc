"""A loopback HTTP forward proxy: it takes absolute-form requests (`GET http://127.0.0.1:PORT/feed`),
forwards them to their loopback server and records what it forwarded.

    with ForwardProxy() as proxy:   # or ForwardProxy(auth=("user", "secret"))
        fetch through proxy.url ...; proxy.forwarded -> [Forwarded(method, url, headers)]

It never connects anywhere but 127.0.0.0/8 and ::1: a request for any other host, a host name
among them (it resolves nothing), is answered 502 and recorded in `refused`. Forwarded requests
carry `Via: 1.1 fake-proxy`, so the server behind can tell they came through it. CONNECT (https
through the proxy) is not served. With `auth`, a request without that Proxy-Authorization is
answered 407.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.fakes._http import LoopbackServer, QuietHandler

VIA = "1.1 fake-proxy"
#: not passed on: hop-by-hop headers and the proxy's own
HOP_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    }
)


@dataclass(frozen=True)
class Forwarded:
    method: str
    url: str
    #: the request's headers as the proxy got them (lower-case names), Proxy-Authorization too
    headers: dict[str, str]


def is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ForwardProxy:
    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._forwarded: list[Forwarded] = []
        self._refused: list[Forwarded] = []
        self.auth = auth
        self._server = LoopbackServer(_ProxyHandler, self)

    @property
    def url(self) -> str:
        """The proxy's URL (with the credentials when it wants them)."""
        if self.auth is None:
            return self._server.base_url
        user, password = self.auth
        return self._server.base_url.replace("http://", f"http://{user}:{password}@", 1)

    def __enter__(self) -> ForwardProxy:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def forwarded(self) -> list[Forwarded]:
        with self._lock:
            return list(self._forwarded)

    @property
    def refused(self) -> list[Forwarded]:
        """Requests it did not forward: not loopback, not absolute-form, or unauthorised."""
        with self._lock:
            return list(self._refused)

    def urls(self) -> list[str]:
        return [f.url for f in self.forwarded]

    def record(self, request: Forwarded, forwarded: bool) -> None:
        with self._lock:
            (self._forwarded if forwarded else self._refused).append(request)

    def authorised(self, header: str | None) -> bool:
        if self.auth is None:
            return True
        expected = base64.b64encode(":".join(self.auth).encode()).decode()
        return header == f"Basic {expected}"


class _ProxyHandler(QuietHandler):
    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_CONNECT(self) -> None:
        owner: ForwardProxy = self.server.owner
        owner.record(Forwarded("CONNECT", self.path, self._headers()), forwarded=False)
        self.send_bytes(405, b"CONNECT is not served by this fake")

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _forward(self) -> None:
        owner: ForwardProxy = self.server.owner
        headers = self._headers()
        body = self.read_body()
        request = Forwarded(self.command, self.path, headers)
        parts = urlsplit(self.path)
        if not owner.authorised(headers.get("proxy-authorization")):
            owner.record(request, forwarded=False)
            self.send_bytes(407, b"", {"Proxy-Authenticate": 'Basic realm="fake"'})
            return
        if parts.scheme != "http" or not is_loopback_address(parts.hostname or ""):
            owner.record(request, forwarded=False)
            self.send_bytes(502, b"the fake proxy forwards to loopback addresses only")
            return
        owner.record(request, forwarded=True)
        sent = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        sent["Via"] = VIA
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
        try:
            conn.request(self.command, target or "/", body=body or None, headers=sent)
            answer = conn.getresponse()
            data = answer.read()
            kept = {
                k: v for k, v in answer.getheaders()
                if k.lower() not in HOP_HEADERS and k.lower() != "content-length"
            }
            status = answer.status
        except OSError:
            status, data, kept = 502, b"the server behind the fake proxy did not answer", {}
        finally:
            conn.close()
        self.send_bytes(status, data, kept)
