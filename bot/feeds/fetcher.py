"""Safe, bounded, polite HTTP fetching of feeds.

Every URL is untrusted: it is pre-checked by bot.feeds.netguard, every connection goes through
`GuardedResolver` (the addresses dialled are checked ones), redirects are followed by hand with the
same checks, and the body is streamed, decompressed by us with a bounded output size, and cut off at
`max_bytes` so neither a huge body nor a gzip bomb can take memory. A corrupt or truncated
compressed body is an error (kind "http"): the feed parser would only see a random prefix.

Through a proxy (FEEDBOT_FEED_PROXY) the proxy dials, not us: before every hop the target's host
is resolved and checked by the same guard (`GuardedResolver.resolve_checked`), refused exactly as
without a proxy, and only then is the request sent through the proxy, which resolves the name
again itself. The proxy's own address is the operator's choice and is not checked.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import http
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import aiohttp
import aiohttp_socks
import certifi
from multidict import CIMultiDict
from yarl import URL

from bot.errors import FetchError
from bot.feeds.challenge import CHALLENGE_STATUSES, SNIFF_BYTES, challenge_service
from bot.feeds.netguard import AddressPolicy, GuardedResolver, Resolver, UrlTarget, check_url
from bot.feeds.request_headers import cross_origin_headers, own_headers
from bot.feeds.urls import origin, without_credentials
from bot.models import FetchResult

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
#: what `Fetcher.fetch_page` asks for: a post's web page (bot.fulltext)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
PERMANENT_CODES = frozenset({301, 308})
_CHUNK = 64 * 1024
#: longest response header line accepted (aiohttp's default, 8 KiB, trips on big cookies)
_MAX_HEADER = 32 * 1024


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "feedbot/0.1 (+https://github.com/feedbot/feedbot)"
    connect_timeout: float = 10.0
    total_timeout: float = 30.0  # whole exchange incl. body, enforced even on a slow drip
    max_bytes: int = 5 * 1024 * 1024  # on the DECOMPRESSED body, enforced while streaming
    max_redirects: int = 5
    allow_private: bool = False  # FEEDBOT_ALLOW_PRIVATE=1
    allowed_ports: frozenset[int] = frozenset({80, 443, 8080, 8443})  # ignored when allow_private
    max_connections: int = 20  # global concurrency
    per_host_connections: int = 2
    #: how long an idle connection is kept for the next check on its host: longer than the
    #: scheduler's tick, so the checks of one host in consecutive ticks share a connection
    keepalive_s: float = 30.0
    #: FEEDBOT_FEED_PROXY: "" (none), or http://, https://, socks4://, socks5:// with
    #: [user:password@]host:port (bot.config checked it)
    proxy: str = ""


@dataclass
class FetchStats:
    """Running totals, for monitoring and the memory benchmark."""

    requests: int = 0
    wire_bytes: int = 0  # body bytes received on the wire (still compressed)
    body_bytes: int = 0  # body bytes after decompression


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}" if n % size == 0 else f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _seconds(value: float) -> str:
    return f"{value:g} s"


class _HostSlots:
    """Per-host semaphores, created on demand and dropped when nobody uses them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    async def acquire(self, host: str) -> None:
        sem, users = self._slots.get(host, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self._limit)
        self._slots[host] = (sem, users + 1)
        try:
            await sem.acquire()
        except BaseException:
            self._drop(host)
            raise

    def release(self, host: str) -> None:
        self._slots[host][0].release()
        self._drop(host)

    def _drop(self, host: str) -> None:
        sem, users = self._slots[host]
        if users <= 1:
            del self._slots[host]
        else:
            self._slots[host] = (sem, users - 1)


