"""SSRF guard: decide which URLs and addresses the bot may contact, and enforce it on connect.

Two layers:
- `check_url` refuses bad schemes, disallowed ports and literal addresses (in every spelling
  getaddrinfo/inet_aton accepts) before any request is made;
- `GuardedResolver` is the resolver of the fetcher's aiohttp connector: it resolves every host,
  checks every address it got, and the connector then connects to exactly those checked IPs, so
  DNS rebinding cannot slip in between the check and the connection. TLS still uses the host
  name: aiohttp passes the URL's host as `server_hostname`, not the address it dials.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from bot.errors import BlockedAddressError, FetchError, Reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: async (host, port) -> IP address strings, in the order to try them
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS: frozenset[int] = frozenset({80, 443, 8080, 8443})
SCHEME_PORTS = {"http": 80, "https": 443}

_N = ipaddress.ip_network
#: first match wins, so specific ranges come before the ranges that contain them
_V4_BLOCKS: tuple[tuple[IPNetwork, str], ...] = (
    (_N("0.0.0.0/32"), "an unspecified address"),
    (_N("0.0.0.0/8"), "a 'this network' address"),
    (_N("10.0.0.0/8"), "a private address"),
    (_N("100.64.0.0/10"), "a carrier-grade NAT address"),
    (_N("127.0.0.0/8"), "a loopback address"),
    (_N("169.254.169.254/32"), "the cloud metadata address"),
    (_N("169.254.0.0/16"), "a link-local address"),
    (_N("172.16.0.0/12"), "a private address"),
    (_N("192.0.0.0/24"), "a reserved (IETF protocol) address"),
    (_N("192.0.2.0/24"), "a documentation address"),
    (_N("192.88.99.0/24"), "a reserved (6to4 relay) address"),
    (_N("192.168.0.0/16"), "a private address"),
    (_N("198.18.0.0/15"), "a reserved (benchmarking) address"),
    (_N("198.51.100.0/24"), "a documentation address"),
    (_N("203.0.113.0/24"), "a documentation address"),
    (_N("224.0.0.0/4"), "a multicast address"),
    (_N("255.255.255.255/32"), "a broadcast address"),
    (_N("240.0.0.0/4"), "a reserved address"),
)
_V6_BLOCKS: tuple[tuple[IPNetwork, str], ...] = (
    (_N("::/128"), "an unspecified address"),
    (_N("::1/128"), "a loopback address"),
    (_N("::/96"), "an IPv4-compatible address"),
    (_N("64:ff9b:1::/48"), "a local NAT64 address"),
    (_N("100::/64"), "a discard-only address"),
    (_N("2001::/32"), "a Teredo tunnel address"),
    (_N("2001:db8::/32"), "a documentation address"),
    (_N("fc00::/7"), "a private (unique local) address"),
    (_N("fe80::/10"), "a link-local address"),
    (_N("fec0::/10"), "a site-local address"),
    (_N("ff00::/8"), "a multicast address"),
)
_NAT64 = _N("64:ff9b::/96")


def parse_ipv4_like_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 the way inet_aton does: 1-4 parts, each decimal, 0x-hex or 0-octal; the last
    part fills the remaining bytes (127.1, 2130706433, 0x7f000001, 0177.0.0.1)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_parse_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = typing.cast(list[int], values)
    *head, last = nums
    if any(v > 0xFF for v in head) or last >= 256 ** (5 - len(nums)):
        return None
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _parse_aton_part(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)  # "0x" alone is 0 for inet_aton
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def parse_ip_host(host: str) -> IPAddress | None:
    """The address a URL host denotes if it is an IP literal in any accepted spelling, else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.rstrip(".") if ":" not in text else text
    if not text:
        return None
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return parse_ipv4_like_inet_aton(text)


#: catalogue key of each refusal text above
_ADDRESS_KEYS = {
    "an unspecified address": "addr_unspecified",
    "a 'this network' address": "addr_this_network",
    "a private address": "addr_private",
    "a carrier-grade NAT address": "addr_cgnat",
    "a loopback address": "addr_loopback",
    "the cloud metadata address": "addr_metadata",
    "a link-local address": "addr_link_local",
    "a reserved (IETF protocol) address": "addr_reserved",
    "a documentation address": "addr_documentation",
    "a reserved (6to4 relay) address": "addr_reserved",
    "a reserved (benchmarking) address": "addr_reserved",
    "a multicast address": "addr_multicast",
    "a broadcast address": "addr_broadcast",
    "a reserved address": "addr_reserved",
    "an IPv4-compatible address": "addr_reserved",
    "a local NAT64 address": "addr_reserved",
    "a discard-only address": "addr_reserved",
    "a Teredo tunnel address": "addr_reserved",
    "a private (unique local) address": "addr_private",
    "a site-local address": "addr_private",
    "a non-public address": "addr_non_public",
}


