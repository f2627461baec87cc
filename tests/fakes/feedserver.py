"""A loopback HTTP server for feeds: conditional GETs, redirects, slow / huge / gzip-bomb bodies.

    server = FeedServer().start()
    server.set_feed("/a.xml", rss(...)); httpx.get(server.url("/a.xml"))
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from tests.fakes._http import LoopbackServer, QuietHandler

RSS_TYPE = "application/rss+xml; charset=utf-8"
STREAM_CHUNK = 64 * 1024
_HUGE_PREFIX = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>huge'
_HUGE_FILL = b"</title><item><title>filler</title></item><title>" * 1300  # ~64 KiB


@dataclass
class Route:
    kind: str  # feed | response | redirect | drip | huge | gzip_bomb | file
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunk: bytes = b""
    every_s: float = 0.0
    total_bytes: int = 0
    file: Path | None = None


@dataclass(frozen=True)
class RequestLog:
    path: str
    method: str
    headers: dict[str, str]
    at: float


class FeedServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._delays: dict[str, float] = {}
        self._log: list[RequestLog] = []
        #: path -> (headers a request must carry, the status answering one without)
        self._required: dict[str, tuple[dict[str, str], int]] = {}
        #: path -> (headers, the route served to requests that carry them)
        self._private: dict[str, tuple[dict[str, str], Route]] = {}
        #: requests of each path being answered now, and the most seen at once
        self._busy: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self._server = LoopbackServer(_FeedHandler, self)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> FeedServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- scenario
    def set_feed(
        self,
        path: str,
        body: bytes | str,
        content_type: str = RSS_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve `body` with a strong ETag (content hash) and Last-Modified (now)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {
            "Content-Type": content_type,
            "ETag": '"' + hashlib.sha256(data).hexdigest()[:32] + '"',
            "Last-Modified": email.utils.formatdate(time.time(), usegmt=True),
            **(headers or {}),
        }
        self._put(path, Route("feed", body=data, headers=all_headers))

    def set_response(
        self, path: str, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self._put(path, Route("response", status=status, body=data, headers=dict(headers or {})))

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        self._put(path, Route("redirect", status=status, headers={"Location": to}))

    def slow(self, path: str, delay_s: float) -> None:
        """Delay the response headers of `path` (whatever it serves) by delay_s."""
        with self._lock:
            self._delays[path] = delay_s

    def drip(self, path: str, chunk: bytes, every_s: float, total_bytes: int) -> None:
        self._put(path, Route("drip", chunk=chunk, every_s=every_s, total_bytes=total_bytes))

    def huge(self, path: str, total_bytes: int) -> None:
        self._put(path, Route("huge", total_bytes=total_bytes))

    def gzip_bomb(self, path: str, decompressed_bytes: int) -> None:
        self._put(path, Route("gzip_bomb", total_bytes=decompressed_bytes))

    def serve_file(self, path: str, file: Path, headers: dict[str, str] | None = None) -> None:
        self._put(path, Route("file", file=Path(file), headers=dict(headers or {})))

    def require(self, path: str, headers: dict[str, str], status: int = 401) -> None:
        """Answer `path` with `status` (401 asks for basic auth) unless the request carries
        each of `headers` (names in any case, values exactly)."""
        with self._lock:
            self._required[path] = ({k.lower(): v for k, v in headers.items()}, status)

    def set_private_feed(self, path: str, body: bytes | str, headers: dict[str, str]) -> None:
        """Serve `body` at `path` to requests that carry each of `headers` (a member's cookie),
        and what `path` serves otherwise to the others."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        route = Route("feed", body=data, headers={"Content-Type": RSS_TYPE, "ETag": etag})
        with self._lock:
            self._private[path] = ({k.lower(): v for k, v in headers.items()}, route)

    def _put(self, path: str, route: Route) -> None:
        with self._lock:
            self._routes[path] = route

    # ---------------------------------------------------------------- inspection
    def requests(self, path: str | None = None) -> list[RequestLog]:
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]

    def hits(self, path: str) -> int:
        return len(self.requests(path))

    def busy(self, path: str, change: int) -> None:
        with self._lock:
            now = self._busy[path] = self._busy.get(path, 0) + change
            self.most_at_once[path] = max(self.most_at_once.get(path, 0), now)

    # ---------------------------------------------------------------- used by the handler
    def lookup(self, raw_path: str, method: str, headers: dict[str, str]) -> tuple[
        Route | None, float
    ]:
        with self._lock:
            self._log.append(RequestLog(raw_path, method, headers, time.monotonic()))
            key = raw_path if raw_path in self._routes else urlsplit(raw_path).path
            required, status = self._required.get(key, ({}, 0))
            if any(headers.get(name) != value for name, value in required.items()):
                asks = {"WWW-Authenticate": 'Basic realm="feeds"'} if status == 401 else {}
                return Route("response", status=status, body=b"no", headers=asks), 0.0
            wanted, private = self._private.get(key, ({}, None))
            if private is not None and all(headers.get(n) == v for n, v in wanted.items()):
                return private, self._delays.get(key, 0.0)
            return self._routes.get(key), self._delays.get(key, 0.0)


