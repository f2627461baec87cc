"""Proxies (issue 18): FEEDBOT_FEED_PROXY for feeds and posts' pages, FEEDBOT_TELEGRAM_PROXY for
the Bot API. The loopback fakes only: the forward proxy (tests/fakes/proxy.py) forwards to
127.0.0.0/8 and ::1 and nowhere else; refused targets are loopback addresses too."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import proxies_line
from bot.config import ConfigError, load, masked_proxy
from bot.errors import BlockedAddressError, FetchError
from bot.feeds import fetcher as fetcher_module
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.feeds.netguard import AddressPolicy, Resolver
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.proxy import VIA, ForwardProxy, SocksConnect, SocksProxy
from tests.test_fetcher import self_signed

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
USER = 1001
PASSWORD = "pr0xy-s3cret"


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


@pytest.fixture
def auth_proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(auth=("bot", PASSWORD)) as server:
        yield server


def through(proxy: ForwardProxy, **overrides: Any) -> FetchSettings:
    return FetchSettings(**{"allow_private": True, "proxy": proxy.url, **overrides})


# --- (a) feeds and pages go through the proxy -------------------------------------------------


async def test_a_feed_is_fetched_through_the_proxy(
    proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")
    async with Fetcher(through(proxy)) as fetcher:
        result = await fetcher.fetch(url)
        again = await fetcher.fetch(url, etag=result.etag)
    assert result.status == 200 and result.body == FEED and result.url == url
    assert again.status == 304
    assert proxy.urls() == [url, url]
    assert proxy.forwarded[1].headers["if-none-match"] == result.etag
    # the feed server was asked by the proxy (Via), never directly
    assert [r.headers.get("via") for r in feed_server.requests("/feed.xml")] == [VIA, VIA]


async def test_a_post_page_and_every_redirect_hop_go_through_the_proxy(
    proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    feed_server.set_response("/post", 200, "<html><p>hi</p></html>", {"Content-Type": "text/html"})
    feed_server.redirect("/old", feed_server.url("/post"), status=301)
    async with Fetcher(through(proxy)) as fetcher:
        page = await fetcher.fetch_page(feed_server.url("/old"))
    assert page.body == b"<html><p>hi</p></html>"
    assert page.permanent_url == feed_server.url("/post")
    assert proxy.urls() == [feed_server.url("/old"), feed_server.url("/post")]
    assert proxy.forwarded[0].headers["accept"].startswith("text/html")
    assert all(r.headers.get("via") == VIA for r in feed_server.requests())


async def test_proxy_credentials_are_sent_and_a_refusal_is_a_proxy_error(
    auth_proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/feed.xml", FEED)
    async with Fetcher(through(auth_proxy)) as fetcher:
        assert (await fetcher.fetch(feed_server.url("/feed.xml"))).body == FEED
    assert auth_proxy.forwarded[0].headers["proxy-authorization"].startswith("Basic ")
    # the feed server never sees the proxy's credentials
    assert "proxy-authorization" not in feed_server.requests()[0].headers


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_wrong_proxy_credentials_are_a_proxy_error(
    feed_server: FeedServer, scheme: str
) -> None:
    """407 from the proxy: to a forwarded request (http://) or to CONNECT (https://)."""
    feed_server.set_feed("/feed.xml", FEED)
    url = feed_server.url("/feed.xml").replace("http://", f"{scheme}://")
    with ForwardProxy(auth=("bot", PASSWORD)) as proxy:
        wrong = proxy.url.replace(PASSWORD, "wrong-password")
        async with Fetcher(FetchSettings(allow_private=True, proxy=wrong)) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(url)
    assert info.value.reason.key == "error_proxy_connect"
    assert str(info.value) == (
        "could not connect through the feed proxy: HTTP 407 Proxy Authentication Required"
    )
    assert "wrong-password" not in repr(info.value.__cause__) + repr(info.value.__context__)
    assert proxy.forwarded == [] and len(proxy.refused) == 1
    assert feed_server.requests() == []


async def test_https_goes_through_the_proxy_in_a_tunnel_to_the_checked_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONNECT feeds.test:PORT, then TLS with the feed's name (SNI, certificate) inside; the
    name was resolved and checked by the fetcher first, and again by the proxy."""
    cert, key = self_signed(tmp_path, "feeds.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
    asked, resolver, policy = names_to_loopback(port)
    try:
        with ForwardProxy(auth=("bot", PASSWORD), hosts={"feeds.test": "127.0.0.1"}) as proxy:
            settings = FetchSettings(proxy=proxy.url)
            async with Fetcher(settings, resolver=resolver, policy=policy) as fetcher:
                result = await fetcher.fetch(f"https://feeds.test:{port}/feed")
    finally:
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 5)
    assert result.body == FEED and result.url == f"https://feeds.test:{port}/feed"
    assert asked == ["feeds.test"]
    (tunnel,) = proxy.forwarded
    assert (tunnel.method, tunnel.url) == ("CONNECT", f"feeds.test:{port}")
    assert tunnel.headers["proxy-authorization"].startswith("Basic ")


async def test_with_allow_private_the_proxy_alone_resolves_names(feed_server: FeedServer) -> None:
    """Nothing could be refused, so no look-up of our own: a host whose only way out is the
    proxy may have no DNS."""
    feed_server.set_feed("/feed.xml", FEED)
    url = f"http://feeds.test:{port_of(feed_server)}/feed.xml"

    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError(f"resolved {host} although the proxy resolves it")

    with ForwardProxy(hosts={"feeds.test": "127.0.0.1"}) as proxy:
        async with Fetcher(through(proxy), resolver=no_dns) as fetcher:
            assert (await fetcher.fetch(url)).body == FEED
    assert proxy.urls() == [url]


async def test_a_proxy_that_does_not_answer_is_named_in_the_error(
    feed_server: FeedServer,
) -> None:
    with ForwardProxy() as gone:
        dead = gone.url  # a loopback port nobody listens on once it is stopped
    feed_server.set_feed("/feed.xml", FEED)
    settings = FetchSettings(allow_private=True, proxy=dead.replace("http://", "http://u:pw@"))
    async with Fetcher(settings) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(feed_server.url("/feed.xml"))
    assert info.value.reason.key == "error_proxy_connect"
    assert str(info.value).startswith("could not connect through the feed proxy")
    assert "pw" not in str(info.value)
    assert feed_server.requests() == []


# --- (b) the SSRF guard still applies to the target ------------------------------------------


async def refusal(
    url: str,
    settings: FetchSettings,
    *,
    resolver: Resolver | None = None,
    policy: AddressPolicy | None = None,
) -> BlockedAddressError:
    async with Fetcher(settings, resolver=resolver, policy=policy) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            await fetcher.fetch(url)
    return info.value


def same_refusal(direct: BlockedAddressError, proxied: BlockedAddressError) -> None:
    assert (str(proxied), proxied.kind, proxied.reason) == (
        str(direct), direct.kind, direct.reason
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
async def test_a_loopback_target_is_refused_through_the_proxy_as_without_it(
    proxy: ForwardProxy, feed_server: FeedServer, host: str
) -> None:
    feed_server.set_feed("/feed.xml", FEED)
    url = feed_server.url("/feed.xml").replace("127.0.0.1", host)
    strict = FetchSettings(allowed_ports=frozenset({int(feed_server.base_url.rsplit(":", 1)[1])}))
    direct = await refusal(url, strict)
    proxied = await refusal(url, through(proxy, allow_private=False,
                                         allowed_ports=strict.allowed_ports))
    same_refusal(direct, proxied)
    assert "loopback" in str(proxied)
    assert proxy.forwarded == [] and proxy.refused == []
    assert feed_server.requests() == []


async def test_a_name_resolving_to_a_blocked_address_is_refused_before_the_proxy(
    proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    """The case only the resolver catches: a name. Through the proxy the fetcher resolves and
    checks it itself; without that, the proxy would be asked for it."""
    feed_server.set_feed("/feed.xml", FEED)
    port = port_of(feed_server)
    url = f"http://sneaky.test:{port}/feed.xml"
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34", "127.0.0.1"]  # never dialled: refused first

    ports = frozenset({port})
    direct = await refusal(url, FetchSettings(allowed_ports=ports), resolver=resolver)
    proxied = await refusal(
        url, through(proxy, allow_private=False, allowed_ports=ports), resolver=resolver
    )
    same_refusal(direct, proxied)
    assert str(proxied) == "refused: 127.0.0.1 is a loopback address (resolved from sneaky.test)"
    assert asked == ["sneaky.test", "sneaky.test"]
    assert proxy.forwarded == [] and proxy.refused == []
    assert feed_server.requests() == []


async def test_a_redirect_into_a_blocked_address_is_refused_at_that_hop(
    proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    port = port_of(feed_server)
    feed_server.set_feed("/feed.xml", FEED)
    feed_server.redirect("/go", f"http://other.test:{port}/feed.xml", status=302)

    async def resolver(host: str, port: int) -> list[str]:
        return {"other.test": ["127.0.0.2"]}[host]

    # only 127.0.0.1 is treated as acceptable, as a public address would be
    policy = AddressPolicy(
        allowed_ports=frozenset({port}), exempt=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    settings = through(proxy, allow_private=False)
    direct = await refusal(feed_server.url("/go"), FetchSettings(), resolver=resolver,
                           policy=policy)
    proxied = await refusal(feed_server.url("/go"), settings, resolver=resolver, policy=policy)
    same_refusal(direct, proxied)
    assert str(proxied).startswith("refused: 127.0.0.2 is a loopback address")
    # the first hop went through the proxy; the refused one went nowhere
    assert proxy.urls() == [feed_server.url("/go")] and proxy.refused == []
    assert [r.path for r in feed_server.requests()] == ["/go", "/go"]


async def test_a_disallowed_port_is_refused_through_the_proxy(
    proxy: ForwardProxy, feed_server: FeedServer
) -> None:
    policy = AddressPolicy(exempt=(ipaddress.ip_network("127.0.0.0/8"),))
    url = feed_server.url("/feed.xml")
    direct = await refusal(url, FetchSettings(), policy=policy)
    proxied = await refusal(url, through(proxy, allow_private=False), policy=policy)
    same_refusal(direct, proxied)
    assert "is not allowed" in str(proxied)
    assert proxy.forwarded == [] and proxy.refused == []


# --- (c) the real app talks to the Bot API (and fetches feeds) through the proxy --------------


async def test_the_app_talks_to_telegram_and_fetches_feeds_through_the_proxies(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    auth_proxy: ForwardProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    url = feed_server.url("/ml.xml")
    async with start_bot(telegram_proxy=auth_proxy.url, feed_proxy=auth_proxy.url) as chat:
        (answer,) = await chat.say(USER, f"/sub {url}")
        assert "✅" in answer.plain or "Subscribed" in answer.plain, answer.plain
    api_calls = [u for u in auth_proxy.urls() if u.startswith(fake_api.url)]
    methods = {u.rsplit("/", 1)[1] for u in api_calls}
    assert {"getMe", "getUpdates", "sendMessage"} <= methods
    # everything the fake Bot API saw came through the proxy
    assert {c.method for c in fake_api.calls()} <= methods
    assert auth_proxy.refused == []
    assert url in auth_proxy.urls()
    assert all(r.headers.get("via") == VIA for r in feed_server.requests("/ml.xml"))
    # the password is never logged; the proxies are, masked
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged
    masked = masked_proxy(auth_proxy.url)
    assert f"proxies: feeds through {masked}; Telegram through {masked}" in logged


def test_the_start_up_line_masks_passwords() -> None:
    settings = load(environ={
        "FEEDBOT_FEED_PROXY": "socks5://bot:hunter2@10.0.0.5:1080",
        "FEEDBOT_TELEGRAM_PROXY": "http://127.0.0.1:3128",
    })
    assert proxies_line(settings) == (
        "proxies: feeds through socks5://bot:***@10.0.0.5:1080; "
        "Telegram through http://127.0.0.1:3128"
    )
    assert masked_proxy("http://user@host:1") == "http://user@host:1"
    assert masked_proxy("http://u:p@ss@host:1") == "http://u:***@host:1"


# --- SOCKS -------------------------------------------------------------------------------------


def names_to_loopback(port: int) -> tuple[list[str], Resolver, AddressPolicy]:
    """A resolver answering 127.0.0.1 for any name (recording the names asked), and a policy
    that takes 127.0.0.1 on `port` as it would a public address."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    policy = AddressPolicy(
        allowed_ports=frozenset({port}), exempt=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    return asked, resolver, policy


def port_of(server: FeedServer | FakeBotApi) -> int:
    return int(server.url.rsplit(":", 1)[1]) if isinstance(server, FakeBotApi) else int(
        server.base_url.rsplit(":", 1)[1]
    )


@pytest.mark.parametrize(
    ("scheme", "auth"), [("socks5", None), ("socks5", ("bot", PASSWORD)), ("socks4", None)]
)
async def test_a_feed_is_fetched_through_a_socks_proxy(
    feed_server: FeedServer, scheme: str, auth: tuple[str, str] | None
) -> None:
    feed_server.set_feed("/feed.xml", FEED)
    async with SocksProxy(auth) as socks:
        settings = FetchSettings(allow_private=True, proxy=socks.url(scheme))
        async with Fetcher(settings) as fetcher:
            result = await fetcher.fetch(feed_server.url("/feed.xml"))
    assert result.body == FEED
    user = auth[0] if auth else ""
    assert socks.connects == [
        SocksConnect(int(scheme[-1]), "127.0.0.1", port_of(feed_server), user)
    ]
    assert feed_server.hits("/feed.xml") == 1


async def test_a_checked_name_goes_to_the_socks_proxy_as_a_name(feed_server: FeedServer) -> None:
    """socks5:// resolves on the proxy's side (as an http proxy does), after the check."""
    feed_server.set_feed("/feed.xml", FEED)
    port = port_of(feed_server)
    asked, resolver, policy = names_to_loopback(port)
    async with SocksProxy(hosts={"feeds.test": "127.0.0.1"}) as socks:
        settings = FetchSettings(proxy=socks.url())
        async with Fetcher(settings, resolver=resolver, policy=policy) as fetcher:
            result = await fetcher.fetch(f"http://feeds.test:{port}/feed.xml")
    assert result.body == FEED and asked == ["feeds.test"]
    assert socks.connects == [SocksConnect(5, "feeds.test", port, "")]


async def test_the_guard_applies_through_a_socks_proxy(feed_server: FeedServer) -> None:
    port = port_of(feed_server)
    url = f"http://sneaky.test:{port}/feed.xml"

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    ports = frozenset({port})
    direct = await refusal(url, FetchSettings(allowed_ports=ports), resolver=resolver)
    async with SocksProxy() as socks:
        settings = FetchSettings(allowed_ports=ports, proxy=socks.url())
        proxied = await refusal(url, settings, resolver=resolver)
    same_refusal(direct, proxied)
    assert socks.connects == [] and socks.refused == []
    assert feed_server.requests() == []


async def test_the_app_talks_to_telegram_through_a_socks5_proxy(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    async with SocksProxy(("bot", PASSWORD)) as socks:
        async with start_bot(telegram_proxy=socks.url("socks5")) as chat:
            (answer,) = await chat.say(USER, "/start")
            assert "/sub" in answer.plain
    assert socks.connects and socks.refused == []
    assert {c.port for c in socks.connects} == {port_of(fake_api)}
    assert {c.user for c in socks.connects} == {"bot"}


# --- (d) settings ------------------------------------------------------------------------------


def test_proxy_settings_default_to_none_and_take_proxy_urls() -> None:
    assert (load(environ={}).feed_proxy, load(environ={}).telegram_proxy) == ("", "")
    for url in ("http://127.0.0.1:3128", "https://proxy.example:443", "socks4://10.0.0.5:1080",
                "socks5://user:pass@[::1]:1080"):
        assert load(environ={"FEEDBOT_FEED_PROXY": url}).feed_proxy == url
    settings = load(environ={"FEEDBOT_TELEGRAM_PROXY": " SOCKS5://u:p@host:1080 "})
    assert settings.telegram_proxy == "socks5://u:p@host:1080"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("FEEDBOT_FEED_PROXY", "ftp://proxy:21"),
        ("FEEDBOT_FEED_PROXY", "proxy.example:3128"),
        ("FEEDBOT_FEED_PROXY", "http://proxy.example"),  # no port
        ("FEEDBOT_FEED_PROXY", "http://:3128"),
        ("FEEDBOT_FEED_PROXY", "http://proxy:99999"),
        ("FEEDBOT_FEED_PROXY", "http://proxy:3128/path"),
        ("FEEDBOT_TELEGRAM_PROXY", "socks4://proxy:1080"),  # httpx speaks no SOCKS4
        ("FEEDBOT_TELEGRAM_PROXY", "socks5://bot:hunter2@proxy:port"),
    ],
)
def test_a_bad_proxy_url_is_a_start_up_error(setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(environ={setting: value})
    message = str(info.value)
    assert message.startswith(f"{setting} must be a proxy URL")
    assert info.value.reason.key == "error_config_proxy"
    assert "hunter2" not in message and "hunter2" not in str(info.value.reason.args)


def test_a_bad_proxy_url_in_the_config_file_is_refused_too(tmp_path: Any) -> None:
    config = tmp_path / "feedbot.toml"
    config.write_text('feed_proxy = "gopher://proxy:70"\n')
    with pytest.raises(ConfigError, match="FEEDBOT_FEED_PROXY must be a proxy URL"):
        load(config, environ={})
