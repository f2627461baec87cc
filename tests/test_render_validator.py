"""Every rendering is one Telegram accepts: the hostile feedparser corpus, 1,000 random docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError
from bot.feeds.parser import parse_bytes
from bot.models import Entry, RenderedMessage
from bot.render import RenderOptions, render_entry
from tests.fakes.telegram_rules import album_caption, api_call_error, message_content

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "feedparser"
_FORBIDDEN_RE = re.compile(r"javascript:|<script|alert\(|\bon[a-z]+\s*=|vbscript:", re.I)


def assert_accepted(msg: RenderedMessage) -> None:
    assert msg.attempts
    for call in msg.attempts:
        assert not ("parse_mode" in call.params and "entities" in call.params)
        assert not {"chat_id", "message_thread_id", "disable_notification"} & set(call.params)
        error = api_call_error(call.method, call.params)
        assert error is None, (error, call.params)
        if call.method == "sendMediaGroup":  # the album's caption is its first item's
            text, _ = album_caption(call.params["media"])
        else:
            text, _ = message_content(call.method, call.params)
        assert text.strip(), call.params
    last = msg.attempts[-1]
    assert last.method == "sendMessage" and "parse_mode" not in last.params
    if msg.follow_up is not None:
        assert_accepted(msg.follow_up)


def corpus_files() -> list[Path]:
    if not CORPUS.exists():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".rdf"))


def entries_from(data: bytes) -> tuple[str, list[Entry]]:
    """The bot's own parser (feedparser with its sanitizer off): exactly what production renders."""
    try:
        feed = parse_bytes(data, "https://corpus.test/feed.xml")
    except ParseError:
        return "", []
    return feed.title, feed.entries


def test_corpus_renders_everything_telegram_accepts() -> None:
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus/feedparser not available")
    rendered = 0
    for path in files:
        title, entries = entries_from(path.read_bytes())
        for entry in entries:
            for opts in (RenderOptions(), RenderOptions(style="title", pictures=False)):
                assert_accepted(render_entry(entry, title, opts))
            rendered += 1
    assert rendered > 100


def test_corpus_sanitize_cases_leak_nothing() -> None:
    files = [p for p in corpus_files() if "sanitize" in p.parts or "wellformed" in p.parts]
    if not files:
        pytest.skip("../shared/corpus/feedparser not available")
    for path in files:
        title, entries = entries_from(path.read_bytes())
        for entry in entries:
            for call in render_entry(entry, title).attempts:
                shown = str(call.params.get("text") or call.params.get("caption"))
                assert not _FORBIDDEN_RE.search(shown), (path.name, shown)


def test_raw_hostile_html_is_neutralised() -> None:
    """feedparser already sanitises; the renderer must not rely on that."""
    html = (
        '<p onclick="evil()">Hi<script>alert(1)</script><style>p{}</style>'
        '<a href="javascript:alert(2)">x</a><a href=" jav&#x09;ascript:alert(3)">y</a>'
        '<img src=x onerror="alert(4)"><iframe src="javascript:alert(5)">frame text</iframe>'
        '<a href="data:text/html,hi">z</a><svg><text>svg text</text></svg>'
        "<noscript>ns</noscript><object>obj</object><form><input value=v>form text</form></p>"
    )
    entry = Entry(key="k", title="T", link="https://e.com/p", content_html=html)
    html_call, plain_call = render_entry(entry, "F").attempts
    assert html_call.params["text"].split("\n\n", 1)[1] == "Hixyz"
    assert plain_call.params["text"].split("\n\n", 1)[1] == "Hixyz"


# ---------------------------------------------------------------- random documents (Hypothesis)

TAGS = ["p", "br", "b", "strong", "i", "em", "u", "s", "del", "a", "code", "pre", "blockquote",
        "ul", "ol", "li", "h1", "h2", "h3", "table", "tr", "td", "script", "style", "iframe",
        "span", "div", "img", "figure", "figcaption", "math", "annotation", "svg", "form",
        "noscript", "blink", "x-junk", "tg-spoiler", "font", "sup", "hr"]
ATTRS = ['class="math-inline"', 'class="math-display"', 'href="#x"', 'href="/rel?a=1&b=2"',
         'href="javascript:alert(1)"', 'href="https://e.com/&quot;x"', 'onclick="x()"',
         'class="language-py"', 'encoding="application/x-tex"', 'src="https://e.com/i.png"',
         'href="tg://resolve?domain=x"', 'href="mailto:a@b.c"', 'style="color:red"', "start=3"]
TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "&amp;", "&lt;", "&rsquo;", "&nbsp;", "&#128512;", "&#x1F600;", "&bogus;", "&", "<", ">",
        "😀👍🏽", "👨‍👩‍👧", "e\u0301", "$x^2$", "$$\\frac{a}{b}$$", "\\(\\alpha\\)", "$5 and $10",
        "$\\mathbf{x}$", "$e^{-x^2}$", "\\[\\sum_i x_i\\]", "#", "¶", "\n\n\n", "   ", "\t",
        "\x00\x01\x0b", "\ud7ff\ue000", "&#0;", "&#xD800;", "&#1114112;", "]]>", "<!-- c -->",
    ]),
    st.integers(min_value=100, max_value=6000).map(lambda n: ("word " * n)[:n]),
    st.integers(min_value=50, max_value=3000).map(lambda n: "😀" * n),
    st.integers(min_value=500, max_value=5000).map(lambda n: "x" * n),
)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=4 if depth < 3 else 1))):
        if depth < 4 and draw(st.booleans()):
            tag = draw(st.sampled_from(TAGS))
            attrs = " ".join(draw(st.lists(st.sampled_from(ATTRS), max_size=2)))
            inner = draw(documents(depth + 1))
            close = draw(st.sampled_from([f"</{tag}>", f"</{tag}>", "", "</p>"]))
            parts.append(f"<{tag} {attrs}>{inner}{close}")
        else:
            parts.append(draw(TEXTS))
    return "".join(parts)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    html=documents(),
    title=st.one_of(st.text(max_size=30), st.just("x" * 5000), st.just("<b>&amp;</b>")),
    picture=st.booleans(),
    style=st.sampled_from(["full", "full", "title"]),
)
def test_random_documents_always_accepted(html: str, title: str, picture: bool, style: str) -> None:
    entry = Entry(
        key="k",
        title=title,
        link="https://example.org/post/1",
        content_html=html,
        image_url="https://example.org/pic.png" if picture else None,
        categories=("Tag one", "π"),
    )
    msg = render_entry(entry, "Feed", RenderOptions(style=style))
    assert_accepted(msg)
    for call in msg.attempts:
        shown = str(call.params.get("text") or call.params.get("caption"))
        assert "javascript:" not in shown and "onclick" not in shown