class _BodyDecoder:
    """Incremental Content-Encoding decoder whose output per step is bounded."""

    def __init__(self, encoding: str) -> None:
        self.name = encoding
        self._obj: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding not in ("", "identity", "deflate"):
            raise FetchError(f"unsupported content encoding {encoding!r}", kind="http",
                             key="error_encoding", args={"encoding": encoding})

    def feed(self, data: bytes, limit: int) -> list[bytes]:
        """Decode `data`, producing at most about `limit` + one chunk of output."""
        if self.name == "deflate" and self._obj is None:
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._obj is None:
            return [data]
        out: list[bytes] = []
        produced = 0
        try:
            while data and produced <= limit:
                piece = self._obj.decompress(data, _CHUNK)
                out.append(piece)
                produced += len(piece)
                data = self._obj.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(f"corrupt {self.name} body ({exc})", kind="http",
                             key="error_corrupt_body", args={"encoding": self.name}) from None
        return out

    def finish(self) -> bytes:
        if self._obj is None:
            return b""
        if not self._obj.eof:
            raise FetchError(f"truncated {self.name} body", kind="http",
                             key="error_corrupt_body", args={"encoding": self.name})
        return self._obj.flush()


def _encoding_of(response: aiohttp.ClientResponse) -> str:
    encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    if len(encodings) > 1:
        shown = ", ".join(encodings)
        raise FetchError(f"unsupported content encoding {shown}", kind="http",
                         key="error_encoding", args={"encoding": shown})
    return encodings[0] if encodings else ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (never negative)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse_max_age(cache_control: str | None) -> int | None:
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            value = value.strip().strip('"')
            return int(value) if value.isdigit() else None
    return None


def _status_error(response: aiohttp.ClientResponse) -> FetchError:
    code = response.status
    phrase = response.reason or _reason_phrase(code)
    text = f"HTTP {code} {phrase}".strip()
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    args = {"code": code}
    if code == 410:
        return FetchError(f"{text}: the feed was removed", kind="gone", status=code,
                          key="error_http_gone", args=args)
    if code == 429 or (code == 503 and retry_after is not None):
        return FetchError(text, kind="rate_limited", status=code, retry_after=retry_after,
                          key="error_http_rate_limited", args=args)
    return FetchError(text, kind="http", status=code, key=http_status_key(code), args=args)


async def _error_answer(response: aiohttp.ClientResponse) -> FetchError:
    """What an answer that is neither a success, a redirect nor a 304 means: an anti-bot
    challenge (its page read to tell) or the status's own error."""
    code = response.status
    if code not in CHALLENGE_STATUSES:
        return _status_error(response)
    headers = {name.lower(): value for name, value in response.headers.items()}
    service = challenge_service(code, headers, await _body_start(response))
    if service is None:
        return _status_error(response)
    return FetchError(
        f"HTTP {code}: blocked by {service}'s anti-bot check (a challenge page for browsers)",
        kind="http", status=code, key="error_http_antibot",
        args={"code": code, "service": service},
    )


async def _body_start(response: aiohttp.ClientResponse) -> bytes:
    """Up to SNIFF_BYTES of an error answer's body, decoded; what could not be read is left out
    (the answer is an error either way)."""
    raw = bytearray()
    try:
        decoder = _BodyDecoder(_encoding_of(response))
        async for chunk in response.content.iter_chunked(_CHUNK):
            raw += b"".join(decoder.feed(chunk, SNIFF_BYTES))
            if len(raw) >= SNIFF_BYTES:
                break
    except (FetchError, aiohttp.ClientError, ValueError, TimeoutError):
        pass
    return bytes(raw[:SNIFF_BYTES])


#: HTTP statuses with a message of their own; any other is "error_http_status"
HTTP_STATUS_KEYS = {
    401: "error_http_401",
    403: "error_http_403",
    404: "error_http_404",
    500: "error_http_500",
    502: "error_http_502",
    503: "error_http_503",
    504: "error_http_504",
}


def http_status_key(code: int) -> str:
    return HTTP_STATUS_KEYS.get(code, "error_http_status")


def _reason_phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


