"""OPML: safe parsing and writing (pure), then /export and /import end to end."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.opml import MAX_OPML_BYTES, OpmlError, OpmlFeed, build_opml, parse_opml
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed, hugo_item, rss
from tests.fakes.feedserver import FeedServer

USER = 1001
ADMIN = 2002
MEMBER = 3003
GROUP = -100700
CHANNEL = -100800

NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="Tech">
      <outline text="Python" title="Python Insider" type="rss"
               xmlUrl="https://blog.python.org/feeds/posts/default" htmlUrl="https://blog.python.org/"/>
      <outline text="Deeper">
        <outline text="LWN &amp; friends" xmlurl="https://lwn.net/headlines/rss"/>
      </outline>
    </outline>
    <outline text="Top level only text" xmlUrl="https://example.org/feed.xml"/>
    <outline text="duplicate" xmlUrl="https://example.org/feed.xml"/>
    <outline text="no url, not a feed"/>
  </body>
</opml>"""


# ------------------------------------------------------------------------ parsing
def test_nested_outlines_titles_and_categories() -> None:
    feeds = parse_opml(NESTED)
    assert feeds == [
        OpmlFeed(
            "https://blog.python.org/feeds/posts/default",
            "Python Insider",
            "https://blog.python.org/",
            "Tech",
        ),
        OpmlFeed("https://lwn.net/headlines/rss", "LWN & friends", "", "Tech / Deeper"),
        OpmlFeed("https://example.org/feed.xml", "Top level only text", "", ""),
    ]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<opml version="2.0"><body><outline text="&lol2;" xmlUrl="https://a.test/"/></body></opml>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.test/"/></body></opml>"""

