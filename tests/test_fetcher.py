"""Fetcher against real loopback servers (127.0.0.1 only): caps, redirects, errors, SSRF."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.errors import BlockedAddressError, FetchError
from bot.feeds.fetcher import Fetcher, FetchSettings, human_size, parse_max_age, parse_retry_after
from bot.feeds.netguard import AddressPolicy

MiB = 1024 * 1024
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def head(status: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def gzip_bomb(decompressed: int, block: int = MiB) -> bytes:
    """A valid gzip stream of `decompressed` zero bytes, built without compressing it all:
    after a full flush every block of zeros compresses to the same bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(block)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    count = decompressed // block
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    size = count * block % 2**32
    trailer = crc.to_bytes(4, "little") + size.to_bytes(4, "little")
    return header + first + repeat * (count - 1) + comp.flush() + trailer


@dataclass
class LoopServer:
    """Minimal HTTP/1.1 server on a loopback address; every response closes the connection."""

    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, 0)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            request = _parse(raw)
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                handler = self.routes.get(request.path.split("?")[0], _not_found)
                await handler(request, writer)
                await writer.drain()
            finally:
                self.in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _parse(raw: bytes) -> Request:
    lines = raw.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Request(method, path, headers)


async def _not_found(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(head("404 Not Found", {"Content-Length": "0"}))


def static(status: str, body: bytes = b"", **headers: str) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        hdrs.setdefault("Content-Length", str(len(body)))
        writer.write(head(status, hdrs) + body)

    return handler


def redirect(status: str, location: str) -> Handler:
    return static(status, Location=location)


async def feed_with_etag(request: Request, writer: asyncio.StreamWriter) -> None:
    if request.headers.get("if-none-match") == '"v1"':
        writer.write(head("304 Not Modified", {"ETag": '"v1"'}))
        return
    writer.write(head("200 OK", {
        "Content-Type": "application/rss+xml", "ETag": '"v1"', "Content-Length": str(len(FEED)),
        "Last-Modified": "Tue, 01 Oct 2024 10:00:00 GMT", "Cache-Control": "public, max-age=600",
    }) + FEED)


async def slow_headers(request: Request, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(10)


async def drip(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(head("200 OK", {"Content-Length": "1000"}))
    for _ in range(1000):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


def stream_zeros(total: int, *, declare: bool = False) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", {"Content-Length": str(total)} if declare else {}))
        chunk = bytes(64 * 1024)
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    return handler


def send_bytes(body: bytes, **headers: str) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", {k.replace("_", "-"): v for k, v in headers.items()}))
        view = memoryview(body)
        for start in range(0, len(body), 64 * 1024):
            writer.write(view[start:start + 64 * 1024])
            await writer.drain()

    return handler


@pytest.fixture
async def server() -> AsyncIterator[LoopServer]:
    srv = LoopServer()
    await srv.start()
    yield srv
    await srv.stop()


def local(**overrides: Any) -> FetchSettings:
    return FetchSettings(allow_private=True, **overrides)


async def fetch(url: str, settings: FetchSettings | None = None, **kwargs: Any) -> Any:
    async with Fetcher(settings or local()) as fetcher:
        return await fetcher.fetch(url, **kwargs)


async def fetch_error(url: str, settings: FetchSettings | None = None, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(url, settings, **kw)
    return info.value


# --- successful exchanges -------------------------------------------------------------------


async def test_200_then_304_with_etag(server: LoopServer) -> None:
    server.routes["/feed"] = feed_with_etag
    async with Fetcher(local()) as fetcher:
        first = await fetcher.fetch(server.url("/feed"))
        second = await fetcher.fetch(server.url("/feed"), etag=first.etag,
                                     last_modified=first.last_modified)
    assert (first.status, first.body, first.etag) == (200, FEED, '"v1"')
    assert first.content_type == "application/rss+xml"
    assert first.max_age == 600 and first.permanent_url is None and not first.not_modified
    assert second.status == 304 and second.not_modified and second.body == b""
    sent = server.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Tue, 01 Oct 2024 10:00:00 GMT"


async def test_polite_request_headers(server: LoopServer) -> None:
    server.routes["/feed"] = feed_with_etag
    await fetch(server.url("/feed"))
    sent = server.requests[0].headers
    assert sent["user-agent"] == FetchSettings().user_agent
    assert "application/rss+xml" in sent["accept"] and "*/*;q=0.1" in sent["accept"]
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent


@pytest.mark.parametrize("encoding", ["gzip", "deflate-zlib", "deflate-raw"])
async def test_compressed_body_is_decoded(server: LoopServer, encoding: str) -> None:
    if encoding == "gzip":
        body = gzip.compress(FEED)
    else:
        wbits = zlib.MAX_WBITS if encoding == "deflate-zlib" else -zlib.MAX_WBITS
        comp = zlib.compressobj(6, zlib.DEFLATED, wbits)
        body = comp.compress(FEED) + comp.flush()
    server.routes["/z"] = send_bytes(body, Content_Encoding=encoding.split("-")[0])
    assert (await fetch(server.url("/z"))).body == FEED


async def test_html_page_is_returned_with_its_content_type(server: LoopServer) -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="/f"></head></html>'
    server.routes["/page"] = static("200 OK", page, Content_Type="text/html; charset=utf-8")
    result = await fetch(server.url("/page"))
    assert result.content_type.startswith("text/html") and result.body == page


# --- caps -----------------------------------------------------------------------------------


async def test_slow_headers_time_out(server: LoopServer) -> None:
    server.routes["/slow"] = slow_headers
    started = time.monotonic()
    error = await fetch_error(server.url("/slow"), local(total_timeout=0.5))
    assert error.kind == "timeout" and str(error) == "timed out after 0.5 s"
    assert time.monotonic() - started < 3


async def test_slow_drip_hits_total_timeout(server: LoopServer) -> None:
    server.routes["/drip"] = drip  # a byte every 50 ms: no single read ever times out
    started = time.monotonic()
    error = await fetch_error(server.url("/drip"), local(total_timeout=1.0))
    assert error.kind == "timeout"
    assert 0.9 < time.monotonic() - started < 3


async def test_huge_streamed_body_stops_at_cap(server: LoopServer) -> None:
    server.routes["/huge"] = stream_zeros(20 * MiB)
    settings = local(max_bytes=1 * MiB)
    async with Fetcher(settings) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(server.url("/huge"))
        assert time.monotonic() - started < 5
        assert fetcher.stats.wire_bytes <= 1 * MiB + 64 * 1024
    assert info.value.kind == "too_large" and str(info.value) == "larger than 1 MiB"


async def test_declared_huge_body_refused_without_reading(server: LoopServer) -> None:
    server.routes["/huge"] = stream_zeros(20 * MiB, declare=True)
    async with Fetcher(local()) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(server.url("/huge"))
        assert fetcher.stats.wire_bytes == 0
    assert str(info.value) == "larger than 5 MiB"


async def test_gzip_bomb_stops_early_with_bounded_memory(server: LoopServer) -> None:
    bomb = gzip_bomb(1024 * MiB)  # 1 GiB of zeros in about 1 MB
    server.routes["/bomb"] = send_bytes(bomb, Content_Encoding="gzip")
    tracemalloc.start()
    try:
        async with Fetcher(local(max_bytes=5 * MiB)) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(server.url("/bomb"))
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too_large"
    assert fetcher.stats.wire_bytes <= 64 * 1024  # stopped within the first raw chunk
    assert peak < 20 * MiB, human_size(peak)


async def test_gzip_bomb_fixture_is_valid() -> None:
    assert gzip.decompress(gzip_bomb(4 * MiB)) == bytes(4 * MiB)


async def test_corrupt_and_truncated_gzip_are_errors(server: LoopServer) -> None:
    good = gzip.compress(FEED * 50)
    server.routes["/corrupt"] = send_bytes(good[:10] + b"\x00garbage" * 10,
                                           Content_Encoding="gzip")
    server.routes["/truncated"] = send_bytes(good[: len(good) // 2], Content_Encoding="gzip")
    corrupt = await fetch_error(server.url("/corrupt"))
    truncated = await fetch_error(server.url("/truncated"))
    assert corrupt.kind == "http" and str(corrupt).startswith("corrupt gzip body")
    assert truncated.kind == "http" and str(truncated) == "truncated gzip body"


# --- redirects ------------------------------------------------------------------------------


async def test_redirect_loop(server: LoopServer) -> None:
    server.routes["/a"] = redirect("302 Found", "/b")
    server.routes["/b"] = redirect("302 Found", "/a")
    error = await fetch_error(server.url("/a"))
    assert (error.kind, str(error)) == ("redirects", "redirect loop")
    assert [r.path for r in server.requests] == ["/a", "/b"]


async def test_too_many_redirects(server: LoopServer) -> None:
    for i in range(10):
        server.routes[f"/r{i}"] = redirect("307 Temporary Redirect", f"/r{i + 1}")
    error = await fetch_error(server.url("/r0"), local(max_redirects=3))
    assert error.kind == "redirects" and str(error).startswith("too many redirects")
    assert len(server.requests) == 4


async def test_permanent_chain_sets_permanent_url(server: LoopServer) -> None:
    server.routes["/old"] = redirect("301 Moved Permanently", "/older")
    server.routes["/older"] = redirect("308 Permanent Redirect", server.url("/feed"))
    server.routes["/feed"] = feed_with_etag
    result = await fetch(server.url("/old"))
    assert result.body == FEED
    assert result.url == result.permanent_url == server.url("/feed")


async def test_temporary_hop_means_not_permanent(server: LoopServer) -> None:
    server.routes["/old"] = redirect("301 Moved Permanently", "/tmp")
    server.routes["/tmp"] = redirect("302 Found", "/feed")
    server.routes["/feed"] = feed_with_etag
    result = await fetch(server.url("/old"))
    assert result.url == server.url("/feed") and result.permanent_url is None


async def test_redirect_to_other_scheme_is_bad_url(server: LoopServer) -> None:
    server.routes["/x"] = redirect("302 Found", "file:///etc/passwd")
    error = await fetch_error(server.url("/x"))
    assert error.kind == "bad_url" and "file:" in str(error)


# --- HTTP errors ----------------------------------------------------------------------------


async def test_status_errors(server: LoopServer) -> None:
    server.routes["/gone"] = static("410 Gone")
    server.routes["/busy"] = static("429 Too Many Requests", Retry_After="120")
    server.routes["/down"] = static("503 Service Unavailable",
                                    Retry_After="Wed, 21 Oct 2099 07:28:00 GMT")
    server.routes["/broken"] = static("500 Internal Server Error")
    gone = await fetch_error(server.url("/gone"))
    busy = await fetch_error(server.url("/busy"))
    down = await fetch_error(server.url("/down"))
    missing = await fetch_error(server.url("/missing"))
    broken = await fetch_error(server.url("/broken"))
    assert (gone.kind, gone.status) == ("gone", 410)
    assert (busy.kind, busy.status, busy.retry_after) == ("rate_limited", 429, 120)
    assert down.kind == "rate_limited" and down.retry_after is not None and down.retry_after > 1e8
    assert (missing.kind, missing.status, str(missing)) == ("http", 404, "HTTP 404 Not Found")
    assert (broken.kind, str(broken)) == ("http", "HTTP 500 Internal Server Error")


async def test_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    error = await fetch_error(f"http://127.0.0.1:{port}/feed")
    assert (error.kind, str(error)) == ("connect", "could not connect: connection refused")


async def test_tls_error_and_sni_keeps_the_host_name() -> None:
    hello: list[bytes] = []

    async def not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello.append(await reader.read(4096))
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(not_tls, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    try:
        async with Fetcher(local(), resolver=resolver) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(f"https://feeds.test:{port}/feed")
    finally:
        srv.close()
        await srv.wait_closed()
    assert info.value.kind == "tls" and str(info.value).startswith("TLS error:")
    assert b"feeds.test" in hello[0]  # SNI names the host although we dialled 127.0.0.1


def self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """A throwaway certificate for `host` (skips when the openssl command is missing)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host}"],
        check=True, capture_output=True,
    )
    return cert, key


async def test_https_fetch_to_a_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole HTTPS exchange (handshake with SNI and certificate check, keep-alive reuse of the
    TLS connection) to a checked address."""
    import ssl

    from bot.feeds import fetcher as fetcher_module

    cert, key = self_signed(tmp_path, "feeds.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             + f"Content-Length: {len(FEED)}\r\n\r\n".encode() + FEED)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    monkeypatch.setattr(fetcher_module, "tls_context",
                        lambda: ssl.create_default_context(cafile=str(cert)))

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    try:
        async with Fetcher(local(), resolver=resolver) as fetcher:
            first = await fetcher.fetch(f"https://feeds.test:{port}/feed")
            second = await fetcher.fetch(f"https://feeds.test:{port}/feed")
            with pytest.raises(FetchError) as info:  # certificate is not for this name
                await fetcher.fetch(f"https://127.0.0.1:{port}/feed")
    finally:
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 5)
    assert first.body == second.body == FEED and first.status == 200
    assert len(connections) == 1  # one handshake, the connection reused; 127.0.0.1 refused
    assert info.value.kind == "tls" and "certificate" in str(info.value).lower()


# --- concurrency ----------------------------------------------------------------------------


async def test_slow_host_does_not_starve_others(server: LoopServer) -> None:
    release = asyncio.Event()

    async def hold(request: Request, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await static("200 OK", FEED)(request, writer)

    server.routes["/hold"] = hold
    server.routes["/feed"] = feed_with_etag

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    settings = local(per_host_connections=2, max_connections=4)
    async with Fetcher(settings, resolver=resolver) as fetcher:
        slow = [asyncio.create_task(fetcher.fetch(server.url("/hold", "slow.test")))
                for _ in range(6)]
        await asyncio.sleep(0.3)
        assert server.in_flight == 2  # per-host cap
        fast = await asyncio.wait_for(fetcher.fetch(server.url("/feed", "fast.test")), 3)
        assert fast.body == FEED
        release.set()
        results = await asyncio.gather(*slow)
    assert all(r.body == FEED for r in results)
    assert server.max_in_flight <= 3


# --- SSRF end to end (allow_private=False) --------------------------------------------------


LOOPBACK_SPELLINGS = [
    "127.0.0.1", "localhost", "localhost.", "0.0.0.0", "[::1]", "2130706433", "0x7f000001",
    "0177.0.0.1", "[::ffff:127.0.0.1]", "127.1", "sneaky.test",
]


async def test_every_loopback_spelling_is_refused_before_any_request(server: LoopServer) -> None:
    server.routes["/feed"] = feed_with_etag
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if host == "sneaky.test" else ["93.184.216.34"]

    settings = FetchSettings(allowed_ports=frozenset({server.port}))
    async with Fetcher(settings, resolver=resolver) as fetcher:
        for host in LOOPBACK_SPELLINGS:
            with pytest.raises(BlockedAddressError) as info:
                await fetcher.fetch(server.url("/feed", host))
            assert info.value.kind == "blocked"
            assert str(info.value).startswith("refused: "), host
            assert "loopback" in str(info.value) or "unspecified" in str(info.value), host
    assert server.connections == 0 and server.requests == []
    assert asked == ["sneaky.test"]  # literals are never resolved


async def test_name_with_one_private_address_is_refused(server: LoopServer) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]  # never dialled: refused first

    async with Fetcher(FetchSettings(), resolver=resolver) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            await fetcher.fetch("http://mixed.test/feed")
    assert str(info.value) == "refused: 10.1.2.3 is a private address (resolved from mixed.test)"


async def test_disallowed_port_refused(server: LoopServer) -> None:
    policy = AddressPolicy(exempt=(ipaddress.ip_network("127.0.0.0/8"),))
    async with Fetcher(FetchSettings(), policy=policy) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            await fetcher.fetch(server.url("/feed"))
    assert str(info.value) == (
        f"refused: port {server.port} is not allowed (only 80, 443, 8080, 8443)"
    )
    assert server.connections == 0


@pytest.fixture
async def second_loopback() -> AsyncIterator[LoopServer]:
    srv = LoopServer(host="127.0.0.2")
    try:
        await srv.start()
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    yield srv
    await srv.stop()


@pytest.mark.parametrize("target_host", ["127.0.0.2", "other.test"])
async def test_redirect_into_blocked_address_is_refused_before_connecting(
    server: LoopServer, second_loopback: LoopServer, target_host: str
) -> None:
    second_loopback.routes["/feed"] = feed_with_etag
    server.routes["/go"] = redirect("302 Found", second_loopback.url("/feed", target_host))
    server.routes["/feed"] = feed_with_etag
    names = {"public.test": "127.0.0.1", "other.test": "127.0.0.2"}

    async def resolver(host: str, port: int) -> list[str]:
        return [names[host]]

    # only 127.0.0.1 is treated as acceptable, as a public address would be
    policy = AddressPolicy(
        allowed_ports=frozenset({server.port, second_loopback.port}),
        exempt=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    async with Fetcher(FetchSettings(), resolver=resolver, policy=policy) as fetcher:
        ok = await fetcher.fetch(server.url("/feed", "public.test"))
        with pytest.raises(BlockedAddressError) as info:
            await fetcher.fetch(server.url("/go", "public.test"))
    assert ok.body == FEED
    assert str(info.value).startswith("refused: 127.0.0.2 is a loopback address")
    assert [r.path for r in server.requests] == ["/feed", "/go"]
    assert second_loopback.connections == 0


# --- helpers --------------------------------------------------------------------------------


def test_retry_after_and_max_age_parsing() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=500) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_max_age("no-cache, max-age=300") == 300
    assert parse_max_age('max-age="60"') == 60
    assert parse_max_age("max-age=-1") is None and parse_max_age(None) is None
    assert human_size(5 * MiB) == "5 MiB" and human_size(1536) == "1.5 KiB"


async def test_bad_urls_never_touch_the_network() -> None:
    for url in ["ftp://example.com/feed", "example.com/feed", "http:///feed", "http://a:99999/"]:
        error = await fetch_error(url, FetchSettings())
        assert error.kind == "bad_url", url


async def test_slow_name_resolution_is_a_connect_timeout() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]

    async with Fetcher(local(connect_timeout=0.2), resolver=resolver) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch("http://slow-dns.test/feed")
    assert (info.value.kind, str(info.value)) == ("timeout", "timed out connecting after 0.2 s")


async def test_body_cut_short_is_a_connection_error(server: LoopServer) -> None:
    async def short(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head("200 OK", {"Content-Length": "1000"}) + b"<rss>")

    server.routes["/short"] = short
    error = await fetch_error(server.url("/short"))
    assert error.kind == "connect" and str(error).startswith("the connection broke")


# --- the shared FeedServer fake and real seed feeds -----------------------------------------


SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def seed_feed() -> bytes:
    seeds = sorted((SHARED / "seeds").glob("*.xml"))
    if not seeds:
        pytest.skip("shared seeds absent")
    return seeds[0].read_bytes()


async def test_against_shared_feedserver_with_a_real_seed(seed_feed: bytes) -> None:
    feedserver = pytest.importorskip("tests.fakes.feedserver")
    body = seed_feed
    srv = feedserver.FeedServer()
    srv.set_feed("/feed.xml", body)
    srv.redirect("/moved", "/feed.xml", status=301)
    srv.gzip_bomb("/bomb", 256 * MiB)
    srv.huge("/huge", 64 * MiB)
    with srv:
        async with Fetcher(local(max_bytes=2 * MiB)) as fetcher:
            first = await fetcher.fetch(srv.url("/moved"))
            again = await fetcher.fetch(first.url, etag=first.etag)
            errors = []
            for path in ["/bomb", "/huge"]:
                with pytest.raises(FetchError) as info:
                    await fetcher.fetch(srv.url(path))
                errors.append(info.value.kind)
    assert first.body == body and first.permanent_url == srv.url("/feed.xml")
    assert again.status == 304
    assert errors == ["too_large", "too_large"]