def _cause_chain(exc: BaseException) -> list[BaseException]:
    """`exc`, what caused it, and the OS/TLS errors aiohttp keeps as attributes."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or current in chain:
            continue
        chain.append(current)
        todo += [
            current.__cause__,
            current.__context__,
            getattr(current, "certificate_error", None),
            getattr(current, "os_error", None),
        ]
    return chain


_ERRNO_TEXT = {
    errno.ECONNREFUSED: ("connection refused", "error_connect_refused"),
    errno.ECONNRESET: ("connection reset", "error_connect_reset"),
    errno.EHOSTUNREACH: ("host unreachable", "error_host_unreachable"),
    errno.ENETUNREACH: ("network unreachable", "error_network_unreachable"),
}


def _tls_error(cause: ssl.SSLError | ssl.CertificateError) -> FetchError:
    """A TLS failure in words a user can act on; OpenSSL's own text goes to the log only."""
    reason = (getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
              or str(cause))
    low = str(reason).lower()
    if "wrong_version_number" in low or "wrong version number" in low or "record layer" in low:
        key = "error_tls_not_tls"
    elif "expired" in low:
        key = "error_tls_expired"
    elif "hostname" in low or "ip address mismatch" in low:
        key = "error_tls_hostname"
    elif "self-signed" in low or "self signed" in low or "issuer" in low:
        key = "error_tls_untrusted"
    elif isinstance(cause, ssl.CertificateError) or "certificate" in low:
        key = "error_tls_certificate"
    else:
        key = "error_tls"
    return FetchError(f"TLS error: {reason}", kind="tls", key=key)


#: what aiohttp-socks raises when the SOCKS proxy cannot be reached or will not connect
_SOCKS_ERRORS = (
    aiohttp_socks.ProxyConnectionError, aiohttp_socks.ProxyError, aiohttp_socks.ProxyTimeoutError
)


def proxy_error(detail: object) -> FetchError:
    """The feed proxy could not be reached, or would not connect to the feed's server (the
    detail, never the proxy's password, goes to the log only)."""
    return FetchError(f"could not connect through the feed proxy: {detail}", kind="connect",
                      key="error_proxy_connect")


def _proxy_client_error(
    exc: aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError,
) -> FetchError:
    """An http(s) proxy not reached (the text names its host and port only), or its answer to
    CONNECT (only the status: the error's own text holds the proxy's URL, password and all)."""
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return proxy_error(f"HTTP {exc.status} {exc.message}".strip())
    return proxy_error(exc)