BARE_DOCTYPE = b"""<?xml version="1.0"?><!DOCTYPE opml>
<opml version="2.0"><body><outline xmlUrl="https://a.test/"/></body></opml>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE, BARE_DOCTYPE])
def test_doctype_and_entity_declarations_are_refused(doc: bytes) -> None:
    with pytest.raises(OpmlError) as info:
        parse_opml(doc)
    assert info.value.kind == "unsafe_opml"


def test_utf16_document_with_doctype_is_refused_too() -> None:
    doc = BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16")
    with pytest.raises(OpmlError) as info:
        parse_opml(doc)
    assert info.value.kind == "unsafe_opml"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (b"<opml><body><outline xmlUrl='x'></body></opml>", "not well-formed"),
        (b"<opml><body><outline text='&nbsp;' xmlUrl='x'/></body></opml>", "undefined entity"),
        (b"<rss version='2.0'><channel/></rss>", "not an OPML file"),
        (b"", "not well-formed"),
        (b"just text", "not well-formed"),
    ],
)
def test_broken_or_foreign_documents_say_why(doc: bytes, words: str) -> None:
    with pytest.raises(OpmlError, match=words) as info:
        parse_opml(doc)
    assert info.value.kind == "bad_opml"


def test_size_cap_is_checked_before_parsing() -> None:
    doc = b"<opml>" + b" " * MAX_OPML_BYTES + b"</opml>"
    with pytest.raises(OpmlError) as info:
        parse_opml(doc)
    assert info.value.kind == "too_large"


def test_absurd_nesting_is_refused() -> None:
    doc = b"<opml><body>" + b"<outline>" * 500 + b"</outline>" * 500 + b"</body></opml>"
    with pytest.raises(OpmlError, match="nested"):
        parse_opml(doc)


def test_written_document_is_opml_2_and_escapes_everything() -> None:
    feeds = [
        OpmlFeed("https://a.test/feed?x=1&y=<2>", 'Tom & "Jerry" <3', "https://a.test/"),
        OpmlFeed("https://b.test/rss", "中文博客", category="Reading / Later"),
    ]
    data = build_opml(feeds, "feedbot & co")
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert b'<opml version="2.0">' in data and b"<dateCreated>" in data
    assert parse_opml(data) == feeds


_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Co"), blacklist_characters="\ufffe\uffff"
    ),
    max_size=40,
).map(str.strip)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.from_regex(r"https://[a-z]{1,10}\.test/[a-z0-9/_.-]{0,20}", fullmatch=True),
                  _text, _text),
        max_size=30,
        unique_by=lambda f: f[0],
    )
)
def test_build_then_parse_is_identity(rows: list[tuple[str, str, str]]) -> None:
    feeds = [OpmlFeed(url, title or url, category=cat) for url, title, cat in rows]
    parsed = parse_opml(build_opml(feeds, "t"))
    assert sorted(parsed, key=lambda f: f.url) == sorted(feeds, key=lambda f: f.url)


# ------------------------------------------------------------------- end to end
def documents(api: FakeBotApi, chat_id: int) -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if m.method == "sendDocument"]


def opml_of(message: SentMessage) -> bytes:
    content: bytes = message.params["document"]["content"]
    return content


def small_feed(n: int) -> str:
    return rss(f"Feed {n}", f"https://site{n}.test/", [hugo_item(n)])


async def test_export_sends_an_opml_file_with_titles(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    feed_server.set_feed("/b.xml", rss("Blog & \"Co\" 中文", "https://b.test/", [hugo_item(1)]))
    async with start_bot() as chat:
        (empty,) = await chat.say(USER, "/export")
        assert "nothing to export" in empty.plain
        (progress,) = await chat.say(
            USER, f"/sub {feed_server.url('/ml.xml')} {feed_server.url('/b.xml')}"
        )
        await chat.settled(USER, progress.message_id, "Done: 2 added")
        (doc,) = await chat.say(USER, "/export")
        assert doc.method == "sendDocument" and "2 feed(s)" in doc.plain
        assert doc.params["document"]["filename"].endswith(".opml")
        feeds = parse_opml(opml_of(doc))
        assert {(f.url, f.title) for f in feeds} == {
            (feed_server.url("/ml.xml"), "Machine Learning on Test Blog"),
            (feed_server.url("/b.xml"), "Blog & \"Co\" 中文"),
        }


async def test_import_by_caption_reports_added_existing_and_failed(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    for n in range(3):
        feed_server.set_feed(f"/f{n}.xml", small_feed(n))
    feed_server.set_response("/dead.xml", 404, "gone")
    feed_server.set_response("/page.html", 200, "<html>hi</html>", {"Content-Type": "text/html"})
    listed = [OpmlFeed(feed_server.url(f"/f{n}.xml"), f"Feed {n}") for n in range(3)]
    listed += [
        OpmlFeed(feed_server.url("/dead.xml"), "Dead"),
        OpmlFeed(feed_server.url("/page.html"), "A page"),
        OpmlFeed("ftp://files.test/feed", "FTP"),
        OpmlFeed(feed_server.url("/f0.xml") + "?again", "Renamed by me"),
    ]
    feed_server.set_feed("/f0.xml?again", small_feed(0))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f1.xml')}")
        fake_api.send_document(USER, "feeds.opml", build_opml(listed, "x"), caption="/import")
        progress, summary = (await fake_api.await_delivered(3, USER, timeout=15))[1:3]
        assert "Importing: 0/7" in progress.plain
        text = summary.plain
        assert "Import finished: 3 added, 1 already followed, 3 failed" in text
        assert "Feed 0" in text and "Feed 2" in text and "Renamed by me" in text
        assert "404" in text and "web page without a feed link" in text
        assert "only http:// and https://" in text
        final = fake_api.message(USER, progress.message_id)
        assert final is not None and "7/7" in final["text"]
        (listing,) = await chat.say(USER, "/list")
        assert "Renamed by me" in listing.plain  # an OPML title differing from the feed's is kept
        assert listing.plain.count("\n\n") == 4  # header + 4 feeds


async def test_import_by_replying_and_in_groups_through_the_prompt(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    for n in range(2):
        feed_server.set_feed(f"/f{n}.xml", small_feed(n))
    opml = build_opml([OpmlFeed(feed_server.url(f"/f{n}.xml")) for n in range(2)], "x")
    async with start_bot() as chat:
        # private: the file first, then /import as a reply to it
        sent = fake_api.send_document(USER, "subs.xml", opml)
        fake_api.send_text(USER, "/import", reply_to=sent["message_id"])
        got = await fake_api.await_delivered(2, USER, timeout=15)
        assert "2 added" in got[-1].plain

        # group: a member may not; an admin gets a prompt and replies to it with the file
        (refused,) = await chat.say(GROUP, "/import", user_id=MEMBER)
        assert "only administrators" in refused.plain
        (prompt,) = await chat.say(GROUP, "/import", user_id=ADMIN)
        assert "Reply to this message" in prompt.plain
        reply_with_document(fake_api, GROUP, prompt.message_id, opml, ADMIN)
        got = await fake_api.await_delivered(4, GROUP, timeout=15)
        assert "2 added" in got[-1].plain
        # a document that answers nothing of ours is ignored in groups
        fake_api.send_document(GROUP, "other.opml", opml, user_id=ADMIN)
        assert await chat.silence(GROUP, 1.0) == []


def reply_with_document(
    api: FakeBotApi, chat_id: int, message_id: int, content: bytes, user_id: int
) -> None:
    """The user answers message `message_id` with a file (FakeBotApi.send_document takes no
    reply_to, so this goes through its internals)."""
    with api._cond:
        replied = api._messages[(chat_id, message_id)]
        file_id = api._store_file("documents/subs.opml", content)
        document = {"file_id": file_id, "file_unique_id": "u" + file_id, "file_name": "s.opml"}
        extra = {"document": document, "reply_to_message": replied}
        api._queue_message(api._chat(chat_id), extra, user_id)


async def test_bad_files_get_clear_answers(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    async with start_bot() as chat:
        fake_api.send_document(USER, "x.opml", BILLION_LAUGHS, caption="/import")
        (unsafe,) = await fake_api.await_delivered(1, USER)
        assert "DOCTYPE" in unsafe.plain
        fake_api.send_document(USER, "x.opml", b"<rss/>", caption="/import")
        (_, foreign) = await fake_api.await_delivered(2, USER)
        assert "not an OPML file" in foreign.plain
        fake_api.send_document(USER, "x.opml", b"<opml><body/></opml>", caption="/import")
        empty = (await fake_api.await_delivered(3, USER))[-1]
        assert "no feeds" in empty.plain
        huge = b"<opml>" + b" " * (MAX_OPML_BYTES + 1) + b"</opml>"
        fake_api.send_document(USER, "big.opml", huge, caption="/import")
        big = (await fake_api.await_delivered(4, USER))[-1]
        assert "too large" in big.plain
        # a random file in a private chat, without /import, is not taken for an OPML file
        fake_api.send_document(USER, "photo.jpg", b"\xff\xd8", mime_type="image/jpeg")
        assert await chat.silence(USER, 1.0) == []


async def test_round_trip_of_1000_feeds_with_one_throttled_progress_message(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    count = 1000
    for n in range(count):
        feed_server.set_feed(f"/f/{n}.xml", small_feed(n))
        # the import takes a few seconds (8 at a time): long enough for a progress edit
        feed_server.slow(f"/f/{n}.xml", 0.03)
    source = build_opml(
        [OpmlFeed(feed_server.url(f"/f/{n}.xml"), f"Feed {n}") for n in range(count)], "mine"
    )
    first, second = USER, USER + 1
    async with start_bot(max_subscriptions=count, poll_interval=3600) as chat:
        started = time.monotonic()
        fake_api.send_document(first, "mine.opml", source, caption="/import")
        got = await fake_api.await_delivered(2, first, timeout=90)
        progress, summary = got[0], got[1]
        assert f"Import finished: {count} added, 0 already followed, 0 failed" in summary.plain
        import_s = time.monotonic() - started

        edits = [c for c in fake_api.calls("editMessageText")
                 if c.params.get("message_id") == progress.message_id]
        assert len(got) == 2  # one progress message (edited), one summary: no flood
        gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
        assert all(gap >= 1.5 for gap in gaps[:-1]), gaps  # the last edit is the final one
        assert 2 <= len(edits) <= import_s / 2 + 2
        assert re.search(rf"Importing: \d+/{count}", edits[0].params["text"])
        assert f"{count}/{count}" in edits[-1].params["text"]

        (doc,) = await chat.say(first, "/export")
        fake_api.send_document(second, "export.opml", opml_of(doc), caption="/import")
        got2 = await fake_api.await_delivered(2, second, timeout=90)
        assert f"{count} added" in got2[1].plain
        (doc2,) = await chat.say(second, "/export")
    exported = {(f.url, f.title) for f in parse_opml(opml_of(doc))}
    assert exported == {(f.url, f.title) for f in parse_opml(source)}
    assert {(f.url, f.title) for f in parse_opml(opml_of(doc2))} == exported


async def test_import_checks_feeds_concurrently_but_never_more_than_8_at_once(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    # six servers: the fetcher allows 2 connections per host:port, so up to 12 could run
    delay, servers = 0.3, [FeedServer().start() for _ in range(6)]
    try:
        urls = []
        for n in range(48):
            server = servers[n % len(servers)]
            server.set_feed(f"/s/{n}.xml", small_feed(n))
            server.slow(f"/s/{n}.xml", delay)
            urls.append(server.url(f"/s/{n}.xml"))
        opml = build_opml([OpmlFeed(url) for url in urls], "x")
        async with start_bot(poll_interval=3600) as chat:  # no feed checks besides the import
            started = time.monotonic()
            fake_api.send_document(USER, "s.opml", opml, caption="/import")
            got = await fake_api.await_delivered(2, USER, timeout=20)
            assert "48 added" in got[-1].plain
            took = time.monotonic() - started
            assert await chat.silence(USER, 0.5) == []
    finally:
        for server in servers:
            server.stop()
    starts = sorted(r.at for server in servers for r in server.requests())
    # each request lasts >= delay, so a window shorter than that sees at most one start per
    # concurrent slot: the most starts in such a window is the number of requests in flight
    in_flight = max(sum(1 for b in starts if a <= b < a + delay * 0.9) for a in starts)
    assert in_flight == 8
    assert took < 48 * delay / 4  # far quicker than one by one


async def test_export_and_import_for_a_channel(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="newschan", admins=(USER,))
    for n in range(2):
        feed_server.set_feed(f"/f{n}.xml", small_feed(n))
    opml = build_opml([OpmlFeed(feed_server.url(f"/f{n}.xml")) for n in range(2)], "x")
    async with start_bot() as chat:
        fake_api.send_document(USER, "c.opml", opml, caption="/import @newschan")
        got = await fake_api.await_delivered(2, USER, timeout=15)
        assert "@newschan" in got[-1].plain and "2 added" in got[-1].plain
        (doc,) = await chat.say(USER, "/export @newschan")
        assert {f.url for f in parse_opml(opml_of(doc))} == {
            feed_server.url(f"/f{n}.xml") for n in range(2)
        }
        (mine,) = await chat.say(USER, "/export")
        assert "nothing to export" in mine.plain  # the private chat itself follows nothing
        (refused,) = await chat.say(USER + 5, "/export @newschan")
        assert "Only administrators of" in refused.plain
        assert fake_api.delivered(CHANNEL) == []  # importing posts nothing old
        feed_server.set_feed("/f0.xml", rss("Feed 0", "https://site0.test/",
                                            [hugo_item(5), hugo_item(0)]))
        (post,) = await fake_api.await_delivered(1, CHANNEL, timeout=10)
        assert "Topic 5" in post.plain


async def test_dead_outlines_first_do_not_crowd_out_good_ones(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """Issue 13: 15 dead outlines then 4 good ones into a chat allowed 5: the 4 are added."""
    for n in range(15):
        feed_server.set_response(f"/dead/{n}.xml", 404, "gone")
    for n in range(4):
        feed_server.set_feed(f"/good/{n}.xml", small_feed(n))
    listed = [OpmlFeed(feed_server.url(f"/dead/{n}.xml"), f"Dead {n}") for n in range(15)]
    listed += [OpmlFeed(feed_server.url(f"/good/{n}.xml"), f"Feed {n}") for n in range(4)]
    async with start_bot(max_subscriptions=5) as chat:
        fake_api.send_document(USER, "feeds.opml", build_opml(listed, "x"), caption="/import")
        summary = (await fake_api.await_delivered(2, USER, timeout=20))[1]
        assert "Import finished: 4 added, 0 already followed, 15 failed" in summary.plain
        (listing,) = await chat.say(USER, "/list")
    assert all(f"Feed {n}" in listing.plain for n in range(4))


async def test_a_members_reply_to_the_import_prompt_leaves_it_open_for_the_admin(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """Issue 13: a non-admin's reply to the admin's prompt used it up; the admin's was ignored."""
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    feed_server.set_feed("/f0.xml", small_feed(0))
    opml = build_opml([OpmlFeed(feed_server.url("/f0.xml"))], "x")
    async with start_bot() as chat:
        (prompt,) = await chat.say(GROUP, "/import", user_id=ADMIN)
        reply_with_document(fake_api, GROUP, prompt.message_id, opml, MEMBER)
        (refused,) = (await fake_api.await_delivered(2, GROUP, timeout=10))[1:]
        assert "only administrators" in refused.plain
        reply_with_document(fake_api, GROUP, prompt.message_id, opml, ADMIN)
        got = await fake_api.await_delivered(4, GROUP, timeout=15)
        assert "1 added" in got[-1].plain