def address_refusal_reason(ip: IPAddress) -> Reason | None:
    """`address_refusal` as a catalogue reason (what kind of address `ip` is)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner = address_refusal_reason(embedded)
            return Reason("addr_inside_ipv6", {"what": inner, "address": str(embedded)}) if (
                inner
            ) else None
    text = address_refusal(ip)
    return Reason(_ADDRESS_KEYS.get(text, "addr_non_public")) if text else None


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted (e.g. "a loopback address"), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        return _v6_refusal(ip)
    return _match(ip, _V4_BLOCKS) or (None if ip.is_global else "a non-public address")


def _v6_refusal(ip: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded_v4(ip)
    if embedded is not None:
        inner = address_refusal(embedded)
        return f"{inner} ({embedded}) inside IPv6" if inner else None
    reason = _match(ip, _V6_BLOCKS)
    if reason:
        return reason
    return None if ip.is_global else "a non-public address"


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried by mapped (::ffff:a.b.c.d), NAT64 and 6to4 forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _match(ip: IPAddress, table: Iterable[tuple[IPNetwork, str]]) -> str | None:
    for network, reason in table:
        if ip in network:
            return reason
    return None


def _is_localhost_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True)
class AddressPolicy:
    """Which ports and addresses may be contacted.

    `exempt` lists networks allowed even though they are not public: the way a self-hoster (or a
    test) opens one LAN/loopback address without allowing every private address.
    """

    allow_private: bool = False
    allowed_ports: frozenset[int] = DEFAULT_PORTS
    exempt: tuple[IPNetwork, ...] = field(default=())

    def refusal(self, ip: IPAddress) -> str | None:
        """Human reason to refuse `ip`, or None when it may be contacted."""
        if self.allow_private or any(ip in net for net in self.exempt):
            return None
        reason = address_refusal(ip)
        return f"refused: {ip} is {reason}" if reason else None

    def port_refusal(self, port: int) -> str | None:
        if self.allow_private or port in self.allowed_ports:
            return None
        allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
        return f"refused: port {port} is not allowed (only {allowed})"

    def check_address(self, ip: IPAddress, resolved_from: str = "") -> None:
        reason = self.refusal(ip)
        if not reason:
            return
        what = address_refusal_reason(ip) or Reason("addr_non_public")
        if resolved_from:
            raise BlockedAddressError(
                f"{reason} (resolved from {resolved_from})", key="error_blocked_resolved",
                args={"address": str(ip), "what": what, "host": resolved_from},
            )
        raise BlockedAddressError(
            reason, key="error_blocked_address", args={"address": str(ip), "what": what}
        )

    def check_port(self, port: int) -> None:
        reason = self.port_refusal(port)
        if reason:
            allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
            raise BlockedAddressError(
                reason, key="error_blocked_port", args={"port": port, "allowed": allowed}
            )


@dataclass(frozen=True)
class UrlTarget:
    scheme: str
    host: str
    port: int
    #: the host as an address when the URL names an IP literal
    ip: IPAddress | None


@functools.lru_cache(maxsize=65536)  # pure, and every feed's URL comes back each poll
def check_url(url: str, policy: AddressPolicy) -> UrlTarget:
    """Syntactic pre-check of an untrusted URL; raises FetchError(bad_url) / BlockedAddressError.

    Host names are not resolved here; `GuardedResolver` checks what they resolve to on connect.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"not a valid URL: {exc}", kind="bad_url", key="error_bad_url") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEME_PORTS:
        shown = f"{scheme}:" if scheme else "a URL without scheme"
        raise FetchError(f"only http and https URLs are supported, not {shown}", kind="bad_url",
                         key="error_not_http")
    host = parts.hostname or ""
    if not host:
        raise FetchError("the URL has no host name", kind="bad_url", key="error_no_host")
    port = SCHEME_PORTS[scheme] if port is None else port
    ip = parse_ip_host(host)
    if ip is not None:
        policy.check_address(ip)
    elif _is_localhost_name(host) and not policy.allow_private:
        raise _loopback_name(host)
    policy.check_port(port)
    return UrlTarget(scheme=scheme, host=host, port=port, ip=ip)


def _loopback_name(host: str) -> BlockedAddressError:
    return BlockedAddressError(
        f"refused: {host} is a loopback name", key="error_blocked_name", args={"host": host}
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's getaddrinfo (runs in a thread; never blocks the loop)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"could not connect: cannot resolve {host} ({exc.strerror})",
                         kind="connect", key="error_dns", args={"host": host}) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: resolve, check every address, and hand the connector only checked
    addresses, which it then dials (the request's host name still goes into TLS SNI and the
    certificate check). URL literals never get here: `check_url` checks them before a request."""

    def __init__(
        self, policy: AddressPolicy, resolver: Resolver | None = None, time_limit: float = 10.0
    ) -> None:
        self._policy = policy
        self._resolver = resolver or system_resolver
        self.time_limit = time_limit

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=str(ip), port=port, proto=0, flags=socket.AI_NUMERICHOST,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
            )
            for ip in await self.resolve_checked(host, port)
        ]

    async def close(self) -> None:
        return None

    async def resolve_checked(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` stands for, all checked; refuses if ANY of them is blocked
        (a name answering public and private addresses at once is treated as hostile)."""
        self._policy.check_port(port)
        literal = parse_ip_host(host)
        if literal is not None:
            addresses = [literal]
        else:
            if _is_localhost_name(host) and not self._policy.allow_private:
                raise _loopback_name(host)
            addresses = await self._resolve(host, port)
        for ip in addresses:
            self._policy.check_address(ip, resolved_from="" if literal is not None else host)
        return addresses

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self.time_limit):
                raw = await self._resolver(host, port)
        except TimeoutError:
            raise FetchError(
                f"timed out connecting after {self.time_limit:g} s", kind="timeout",
                key="error_connect_timeout", args={"seconds": f"{self.time_limit:g}"},
            ) from None
        addresses = [parse_ip_host(a) for a in raw]
        if not addresses or any(a is None for a in addresses):
            raise FetchError(f"could not connect: no usable address for {host}", kind="connect",
                             key="error_dns", args={"host": host})
        return typing.cast(list[IPAddress], addresses)
