"""A feed behind an anti-bot challenge (Cloudflare's "Just a moment...", DDoS-Guard, Sucuri,
Akamai) is reported as that, with what may help, not as a bare HTTP 403: the pure classifier,
the fetcher reading a compressed challenge page, and /sub and /status in the running bot."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from typing import Any

import pytest

from bot.errors import FeedbotError
from bot.feeds.challenge import challenge_service
from bot.feeds.fetcher import Fetcher, FetchSettings
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
CLOUDFLARE_PAGE = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"refresh\" content=\"390\"></head><body><div class=\"main-wrapper\">"
    "<noscript>Enable JavaScript and cookies to continue</noscript></div>"
    "<script>window._cf_chl_opt={cvId: '3'};</script>"
    "<script src=\"/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1\"></script>"
    "</body></html>"
)
CLOUDFLARE_HEADERS = {"Server": "cloudflare", "Content-Type": "text/html; charset=UTF-8",
                      "cf-mitigated": "challenge", "CF-RAY": "8f0c1a2b3c4d5e6f-FRA"}


@pytest.mark.parametrize(("status", "headers", "body", "service"), [
    (403, {"cf-mitigated": "challenge"}, b"", "Cloudflare"),
    (403, {"server": "cloudflare"}, CLOUDFLARE_PAGE.encode(), "Cloudflare"),
    (503, {"server": "cloudflare"}, b"<title>Just a moment...</title>", "Cloudflare"),
    (403, {"server": "ddos-guard"}, b"<title>DDoS-Guard</title>", "DDoS-Guard"),
    (403, {"server": "Sucuri/Cloudproxy"}, b"Sucuri WebSite Firewall - Access Denied", "Sucuri"),
    (403, {"server": "AkamaiGHost"}, b"<H1>Access Denied</H1> Reference&#32;&#35;18", "Akamai"),
    # ordinary refusals stay ordinary
    (403, {"server": "cloudflare"}, b"<h1>403 Forbidden</h1>", None),
    (403, {"server": "nginx"}, b"<title>Just a moment...</title> cf-chl", None),
    (404, {"cf-mitigated": "challenge"}, CLOUDFLARE_PAGE.encode(), None),
    (401, {"server": "cloudflare"}, CLOUDFLARE_PAGE.encode(), None),
])
def test_a_challenge_is_told_from_a_refusal(
    status: int, headers: dict[str, str], body: bytes, service: str | None
) -> None:
    assert challenge_service(status, headers, body) == service


async def test_the_fetcher_reads_a_compressed_challenge_page(feed_server: FeedServer) -> None:
    headers = {k: v for k, v in CLOUDFLARE_HEADERS.items() if k != "cf-mitigated"}
    feed_server.set_response("/cf.xml", 403, gzip.compress(CLOUDFLARE_PAGE.encode()),
                             {**headers, "Content-Encoding": "gzip"})
    feed_server.set_response("/plain.xml", 403, "<h1>Forbidden</h1>", {"Server": "cloudflare"})
    async with Fetcher(FetchSettings(allow_private=True)) as fetcher:
        with pytest.raises(FeedbotError) as blocked:
            await fetcher.fetch(feed_server.url("/cf.xml"))
        with pytest.raises(FeedbotError) as refused:
            await fetcher.fetch(feed_server.url("/plain.xml"))
    assert blocked.value.reason.key == "error_http_antibot"
    assert "Cloudflare's anti-bot check answered HTTP 403" in blocked.value.reason.text("en")
    assert "Cloudflare" in blocked.value.reason.text("zh")
    assert "反机器人检查" in blocked.value.reason.text("zh")
    assert refused.value.reason.key == "error_http_403"


async def test_sub_and_status_say_the_feed_is_behind_an_anti_bot_check(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_response("/blocked.xml", 403, CLOUDFLARE_PAGE, CLOUDFLARE_HEADERS)
    feed_server.set_feed("/later.xml", hugo_feed(range(1, 3), title="Later blocked"))
    async with start_bot() as chat:
        (answer,) = await chat.say(USER, f"/sub {feed_server.url('/blocked.xml')}")
        assert "anti-bot check" in answer.plain and "Cloudflare" in answer.plain
        assert "ask the site's owner" in answer.plain
        (subscribed,) = await chat.say(USER, f"/sub {feed_server.url('/later.xml')}")
        await chat.settled(USER, subscribed.message_id, "Subscribed")
        feed_server.set_response("/later.xml", 503, CLOUDFLARE_PAGE, CLOUDFLARE_HEADERS)
        await fake_api.await_for(lambda: feed_server.hits("/later.xml") >= 3, timeout=20)
        await asyncio.sleep(0.5)
        (status,) = await chat.say(USER, "/status")
    assert "Later blocked ⚠️ failing since" in status.plain
    assert "anti-bot check answered HTTP 503" in status.plain