def _client_error(exc: aiohttp.ClientError, settings: FetchSettings) -> FetchError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return FetchError(f"timed out connecting after {_seconds(settings.connect_timeout)}",
                          kind="timeout", key="error_connect_timeout",
                          args={"seconds": f"{settings.connect_timeout:g}"})
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return timeout_error(settings.total_timeout)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError(f"not a valid URL: {exc}", kind="bad_url", key="error_bad_url")
    chain = _cause_chain(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return _tls_error(cause)
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno in _ERRNO_TEXT:
            text, key = _ERRNO_TEXT[cause.errno]
            return FetchError(f"could not connect: {text}", kind="connect", key=key)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError(f"could not connect: {exc.strerror or exc}", kind="connect",
                          key="error_connect")
    if isinstance(exc, aiohttp.ClientResponseError):  # not HTTP, or headers past the limits
        return FetchError(f"not a valid HTTP response: {exc.message}", kind="http",
                          key="error_bad_http_response")
    return FetchError(f"the connection broke: {exc or type(exc).__name__}", kind="connect",
                      key="error_connection_broke")


def timeout_error(seconds: float) -> FetchError:
    return FetchError(f"timed out after {_seconds(seconds)}", kind="timeout",
                      key="error_timeout", args={"seconds": f"{seconds:g}"})


def tls_context() -> ssl.SSLContext:
    """Certificates are checked against certifi's CA bundle (as httpx, and so PTB, does)."""
    return ssl.create_default_context(cafile=certifi.where())


class Fetcher:
    """One shared HTTP client with SSRF checks, size/time caps and per-host politeness."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or AddressPolicy(
            allow_private=settings.allow_private, allowed_ports=settings.allowed_ports
        )
        self.stats = FetchStats()
        self._resolver = GuardedResolver(self.policy, resolver, settings.connect_timeout)
        #: an http(s) proxy's URL, passed with each request; a SOCKS proxy is the connector's
        self._http_proxy = (
            URL(settings.proxy) if settings.proxy.startswith(("http://", "https://")) else None
        )
        self._client: aiohttp.ClientSession | None = None
        self._headers = {
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        }
        self._global = asyncio.Semaphore(settings.max_connections)
        self._hosts = _HostSlots(settings.per_host_connections)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _session(self) -> aiohttp.ClientSession:
        """The shared session, made on first use (aiohttp wants a running loop for that).

        Redirects and decompression are ours; no cookie jar (feeds must not share cookies);
        trust_env=False: an env proxy would bypass the address checks (FEEDBOT_FEED_PROXY is
        the one proxy, checked hop by hop in `_one_hop`). The whole exchange's time limit is the
        fetcher's own, around all hops."""
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=self._connector(),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.settings.connect_timeout
                ),
                max_field_size=_MAX_HEADER,
                max_line_size=_MAX_HEADER,
            )
        return self._client

    def _connector(self) -> aiohttp.TCPConnector:
        """Without a proxy the resolver is the guard: it checks every address and the connector
        dials only those. Through a proxy the connector dials the proxy alone, found with the
        default resolver (the operator's choice, not checked); targets are checked per hop."""
        options: dict[str, Any] = {
            "limit": self.settings.max_connections,
            "limit_per_host": 0,  # per-host politeness is _HostSlots, counted over redirects too
            "use_dns_cache": False,
            "ssl": tls_context(),
            "keepalive_timeout": self.settings.keepalive_s,
        }
        if not self.settings.proxy:
            return aiohttp.TCPConnector(resolver=self._resolver, **options)
        if self._http_proxy is None:  # socks4:// or socks5://: the proxy resolves the name
            return aiohttp_socks.ProxyConnector.from_url(self.settings.proxy, rdns=True, **options)
        return aiohttp.TCPConnector(**options)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """GET `url` following up to max_redirects redirects; raises FetchError on failure.

        `headers`: the feed record's own (Feed.request_headers: a User-Agent, a cookie, basic
        auth), over the fetcher's; a user name and password before the host are basic auth too.
        Both go only to the URL's own origin: a redirect elsewhere gets none of them but the
        harmless ones (bot.feeds.request_headers.SENT_ANYWHERE). A URL's fragment (a feed
        record's marker) is never sent.

        The total timeout runs from the first byte sent to the end of the body, over all hops;
        time spent waiting for a free connection slot before that is not counted.
        """
        conditional: dict[str, str] = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        return await self._get(url, conditional, headers or {})

    async def fetch_page(self, url: str) -> FetchResult:
        """GET a post's web page (full text, bot.fulltext): the same guard, caps, redirects and
        per-host politeness as a feed, asking for HTML. Raises FetchError on failure."""
        return await self._get(url, {"Accept": PAGE_ACCEPT})

    async def _get(
        self, url: str, headers: dict[str, str], own: Mapping[str, str] | None = None
    ) -> FetchResult:
        """`own`: the feed's own headers, sent with `headers` to the first URL's origin only."""
        visited: list[str] = []
        statuses: list[int] = []
        deadline: float | None = None
        first, private = _credentials(url.strip(), own or {})
        current = first
        while True:
            target = check_url(current, self.policy)
            parsed = _parsed_url(current)
            current = str(parsed)
            sent = {**headers, **_headers_for(current, first, private)} if private else headers
            host = f"{target.host}:{target.port}"
            await self._hosts.acquire(host)
            try:
                async with self._global:
                    if deadline is None:
                        deadline = asyncio.get_running_loop().time() + self.settings.total_timeout
                    outcome = await self._one_hop(target, parsed, sent, deadline)
            finally:
                self._hosts.release(host)
            if isinstance(outcome, FetchResult):
                return self._finish(outcome, statuses)
            status, location = outcome
            visited.append(current)
            statuses.append(status)
            # a password in a Location is not taken: credentials are the feed's, not the server's
            current = without_credentials(self._next_hop(location, visited))

    def _next_hop(self, location: str, visited: list[str]) -> str:
        if location in visited:
            raise FetchError("redirect loop", kind="redirects", key="error_redirect_loop")
        if len(visited) > self.settings.max_redirects:
            limit = self.settings.max_redirects
            raise FetchError(f"too many redirects (more than {limit})", kind="redirects",
                             key="error_too_many_redirects", args={"limit": limit})
        return location

    @staticmethod
    def _finish(result: FetchResult, statuses: list[int]) -> FetchResult:
        if statuses and all(s in PERMANENT_CODES for s in statuses):
            return replace(result, permanent_url=result.url)
        return result

    async def _one_hop(
        self, target: UrlTarget, url: URL, headers: dict[str, str], deadline: float
    ) -> FetchResult | tuple[int, str]:
        """One request: a result, or (status, absolute Location) for a redirect. Through a
        proxy, the target's host is resolved and checked first, as the connector's resolver
        does without one: the same refusals, and nothing sent to the proxy when refused. With
        allow_private nothing could be refused, so the name is left to the proxy alone (a host
        whose only way out is the proxy may have no DNS of its own)."""
        try:
            async with asyncio.timeout_at(deadline):
                if self.settings.proxy and not self.policy.allow_private:
                    await self._resolver.resolve_checked(target.host, target.port)
                return await self._exchange(url, headers)
        except TimeoutError:
            raise timeout_error(self.settings.total_timeout) from None
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            failure = _proxy_client_error(exc)
        except aiohttp.ClientError as exc:
            raise _client_error(exc, self.settings) from exc
        except _SOCKS_ERRORS as exc:
            raise proxy_error(exc) from exc
        raise failure  # outside the handler, so not even its __context__: aiohttp's text and
        # request info hold the proxy's URL, password and all

    async def _exchange(self, url: URL, headers: dict[str, str]) -> FetchResult | tuple[int, str]:
        self.stats.requests += 1
        sent = CIMultiDict(self._headers)
        sent.update(headers)  # the feed's own User-Agent (any case) replaces the fetcher's
        async with self._session().get(
            url, headers=sent, allow_redirects=False, proxy=self._http_proxy,
        ) as response:
            code = response.status
            if code == 407 and self._http_proxy is not None:  # the proxy's, not the feed's
                raise proxy_error(f"HTTP 407 {response.reason or ''}".strip())
            if code in REDIRECT_CODES:
                return code, self._location(response)
            if code == 304:
                return self._result(response, 304, b"")
            if not 200 <= code < 300:
                raise await _error_answer(response)
            body = await self._read_body(response)
            return self._result(response, code, body)

    @staticmethod
    def _location(response: aiohttp.ClientResponse) -> str:
        location = response.headers.get("location", "").strip()
        if not location:
            raise FetchError(f"HTTP {response.status} redirect without Location", kind="http",
                             key="error_bad_redirect")
        try:
            return urljoin(str(response.url), location)
        except ValueError as exc:
            raise FetchError(f"redirect to an invalid URL: {exc}", kind="bad_url",
                             key="error_bad_redirect") from None

    def _result(self, response: aiohttp.ClientResponse, status: int, body: bytes) -> FetchResult:
        return FetchResult(
            url=str(response.url),
            status=status,
            body=body,
            content_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            max_age=parse_max_age(response.headers.get("cache-control")),
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_bytes
        too_large = FetchError(f"larger than {human_size(limit)}", kind="too_large",
                               key="error_too_large", args={"size": human_size(limit)})
        encoding = _encoding_of(response)
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise too_large
        decoder = _BodyDecoder(encoding)
        body = bytearray()
        async for raw in response.content.iter_chunked(_CHUNK):
            self.stats.wire_bytes += len(raw)
            for piece in decoder.feed(raw, limit - len(body)):
                body += piece
                if len(body) > limit:
                    raise too_large
        body += decoder.finish()
        if len(body) > limit:
            raise too_large
        self.stats.body_bytes += len(body)
        return bytes(body)


def _headers_for(url: str, first: str, private: dict[str, str]) -> dict[str, str]:
    """The feed's own headers for a request to `url`: all of them on the first URL's origin,
    the harmless ones elsewhere."""
    if url == first or origin(url) == origin(first):
        return private
    return cross_origin_headers(private)


def _credentials(url: str, own: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The URL to request (no user name, password or fragment) and the feed's own headers, a
    password before the host as their basic auth (unless they have an Authorization)."""
    return without_credentials(url), own_headers(url, own)


@functools.lru_cache(maxsize=16384)  # immutable, and every feed's URL comes back each poll
def _parsed_url(url: str) -> URL:
    try:
        return URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchError(f"not a valid URL: {exc}", kind="bad_url", key="error_bad_url") from None
