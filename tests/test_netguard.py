"""Address and URL verdicts of the SSRF guard, with stubbed resolution and no connection at all."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import BlockedAddressError, FetchError
from bot.feeds.netguard import (
    AddressPolicy,
    GuardedResolver,
    Resolver,
    address_refusal,
    check_url,
    parse_ip_host,
)

STRICT = AddressPolicy()

BLOCKED = {
    "10.0.0.5": "a private address",
    "10.255.255.255": "a private address",
    "172.16.0.1": "a private address",
    "172.31.255.254": "a private address",
    "192.168.1.1": "a private address",
    "100.64.0.1": "a carrier-grade NAT address",
    "100.127.255.254": "a carrier-grade NAT address",
    "127.0.0.1": "a loopback address",
    "127.255.0.9": "a loopback address",
    "169.254.169.254": "the cloud metadata address",
    "169.254.10.20": "a link-local address",
    "0.0.0.0": "an unspecified address",
    "0.1.2.3": "a 'this network' address",
    "224.0.0.251": "a multicast address",
    "239.255.255.250": "a multicast address",
    "240.0.0.1": "a reserved address",
    "255.255.255.255": "a broadcast address",
    "192.0.2.10": "a documentation address",
    "198.51.100.7": "a documentation address",
    "203.0.113.99": "a documentation address",
    "198.18.0.1": "a reserved (benchmarking) address",
    "::": "an unspecified address",
    "::1": "a loopback address",
    "fc00::1": "a private (unique local) address",
    "fd12:3456::1": "a private (unique local) address",
    "fe80::1": "a link-local address",
    "ff02::1": "a multicast address",
    "2001:db8::1": "a documentation address",
    "::127.0.0.1": "an IPv4-compatible address",
    "::ffff:127.0.0.1": "a loopback address (127.0.0.1) inside IPv6",
    "::ffff:169.254.169.254": "the cloud metadata address (169.254.169.254) inside IPv6",
    "64:ff9b::10.0.0.1": "a private address (10.0.0.1) inside IPv6",
    "2002:c0a8:0101::1": "a private address (192.168.1.1) inside IPv6",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "11.0.0.1",
          "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), BLOCKED.items())
def test_blocked_ranges(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("spelling", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"), ("[::1]", "::1"), ("0", "0.0.0.0"), ("012.1.1.1", "10.1.1.1"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"), ("3232235777", "192.168.1.1"),
])
def test_inet_aton_spellings_are_addresses(spelling: str, address: str) -> None:
    assert parse_ip_host(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1",
                                  "4294967296", "127.0.0.1.nip.io", "0x1g", ""])
def test_names_are_not_addresses(name: str) -> None:
    assert parse_ip_host(name) is None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_any_32_bit_number_parses_like_inet_aton(number: int) -> None:
    expected = ipaddress.IPv4Address(number)
    assert parse_ip_host(str(number)) == expected
    assert parse_ip_host(hex(number)) == expected
    dotted = str(expected).split(".")
    assert parse_ip_host(".".join("0" + oct(int(p))[2:] for p in dotted)) == expected


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://2130706433/feed", "http://0x7f000001/", "http://127.1/",
    "http://[::1]/", "https://[::ffff:127.0.0.1]/", "http://localhost/", "http://LOCALHOST./",
    "http://app.localhost/", "http://0.0.0.0/", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5:8080/", "http://[fe80::1]/", "http://user:pw@192.168.0.1/",
])
def test_check_url_refuses_local_targets(url: str) -> None:
    with pytest.raises(BlockedAddressError) as info:
        check_url(url, STRICT)
    assert str(info.value).startswith("refused: ")


def test_refusal_messages_say_why() -> None:
    cases = {
        "http://10.0.0.5/": "refused: 10.0.0.5 is a private address",
        "http://2130706433/": "refused: 127.0.0.1 is a loopback address",
        "http://localhost/": "refused: localhost is a loopback name",
        "http://169.254.169.254/": "refused: 169.254.169.254 is the cloud metadata address",
        "http://example.com:22/": "refused: port 22 is not allowed (only 80, 443, 8080, 8443)",
    }
    for url, message in cases.items():
        with pytest.raises(BlockedAddressError) as info:
            check_url(url, STRICT)
        assert str(info.value) == message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "ftp://x.org/",
                                 "javascript:alert(1)", "example.com/feed", "http://", "http://h:x/"])
def test_check_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(FetchError) as info:
        check_url(url, STRICT)
    assert info.value.kind == "bad_url"


def test_check_url_accepts_public_targets() -> None:
    target = check_url("https://Example.com/feed.xml", STRICT)
    assert (target.scheme, target.host, target.port, target.ip) == ("https", "example.com", 443,
                                                                     None)
    assert check_url("http://93.184.216.34:8080/", STRICT).port == 8080


def test_allow_private_opens_everything() -> None:
    policy = AddressPolicy(allow_private=True)
    for url in ["http://127.0.0.1:5000/", "http://localhost:1/", "http://[::1]:8000/"]:
        assert check_url(url, policy).host


def test_exempt_network_only_opens_itself() -> None:
    policy = AddressPolicy(exempt=(ipaddress.ip_network("192.168.1.0/24"),))
    assert check_url("http://192.168.1.20/", policy).ip == ipaddress.ip_address("192.168.1.20")
    with pytest.raises(BlockedAddressError):
        check_url("http://192.168.2.20/", policy)


def stub_resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(("answer", "reason"), [
    (["10.0.0.5"], "refused: 10.0.0.5 is a private address (resolved from feeds.test)"),
    (["169.254.169.254"], "refused: 169.254.169.254 is the cloud metadata address"),
    (["8.8.8.8", "::1"], "refused: ::1 is a loopback address"),
    (["fd00::7"], "refused: fd00::7 is a private (unique local) address"),
])
async def test_resolver_refuses_names_resolving_to_blocked_addresses(
    answer: list[str], reason: str
) -> None:
    resolver = GuardedResolver(STRICT, stub_resolver({"feeds.test": answer}))
    with pytest.raises(BlockedAddressError) as info:
        await resolver.resolve("feeds.test", 443)
    assert str(info.value).startswith(reason)


async def test_resolver_hands_the_connector_checked_addresses_and_keeps_the_name() -> None:
    resolver = GuardedResolver(
        STRICT, stub_resolver({"feeds.test": ["93.184.216.34", "2606:4700::6810:85e5"]})
    )
    answers = await resolver.resolve("feeds.test", 443)
    assert [(a["host"], a["port"], a["family"]) for a in answers] == [
        ("93.184.216.34", 443, socket.AF_INET), ("2606:4700::6810:85e5", 443, socket.AF_INET6)
    ]
    assert {a["hostname"] for a in answers} == {"feeds.test"}  # for TLS SNI


async def test_resolver_refuses_literals_and_ports_without_resolving() -> None:
    resolver = GuardedResolver(STRICT, stub_resolver({}))  # any lookup would raise KeyError
    for host, port in [("2130706433", 80), ("0x7f000001", 80), ("localhost", 80),
                       ("93.184.216.34", 6379)]:
        with pytest.raises(BlockedAddressError):
            await resolver.resolve(host, port)


async def test_resolver_rejects_garbage_and_slowness() -> None:
    resolver = GuardedResolver(STRICT, stub_resolver({"x.test": ["not-an-ip"], "y.test": []}))
    for host in ["x.test", "y.test"]:
        with pytest.raises(FetchError) as info:
            await resolver.resolve(host, 80)
        assert info.value.kind == "connect"

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["93.184.216.34"]

    with pytest.raises(FetchError) as info:
        await GuardedResolver(STRICT, slow, time_limit=0.05).resolve("slow.test", 80)
    assert (info.value.kind, str(info.value)) == ("timeout", "timed out connecting after 0.05 s")


@pytest.mark.parametrize("location", ["http://10.1.1.1/feed", "http://[::1]/", "http://0x0a000001/",
                                      "http://metadata.localhost/", "http://example.com:25/"])
def test_redirect_hop_into_blocked_target_is_refused(location: str) -> None:
    # Fetcher runs check_url on every hop's absolute Location before following it
    with pytest.raises(BlockedAddressError):
        check_url(location, STRICT)
