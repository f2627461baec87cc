"""A post's HTML -> Telegraph nodes (bot.render.telegraph), checked by the fake's rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.models import Entry
from bot.render.message import RenderOptions, render_entry, wants_page
from bot.render.telegraph import CONTENT_LIMIT, fit, html_to_nodes, page_draft, size
from tests.fakes.telegram_rules import api_call_error
from tests.fakes.telegraph import content_problem, node_text, walk

BASE = "https://blog.test/posts/one/"


def tags(nodes: list[object]) -> set[str]:
    return {n["tag"] for n in walk(nodes)}  # type: ignore[arg-type]


def test_allowed_tags_pass_and_others_map_onto_them() -> None:
    nodes = html_to_nodes(
        "<h1>Big</h1><h2>Less</h2><h5>Small</h5><p>a <strong>b</strong> <del>c</del> "
        "<kbd>k</kbd> <span>plain</span></p><div><section><p>deep</p></section></div>"
        "<ul><li>one</li><li>two</li></ul><blockquote>q</blockquote><hr>",
        BASE,
    )
    assert content_problem(nodes) is None
    assert tags(nodes) <= {"h3", "h4", "p", "strong", "s", "code", "ul", "li", "blockquote", "hr"}
    assert [n["tag"] for n in nodes[:3]] == ["h3", "h3", "h4"]
    assert "deep" in node_text(nodes) and "plain" in node_text(nodes)
    assert "span" not in json.dumps(nodes) and "div" not in json.dumps(nodes)


def test_pictures_and_links_are_absolute_and_only_href_src_stay() -> None:
    nodes = html_to_nodes(
        '<p><a href="/about" class="x" onclick="evil()">about</a> '
        '<a href="javascript:alert(1)">bad</a> <a href="#fn1">1</a></p>'
        '<figure><img src="../pic.png" alt="A" width="10"><figcaption>Cap</figcaption></figure>'
        '<img src="data:image/png;base64,AAAA"><p><img src="//cdn.test/x.jpg"></p>',
        BASE,
    )
    assert content_problem(nodes) is None
    links = [n["attrs"]["href"] for n in walk(nodes) if n["tag"] == "a"]
    assert links == ["https://blog.test/about"]
    images = [n["attrs"]["src"] for n in walk(nodes) if n["tag"] == "img"]
    assert images == ["https://blog.test/posts/pic.png", "https://cdn.test/x.jpg"]
    assert "bad" in node_text(nodes) and "Cap" in node_text(nodes)
    assert all(set(n.get("attrs", {})) <= {"href", "src"} for n in walk(nodes))


def test_scripts_go_players_become_links_tables_become_rows_and_pre_keeps_lines() -> None:
    nodes = html_to_nodes(
        "<script>alert(1)</script><style>p{}</style>"
        '<iframe src="https://www.youtube.com/embed/abcdefghijk" title="Talk"></iframe>'
        "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
        "<pre><code>line 1\n    line 2</code></pre>"
        "loose text <b>at the top</b>",
        BASE,
    )
    assert content_problem(nodes) is None
    text = node_text(nodes)
    assert "alert" not in text and "p{}" not in text
    assert "https://www.youtube.com/watch?v=abcdefghijk" in json.dumps(nodes)
    assert "k · v" in text and "a · 1" in text
    pre = next(n for n in walk(nodes) if n["tag"] == "pre")
    assert pre["children"] == ["line 1\n    line 2"]
    assert nodes[-1]["tag"] == "p"  # top-level inline content is gathered into a paragraph


def test_content_is_fitted_into_telegraphs_limit_and_says_so() -> None:
    paragraphs = "".join(f"<p>Paragraph {i} " + "word " * 400 + "</p>" for i in range(60))
    entry = Entry("k", "Long", BASE, content_html=paragraphs, image_url="https://blog.test/a.png")
    draft = page_draft(entry, "Blog")
    assert draft.trimmed
    assert content_problem(draft.content) is None
    assert size(draft.content) <= CONTENT_LIMIT
    assert draft.content[0]["tag"] == "figure"  # the post's picture leads the page
    assert draft.content[-1]["children"][0]["attrs"]["href"] == BASE  # then the original
    assert "Paragraph 0 " in node_text(draft.content)


def test_one_huge_paragraph_is_cut_inside_at_a_word() -> None:
    nodes, cut = fit([{"tag": "p", "children": ["word " * 50_000]}], 10_000)
    assert cut and size(nodes) <= 10_000
    assert nodes[0]["children"][0].endswith("word…")


def test_a_short_post_fits_whole_with_its_title_and_author() -> None:
    entry = Entry("k", "  Hello\nworld ", BASE, author="Ann", content_html="<p>Hi</p>")
    draft = page_draft(entry, "Blog")
    assert not draft.trimmed
    assert (draft.title, draft.author_name, draft.author_url) == ("Hello world", "Ann", BASE)
    assert node_text(draft.content).strip().startswith("Hi")


def long_entry() -> Entry:
    body = "".join(f"<p>Part {i}: " + "lorem ipsum " * 60 + "</p>" for i in range(12))
    return Entry(
        "k",
        "A long read",
        BASE,
        published=datetime(2026, 2, 8, tzinfo=UTC),
        content_html=body,
        categories=("Deep Learning",),
    )


def test_a_long_post_with_its_page_is_a_short_link_message() -> None:
    entry = long_entry()
    assert wants_page(entry, "Blog")
    page = "https://telegra.ph/A-long-read-12-02"
    message = render_entry(entry, "Blog", RenderOptions(link_preview=False), page)
    first = message.attempts[0]
    assert first.method == "sendMessage" and api_call_error(first.method, first.params) is None
    assert (
        f'href="{page}"' in first.params["text"]
        and "Read it in Instant View" in (first.params["text"])
    )
    assert "Part 11" not in first.params["text"] and "#Deep_Learning" in first.params["text"]
    assert first.params["link_preview_options"] == {"url": page, "prefer_large_media": True}
    assert page in message.attempts[1].params["text"]  # the plain form shows the address
    # without a page (Telegraph failed) it is cut as before
    cut = render_entry(entry, "Blog", RenderOptions())
    assert "Read more" in cut.attempts[0].params["text"]


def test_auto_always_and_off() -> None:
    short = Entry("s", "Short", BASE, content_html="<p>Just this.</p>")
    page = "https://telegra.ph/x"
    assert not wants_page(short, "Blog")
    assert (
        render_entry(short, "Blog", RenderOptions(), page)
        .attempts[0]
        .params["link_preview_options"]
        .get("url")
        != page
    )
    assert wants_page(short, "Blog", RenderOptions(instant_view="always"))
    always = render_entry(short, "Blog", RenderOptions(instant_view="always"), page)
    assert always.attempts[0].params["link_preview_options"]["url"] == page
    assert not wants_page(long_entry(), "Blog", RenderOptions(instant_view="off"))
    off = render_entry(long_entry(), "Blog", RenderOptions(instant_view="off"), page)
    assert "Read more" in off.attempts[0].params["text"]


def test_the_fake_refuses_what_telegraph_refuses() -> None:
    assert content_problem([{"tag": "div", "children": ["x"]}]) == "TAG_NOT_ALLOWED: div"
    assert content_problem([{"tag": "a", "attrs": {"class": "x"}}]) == "ATTRIBUTE_NOT_ALLOWED"
    assert content_problem([{"tag": "p", "children": ["x" * CONTENT_LIMIT]}]) == "CONTENT_TOO_BIG"
    assert content_problem([]) == "CONTENT_REQUIRED"


def test_pages_are_drafted_once_per_post_and_only_for_posts_a_chat_is_sent() -> None:
    from bot.feeds.diff import entry_prints
    from bot.models import Chat, Feed, ParsedFeed, Subscription
    from bot.models import SubscriptionOptions as Options
    from bot.pipeline.check import page_drafts

    longs = [replace(long_entry(), key=f"k{i}", link=f"{BASE}{i}/") for i in range(4)]
    short = Entry("s", "Short", BASE + "s/", content_html="<p>Just this.</p>")
    fresh = [*longs, short]  # oldest first
    feed = Feed(url="https://blog.test/feed")
    parsed = ParsedFeed("Blog", BASE, fresh)
    subs = [
        Subscription(1, feed.url),  # auto: the long posts, the newest two (backlog cap)
        Subscription(2, feed.url, options=Options(link_preview=False)),  # the same, once
        Subscription(3, feed.url, options=Options(instant_view="off")),
        Subscription(4, feed.url, options=Options(instant_view="always")),  # has seen "s"
    ]
    chats = {4: Chat(id=4, seen=list(entry_prints(short)))}
    drafts = page_drafts(feed, parsed, fresh, subs, chats, backlog_limit=2)
    assert sorted(drafts) == ["k2", "k3"]
    assert drafts["k3"].title == "A long read"
    everyone = page_drafts(feed, parsed, fresh, subs, {}, backlog_limit=10)
    assert sorted(everyone) == ["k0", "k1", "k2", "k3", "s"]  # "always" takes the short too


def test_a_template_without_its_text_gets_no_page_it_could_not_link() -> None:
    entry = long_entry()
    bare = "<b>{title}</b>\n{link}"
    assert not wants_page(entry, "Blog", RenderOptions(style=bare, instant_view="always"))
    assert not wants_page(entry, "Blog", RenderOptions(style=bare))
    assert wants_page(entry, "Blog", RenderOptions(style="{title}\n{summary}"))
    assert wants_page(entry, "Blog", RenderOptions(style="title", instant_view="always"))