@lru_cache(maxsize=8)
def gzip_bomb_bytes(decompressed_bytes: int) -> bytes:
    """A gzip stream that inflates to `decompressed_bytes` of whitespace; built in chunks."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    out = [comp.compress(_HUGE_PREFIX)]
    block = b" " * (1 << 20)
    remaining = max(decompressed_bytes - len(_HUGE_PREFIX), 0)
    while remaining > 0:
        piece = block if remaining >= len(block) else block[:remaining]
        out.append(comp.compress(piece))
        remaining -= len(piece)
    out.append(comp.flush())
    return b"".join(out)


def _generated(total: int) -> Iterator[bytes]:
    head = _HUGE_PREFIX[:total]
    yield head
    sent = len(head)
    while sent < total:
        piece = _HUGE_FILL[: min(len(_HUGE_FILL), total - sent)]
        yield piece
        sent += len(piece)


def is_not_modified(route: Route, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or route.headers.get("ETag") in tags
    ims = headers.get("if-modified-since")
    if ims is None or "Last-Modified" not in route.headers:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims)
        modified = email.utils.parsedate_to_datetime(route.headers["Last-Modified"])
    except (TypeError, ValueError):
        return False
    return modified <= since


class _FeedHandler(QuietHandler):
    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner: FeedServer = self.server.owner
        owner.busy(self.path, +1)
        try:
            self._answer(owner)
        finally:
            owner.busy(self.path, -1)

    def _answer(self, owner: FeedServer) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        route, delay = owner.lookup(self.path, self.command, headers)
        if delay and self.server.stopping.wait(delay):
            return
        if route is None:
            self.send_bytes(404, b"not found", {"Content-Type": "text/plain"})
        elif route.kind == "feed" and is_not_modified(route, headers):
            kept = {k: v for k, v in route.headers.items() if k in ("ETag", "Last-Modified")}
            self.send_response(304)
            for name, value in kept.items():
                self.send_header(name, value)
            self.end_headers()
        elif route.kind in ("feed", "response", "redirect"):
            self.send_bytes(route.status, route.body, route.headers)
        elif route.kind == "file":
            assert route.file is not None
            self.send_bytes(200, route.file.read_bytes(), route.headers)
        elif route.kind == "gzip_bomb":
            body = gzip_bomb_bytes(route.total_bytes)
            self.send_bytes(200, body, {"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"})
        else:
            self._stream(route)

    def _stream(self, route: Route) -> None:
        self.send_response(200)
        self.send_header("Content-Type", RSS_TYPE)
        self.send_header("Content-Length", str(route.total_bytes))
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = _drip(route) if route.kind == "drip" else _generated(route.total_bytes)
        for piece in pieces:
            if self.server.stopping.is_set():
                break
            self.wfile.write(piece)
            self.wfile.flush()
            if route.kind == "drip" and self.server.stopping.wait(route.every_s):
                break
        self.close_connection = True


def _drip(route: Route) -> Iterator[bytes]:
    sent = 0
    chunk = route.chunk or b" "
    while sent < route.total_bytes:
        piece = chunk[: route.total_bytes - sent]
        yield piece
        sent += len(piece)
