"""A loopback HTTP forward proxy: it takes absolute-form requests (`GET http://127.0.0.1:PORT/feed`),
forwards them to their loopback server and records what it forwarded.

    with ForwardProxy() as proxy:   # or ForwardProxy(auth=("user", "secret"))
        fetch through proxy.url ...; proxy.forwarded -> [Forwarded(method, url, headers)]

It never connects anywhere but 127.0.0.0/8 and ::1: a request for any other host is answered
502 and recorded in `refused`. It resolves no names but those `hosts` maps to loopback addresses
(the fake's own DNS). Forwarded requests carry `Via: 1.1 fake-proxy`, so the server behind can
tell they came through it. CONNECT host:port (https through the proxy) opens a tunnel, recorded
as a `Forwarded("CONNECT", "host:port", ...)`. With `auth`, a request without that
Proxy-Authorization is answered 407.

`SocksProxy` is the same for SOCKS4/4a/5 (CONNECT), on the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import ipaddress
import selectors
import socket
import threading
import typing
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


def loopback_only(hosts: dict[str, str]) -> dict[str, str]:
    for name, address in hosts.items():
        if not is_loopback_address(address):
            raise ValueError(f"{name} -> {address} is not a loopback address")
    return hosts


class ForwardProxy:
    def __init__(
        self, auth: tuple[str, str] | None = None, hosts: dict[str, str] | None = None
    ) -> None:
        self.hosts = loopback_only(dict(hosts or {}))
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

    def address(self, host: str) -> str | None:
        """The loopback address to dial for `host`, or None: not one the fake may reach."""
        host = host.strip("[]")
        address = self.hosts.get(host.lower(), host)
        return address if is_loopback_address(address) else None

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
        request = Forwarded("CONNECT", self.path, self._headers())
        host, _, port = self.path.rpartition(":")
        address = owner.address(host)
        if not owner.authorised(request.headers.get("proxy-authorization")):
            owner.record(request, forwarded=False)
            self.send_bytes(407, b"", {"Proxy-Authenticate": 'Basic realm="fake"'})
            return
        if address is None or not port.isdigit():
            owner.record(request, forwarded=False)
            self.send_bytes(502, b"the fake proxy tunnels to loopback addresses only")
            return
        owner.record(request, forwarded=True)
        try:
            upstream = socket.create_connection((address, int(port)), timeout=10)
        except OSError:
            self.send_bytes(502, b"the server behind the fake proxy did not answer")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            self._tunnel(upstream)

    def _tunnel(self, upstream: socket.socket) -> None:
        client = self.connection
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self.server.stopping.is_set():
                for key, _ in selector.select(timeout=0.1):
                    source = typing.cast(socket.socket, key.fileobj)
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
                    except OSError:
                        return

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
        address = owner.address(parts.hostname or "")
        if parts.scheme != "http" or address is None:
            owner.record(request, forwarded=False)
            self.send_bytes(502, b"the fake proxy forwards to loopback addresses only")
            return
        owner.record(request, forwarded=True)
        sent = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        sent["Via"] = VIA
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(address, parts.port or 80, timeout=30)
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


@dataclass(frozen=True)
class SocksConnect:
    version: int  # 4 or 5
    host: str
    port: int
    user: str


class SocksProxy:
    """A loopback SOCKS4/4a/5 proxy on the test's event loop: CONNECT only, to 127.0.0.0/8 and
    ::1 only (anything else is refused by the protocol's own answer; names only as `hosts` maps
    them to loopback addresses).
    SOCKS5 with `auth` wants that username/password (RFC 1929), else no authentication.

        async with SocksProxy() as socks: ... socks.url("socks5") ... socks.connects
    """

    def __init__(
        self, auth: tuple[str, str] | None = None, hosts: dict[str, str] | None = None
    ) -> None:
        self.auth = auth
        self.hosts = loopback_only(dict(hosts or {}))
        self.connects: list[SocksConnect] = []
        self.refused: list[SocksConnect] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, scheme: str = "socks5") -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        userinfo = f"{self.auth[0]}:{self.auth[1]}@" if self.auth and scheme == "socks5" else ""
        return f"{scheme}://{userinfo}127.0.0.1:{port}"

    async def __aenter__(self) -> SocksProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            version = (await reader.readexactly(1))[0]
            target = await (self._socks5(reader, writer) if version == 5 else
                            self._socks4(reader, writer))
            if target is not None:
                await self._pipe(reader, writer, target)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _socks4(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        head = await reader.readexactly(7)  # CD, port, address
        port = int.from_bytes(head[1:3], "big")
        user = (await reader.readuntil(b"\0"))[:-1].decode()
        host = socket.inet_ntoa(head[3:7])
        if head[3:6] == b"\0\0\0" and head[6] != 0:  # SOCKS4a: the name follows
            host = (await reader.readuntil(b"\0"))[:-1].decode()
        request = SocksConnect(4, host, port, user)
        upstream = await self._open(request) if head[0] == 1 else None
        writer.write(b"\0" + (b"\x5a" if upstream else b"\x5b") + b"\0" * 6)
        await writer.drain()
        return upstream

    async def _socks5(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        methods = await reader.readexactly((await reader.readexactly(1))[0])
        user = ""
        if self.auth is not None:
            if 2 not in methods:
                writer.write(b"\x05\xff")
                return None
            writer.write(b"\x05\x02")
            await reader.readexactly(1)  # the sub-negotiation's version
            user = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            ok = (user, password) == self.auth
            writer.write(b"\x01" + (b"\0" if ok else b"\x01"))
            if not ok:
                return None
        else:
            writer.write(b"\x05\0")
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif kind == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        port = int.from_bytes(await reader.readexactly(2), "big")
        request = SocksConnect(5, host, port, user)
        upstream = await self._open(request) if command == 1 else None
        writer.write(b"\x05" + (b"\0" if upstream else b"\x02") + b"\0\x01" + bytes(6))
        await writer.drain()
        return upstream

    async def _open(
        self, request: SocksConnect
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        address = self.hosts.get(request.host.lower(), request.host)
        if not is_loopback_address(address):
            self.refused.append(request)
            return None
        self.connects.append(request)
        try:
            return await asyncio.open_connection(address, request.port)
        except OSError:
            return None

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        up_reader, up_writer = upstream
        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
