"""Media that plays, albums, and a link to the post on every message: the running bot against the
fake Bot API, fed by a loopback feed server (files are never fetched: Telegram would fetch them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import ConfigError, load
from bot.models import Enclosure, Entry
from bot.render import render_entry
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

USER = 1001
MB = 1024 * 1024
NAMESPACES = (
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:media="http://search.yahoo.com/mrss/"'
)


def feed(title: str, items: list[str]) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {NAMESPACES}><channel>'
        f"<title>{title}</title><link>https://pod.test/</link>"
        f"<description>d</description>{''.join(items)}</channel></rss>"
    )


def episode(
    guid: str, title: str, enclosure: str, *, link: str = "", notes: str = "Notes.",
    extra: str = "", date: str = "Tue, 01 Dec 2026 10:00:00 GMT",
) -> str:
    return (
        f"<item><title>{title}</title><guid isPermaLink=\"false\">{guid}</guid>"
        + (f"<link>{link}</link>" if link else "")
        + f"<pubDate>{date}</pubDate><description><![CDATA[{notes}]]></description>"
        f"{enclosure}{extra}</item>"
    )


def enclosure(url: str, kind: str, length: int) -> str:
    return f'<enclosure url="{url}" type="{kind}" length="{length}"/>'


def by_method(sent: list[SentMessage], method: str) -> list[SentMessage]:
    return [m for m in sent if m.method == method]


def assert_valid(sent: list[SentMessage]) -> None:
    for message in sent:
        params = message.params
        if message.method == "sendMediaGroup":
            params = {k: v for k, v in params.items() if k != "item"}
        assert api_call_error(message.method, params) is None, params


async def subscribe(chat: Any, api: FakeBotApi, url: str) -> int:
    (answer,) = await chat.say(USER, f"/sub {url}")
    await chat.settled(USER, answer.message_id, "Subscribed")
    return len(api.delivered(USER))


async def test_podcast_episodes_arrive_as_audio_video_or_a_listen_line(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    media = feed_server.url("/media")
    old = episode("old", "Old episode", enclosure(f"{media}/old.mp3", "audio/mpeg", MB))
    long_notes = "".join(f"<p>Show note {i}: what we said, in detail.</p>" for i in range(60))
    items = [
        episode(
            "e5", "Long notes", enclosure(f"{media}/e5.mp3", "audio/mpeg", 9 * MB),
            link="https://pod.test/e5", notes=long_notes, date="Tue, 01 Dec 2026 15:00:00 GMT",
        ),
        episode(
            "e4", "A video", enclosure(f"{media}/e4.mp4", "video/mp4", 12 * MB),
            link="https://pod.test/e4", date="Tue, 01 Dec 2026 14:00:00 GMT",
        ),
        episode(
            "e3", "Refused file", enclosure(f"{media}/refused/e3.mp3", "audio/mpeg", 3 * MB),
            link="https://pod.test/e3", date="Tue, 01 Dec 2026 13:00:00 GMT",
        ),
        episode(
            "e2", "Two hours", enclosure(f"{media}/e2.mp3", "audio/mpeg", 95 * MB),
            date="Tue, 01 Dec 2026 12:00:00 GMT",
            extra="<itunes:duration>2:01:05</itunes:duration>",
        ),
        episode(
            "e1", "Episode one", enclosure(f"{media}/e1.mp3", "audio/mpeg", 8 * MB),
            link="https://pod.test/e1", notes="<p>We talk about <b>spices</b>.</p>",
            date="Tue, 01 Dec 2026 11:00:00 GMT",
            extra="<itunes:duration>45:30</itunes:duration><itunes:author>Ada Host</itunes:author>"
            '<itunes:image href="https://pod.test/art/e1.jpg"/>',
        ),
    ]
    feed_server.set_feed("/pod.xml", feed("Spice Pod", [old]))
    fake_api.reject_file_urls("/refused/")
    async with start_bot() as chat:
        before = await subscribe(chat, fake_api, feed_server.url("/pod.xml"))
        feed_server.set_feed("/pod.xml", feed("Spice Pod", [*items, old]))
        got = (await fake_api.await_delivered(before + 6, USER, timeout=15))[before:]
        await asyncio.sleep(0.5)
        assert len(fake_api.delivered(USER)) == before + 6  # nothing else
    assert_valid(got)
    one, two, three, four, five, five_text = got

    assert one.method == "sendAudio"
    assert one.params["audio"] == f"{media}/e1.mp3"
    assert (one.params["title"], one.params["performer"]) == ("Episode one", "Ada Host")
    assert one.params["duration"] == 45 * 60 + 30
    assert one.params["thumbnail"] == "https://pod.test/art/e1.jpg"
    assert "We talk about spices." in one.plain
    assert {"type": "text_link", "url": "https://pod.test/e1"} in [
        {k: e.get(k) for k in ("type", "url")} for e in one.entities
    ]

    # declared 95 MB: more than Telegram fetches by URL, so no sendAudio is tried at all
    assert two.method == "sendMessage"
    assert "🎧 Listen (95 MB, 2:01:05)" in two.plain
    assert any(e.get("url") == f"{media}/e2.mp3" for e in two.entities)
    assert not [c for c in fake_api.calls("sendAudio") if "e2.mp3" in str(c.params)]

    # Telegram refused the file: the text message with its Listen line instead
    assert three.method == "sendMessage" and "🎧 Listen (3.0 MB)" in three.plain
    assert any(e.get("url") == f"{media}/refused/e3.mp3" for e in three.entities)
    assert [c.rejected for c in fake_api.calls("sendAudio") if "e3.mp3" in str(c.params)] == [True]
    assert any(e.get("url") == "https://pod.test/e3" for e in three.entities)

    assert four.method == "sendVideo" and four.params["video"] == f"{media}/e4.mp4"
    assert any(e.get("url") == "https://pod.test/e4" for e in four.entities)

    # the notes do not fit a caption: the audio (with a link to the post), then the notes
    assert five.method == "sendAudio" and five.plain.startswith("Long notes\nSpice Pod")
    assert any(e.get("url") == "https://pod.test/e5" for e in five.entities)
    assert five_text.method == "sendMessage" and five_text.message_id == five.message_id + 1
    assert five_text.params["reply_parameters"]["message_id"] == five.message_id  # a reply
    assert "reply_parameters" not in one.params
    assert "Show note 0:" in five_text.plain and "Show note 50:" in five_text.plain


async def test_an_album_and_an_untitled_photo_that_links_to_its_post(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    pics = "".join(
        f'<p><img src="https://photos.test/trip/{name}.jpg" width="800" height="600"></p>'
        for name in ("lake", "hill", "town")
    )
    smiley = '<img src="https://blog.test/wp-includes/images/smilies/smile.png" width="16">'
    album = (
        "<item><title>Our trip</title><link>https://photos.test/trip</link><guid>trip</guid>"
        "<pubDate>Tue, 01 Dec 2026 10:00:00 GMT</pubDate>"
        f"<description><![CDATA[<p>Three days in the hills {smiley}</p>{pics}]]></description>"
        "</item>"
    )
    untitled = (
        "<item><link>https://photos.test/p/42</link><guid>p42</guid>"
        "<pubDate>Tue, 01 Dec 2026 11:00:00 GMT</pubDate>"
        '<media:content url="https://photos.test/p/42_b.jpg" type="image/jpeg" medium="image"/>'
        '<description><![CDATA[<p><a href="https://photos.test/p/42">'
        '<img src="https://photos.test/p/42_m.jpg" width="240" height="180"></a></p>'
        "<p>Sunset over the lake</p>]]></description></item>"
    )
    feed_server.set_feed("/photos.xml", feed("Photos", []))
    async with start_bot() as chat:
        before = await subscribe(chat, fake_api, feed_server.url("/photos.xml"))
        feed_server.set_feed("/photos.xml", feed("Photos", [untitled, album]))
        got = (await fake_api.await_delivered(before + 4, USER, timeout=15))[before:]
    assert_valid(got)
    items = by_method(got, "sendMediaGroup")
    assert [m.params["item"]["media"] for m in items] == [
        f"https://photos.test/trip/{name}.jpg" for name in ("lake", "hill", "town")
    ]
    caption = items[0].plain
    assert caption.startswith("Our trip\nPhotos") and "Three days in the hills" in caption
    assert any(e.get("url") == "https://photos.test/trip" for e in items[0].entities)
    assert [bool(m.params["item"].get("caption")) for m in items] == [True, False, False]

    (photo,) = by_method(got, "sendPhoto")  # one picture in two sizes: a photo, not an album
    assert photo.params["photo"] == "https://photos.test/p/42_b.jpg"
    assert "Sunset over the lake" in photo.plain
    links = [e for e in photo.entities if e.get("url") == "https://photos.test/p/42"]
    assert links and photo.plain[links[0]["offset"]:].startswith("1 Dec 2026")


def test_too_large_photo_enclosure_is_not_sent_as_a_photo() -> None:
    big = Enclosure("https://photos.test/huge.jpg", "image/jpeg", 8 * MB)
    entry = Entry(key="k", title="Huge", link="https://photos.test/h", content_html="<p>x</p>",
                  image_url=big.url, enclosures=(big,))
    assert [a.method for a in render_entry(entry, "F").attempts] == ["sendMessage"] * 2


async def test_a_self_hosted_server_may_take_large_files(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """FEEDBOT_LARGE_FILES (only with a self-hosted Bot API server) sends a 95 MB episode."""
    media = feed_server.url("/media")
    big = episode("big", "Two hours", enclosure(f"{media}/big.mp3", "audio/mpeg", 95 * MB),
                  link="https://pod.test/big")
    feed_server.set_feed("/pod.xml", feed("Spice Pod", []))
    async with start_bot(large_files=True) as chat:
        before = await subscribe(chat, fake_api, feed_server.url("/pod.xml"))
        feed_server.set_feed("/pod.xml", feed("Spice Pod", [big]))
        (sent,) = (await fake_api.await_delivered(before + 1, USER, timeout=15))[before:]
    assert sent.method == "sendAudio" and sent.params["audio"] == f"{media}/big.mp3"


def test_large_files_need_a_self_hosted_server() -> None:
    with pytest.raises(ConfigError, match="self-hosted"):
        load(environ={"FEEDBOT_LARGE_FILES": "1"})
    settings = load(environ={"FEEDBOT_LARGE_FILES": "1", "FEEDBOT_API_URL": "http://10.0.0.5:8081"})
    assert settings.media_url_limit == 2000 * MB
    assert load(environ={}).media_url_limit == 20 * MB
