"""Templates (bot/template.py, bot/render/template.py) and the options that carry them and the
hashtags (bot/options.py): reading what users type, refusing by name, rendering within limits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import OptionError
from bot.handlers.options import options_keyboard, parse_option, toggled, typed_tail
from bot.i18n import t
from bot.models import Enclosure, Entry, Subscription, SubscriptionOptions
from bot.options import OPTIONS, describe_options, help_examples, template_help
from bot.render import RenderOptions, render_entry
from bot.render.cut import measure
from bot.render.template import fill, fill_within
from bot.template import (
    BUILT_IN,
    MAX_TEMPLATE,
    Slot,
    Template,
    parse_template,
    template_for,
    typed_template,
)
from tests.fakes.telegram_rules import api_call_error, message_content
from tests.test_render_validator import assert_accepted, corpus_files, entries_from

LINK = "https://blog.test/post/1/"
WHEN = datetime(2026, 11, 21, 14, 5, tzinfo=UTC)


def entry(**kw: object) -> Entry:
    base: dict[str, object] = {
        "key": "k",
        "title": "Hello <World> & co",
        "link": LINK,
        "published": WHEN,
        "author": "Ada",
        "content_html": "<p>Body.</p>",
        "categories": ("Deep Learning", "2024"),
    }
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


def refusal(text: str) -> OptionError:
    with pytest.raises(OptionError) as refused:
        parse_template(text)
    return refused.value


def text_of(style: str, item: Entry | None = None, **opts: object) -> str:
    message = render_entry(item or entry(), "Feed", RenderOptions(style=style, **opts))  # type: ignore[arg-type]
    call = message.attempts[0]
    assert api_call_error(call.method, call.params) is None, call.params
    return str(call.params.get("text") or call.params.get("caption"))


# ------------------------------------------------------------------ reading templates
def test_what_users_type_becomes_the_template_text() -> None:
    assert typed_template('"<b>{title}</b>\\n{link}"') == "<b>{title}</b>\n{link}"
    assert typed_template("“{title} — {feed}”") == "{title} — {feed}"  # phones' smart quotes
    assert typed_template("  {title}\r\n{link} ") == "{title}\n{link}"
    assert typed_tail(
        "/set 1 template <b>{title}</b>\n\n{summary}", ["<b>{title}</b>", "{summary}"]
    ) == ("<b>{title}</b>\n\n{summary}")
    assert typed_tail("/set 1 tags a b", []) == ""


@pytest.mark.parametrize(
    ("typed", "key", "named"),
    [
        ("{titel}", "template_unknown_placeholder", "{titel}"),
        ("{title} {Summary} {nope}", "template_unknown_placeholder", "{nope}"),
        ("{title", "template_brace", "{"),
        ("{title} }", "template_brace", "}"),
        ("<div>{title}</div>", "template_bad_tag", "&lt;div&gt;"),
        ('<a href="{link}" onclick="x">{title}</a>', "template_bad_tag", "onclick"),
        ('<span class="evil">{title}</span>', "template_bad_tag", "evil"),
        ('<a href="{link}"><a href="{link}">{title}</a></a>', "template_bad_tag", "&lt;a"),
        ('<a href="javascript:alert(1)">{title}</a>', "template_bad_link", "javascript"),
        ("<b>{title}</i>", "template_tag_order", "&lt;/i&gt;"),
        ("<b><i>{title}</b></i>", "template_tag_order", "&lt;/b&gt;"),
        ("<b>{title}", "template_tag_unclosed", "&lt;b&gt;"),
        ("<b>{summary}</b>", "template_rich_in_tag", "{summary}"),
        ("<blockquote>{enclosure}</blockquote>", "template_rich_in_tag", "blockquote"),
        ("no placeholder here", "template_no_placeholder", "{title}"),
        ("{title}" + "x" * MAX_TEMPLATE, "template_too_long", str(MAX_TEMPLATE)),
    ],
)
def test_a_wrong_template_is_refused_naming_what_is_wrong(typed: str, key: str, named: str) -> None:
    error = refusal(typed)
    assert error.key == key
    assert named in error.text(), error.text()
    assert error.reason.text("zh") != error.reason.text("en")  # said in Chinese too


def test_good_templates_read_and_fill() -> None:
    template = parse_template(
        '<b><a href="{link}">{title}</a></b> · {{{feed}}}\n<i>{author}</i>, {date}\n\n{summary}\n'
        '<a href="https://example.org/about">about</a> <tg-spoiler>{tags}</tg-spoiler> 1 < 2 & 3'
    )
    values = {
        "title": "T &amp; U",
        "link": LINK,
        "feed": "F",
        "author": "A",
        "date": "D",
        "summary": "<i>S</i>",
        "tags": "#x",
    }
    assert fill(template, values) == (
        f'<b><a href="{LINK}">T &amp; U</a></b> · {{F}}\n<i>A</i>, D\n\n<i>S</i>\n'
        '<a href="https://example.org/about">about</a> <tg-spoiler>#x</tg-spoiler> 1 &lt; 2 &amp; 3'
    )
    assert template_for("compact") == parse_template(BUILT_IN["compact"])
    link_only = parse_template(BUILT_IN["title-link"])  # the enclosure lines go at the end
    assert template_for("title-link") == Template((*link_only.lines, (Slot("enclosure"),)))
    assert template_for("full") is None and template_for("title") is None
    assert template_for("{broken") is None  # an unreadable stored value: the usual rendering


def test_lines_of_empty_placeholders_and_empty_links_are_left_out() -> None:
    template = parse_template(
        '<b><a href="{link}">{title}</a></b>\nby {author}\n{tags}\n\n{summary}'
    )
    shown = fill(template, {"title": "T", "link": "", "author": "", "tags": "", "summary": "S"})
    assert shown == "<b>T</b>\nby \n\nS"  # "by " has words of its own: kept
    untitled = fill(template, {"title": "", "link": LINK, "author": "A", "summary": "S"})
    assert untitled == "by A\n\nS"
    spanning = parse_template("<i>{author}</i> \n<b>{title}\n{feed}</b>\n{date}")
    assert fill(spanning, {"title": "", "feed": "F"}) == "<b>\nF</b>"  # the tag stays whole


# ------------------------------------------------------------------------- rendering
def test_rendered_templates_escape_the_post_and_keep_the_literal_markup() -> None:
    style = "<b>{title}</b> · <i>{feed}</i>\n{date} · {author}\n{summary}\n{link}\n{tags}"
    assert text_of(style, tags="mine news") == (
        "<b>Hello &lt;World&gt; &amp; co</b> · <i>Feed</i>\n21 Nov 2026, 14:05 UTC · Ada\nBody.\n"
        f"{LINK}\n#mine #news #Deep_Learning"
    )
    assert text_of(style, lang="zh").split("\n")[1] == "2026年11月21日 14:05 UTC · Ada"
    assert text_of("compact") == (
        f'<b><a href="{LINK}">Hello &lt;World&gt; &amp; co</a></b>\nBody.\n#Deep_Learning'
    )
    assert text_of("title-link", hashtags=False) == (
        f'<a href="{LINK}">Hello &lt;World&gt; &amp; co</a>'
    )
    hostile = entry(
        title='"><script>x</script>', link='https://e.test/"onmouseover="x', author="<b>"
    )
    assert '"><script>' not in text_of('<a href="{link}">{title}</a> {author}', hostile)


def test_the_default_is_todays_rendering_and_hashtags_follow_the_options() -> None:
    today = text_of("full")
    assert today.endswith("Body.\n\n#Deep_Learning") and "Feed · Ada · 21 Nov 2026" in today
    assert text_of("full", hashtags=False).endswith("Body.")
    assert text_of("full", tags="news").endswith("#news #Deep_Learning")
    assert text_of("title", tags="news").endswith("\n\n#news")  # own tags on every post
    assert "#Deep_Learning" not in text_of("title")


@pytest.mark.parametrize("limit_method", ["sendMessage", "sendPhoto"])
def test_too_long_the_summary_is_cut_first_within_telegrams_limits(limit_method: str) -> None:
    long_body = "".join(f"<p>Paragraph {n} has some words in it.</p>" for n in range(600))
    picture = "https://img.test/a.png" if limit_method == "sendPhoto" else None
    item = entry(content_html=long_body, image_url=picture, categories=("Alpha", "Beta"))
    style = "<b>{title}</b>\n{summary}\n{tags}\n{link}"
    message = render_entry(item, "Feed", RenderOptions(style=style))
    assert_accepted(message)
    call = message.attempts[0]
    text, _ = message_content(call.method, call.params)
    assert len(text.encode("utf-16-le")) // 2 <= (4096 if call.method == "sendMessage" else 1024)
    assert text.startswith("Hello <World> & co\nParagraph 0") and text.endswith(LINK)
    assert "Read more" in text and "#Alpha #Beta" in text


def test_even_a_huge_literal_part_fits() -> None:
    values = {"title": "T", "summary": "S " * 3000, "tags": "#a " * 300}
    template = parse_template("{title} " + "word " * 90 + "\n{summary}\n{tags}")
    for limit in (1024, 200, 50):
        html, _ = fill_within(template, values, limit, '<a href="https://e.test/">more</a>')
        assert measure(html) <= limit
        assert api_call_error("sendMessage", {"text": html, "parse_mode": "HTML"}) is None
        if limit == 1024:  # the summary keeps its place, the tags go
            assert "#a" not in html and "S S S" in html and html.endswith("more</a>")


def test_templates_carry_media_and_the_plain_fallback() -> None:
    audio = Enclosure("https://cdn.test/ep.mp3", "audio/mpeg", 1_000_000)
    podcast = entry(enclosures=(audio,))
    message = render_entry(podcast, "Cast", RenderOptions(style="<b>{title}</b>\n{summary}"))
    assert message.attempts[0].method == "sendAudio"
    assert message.attempts[0].params["caption"] == "<b>Hello &lt;World&gt; &amp; co</b>\nBody."
    refused = message.attempts[1]  # Telegram refused the audio: the text with its Listen line
    assert refused.method == "sendMessage" and "🎧" in refused.params["text"]
    assert refused.params["text"].startswith("<b>Hello &lt;World&gt; &amp; co</b>\nBody.\n")
    plain = message.attempts[-1]
    assert "parse_mode" not in plain.params and plain.params["text"].startswith("Hello <World>")
    # no {summary}: like the title style, no picture or media: the Listen line where it is put
    bare = render_entry(podcast, "Cast", RenderOptions(style="🎙 {enclosure}\n{title}"))
    assert bare.attempts[0].method == "sendMessage"
    assert bare.attempts[0].params["text"].startswith("🎙 🎧")
    pictured = entry(image_url="https://img.test/a.png")
    assert render_entry(pictured, "F", RenderOptions(style="title-link")).attempts[0].method == (
        "sendMessage"
    )
    assert render_entry(pictured, "F", RenderOptions(style="compact")).attempts[0].method == (
        "sendPhoto"
    )


def test_a_post_with_nothing_for_the_template_gets_the_usual_form() -> None:
    assert "Hello" in text_of("{author}", entry(author=""))


def test_the_corpus_renders_through_every_built_in_style_and_a_custom_one() -> None:
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus/feedparser not available")
    custom = (
        "<b>{title}</b> <i>{author}</i>\n{date}\n<blockquote>{title}</blockquote>\n"
        "{summary}\n{enclosure}\n{tags}\n{link}"
    )
    rendered = 0
    for path in files[::3]:
        title, entries = entries_from(Path(path).read_bytes())
        for item in entries:
            for style in (*BUILT_IN, custom):
                assert_accepted(render_entry(item, title, RenderOptions(style=style, tags="x")))
            rendered += 1
    assert rendered > 30


# --------------------------------------------------------------------- the options
def test_set_reads_styles_templates_hashtags_and_tags() -> None:
    assert parse_option("style", "compact", min_interval=60) == {"style": "compact"}
    assert parse_option("template", "Title-Link", min_interval=60) == {"style": "title-link"}
    assert parse_option("template", "default", min_interval=60) == {"style": "full"}
    assert parse_option("template", '"compact"', min_interval=60) == {"style": "compact"}
    assert parse_option("template", '"{title}\\n{link}"', min_interval=60) == {
        "style": "{title}\n{link}"
    }
    assert parse_option("hashtags", "off", min_interval=60) == {"hashtags": False}
    assert parse_option("tags", "#news tech", min_interval=60) == {"tags": "news tech"}
    assert parse_option("tags", "off", min_interval=60) == {"tags": ""}
    assert parse_option("template", "compact", min_interval=60, for_defaults=True)
    for typed, key in (("fancy", "set_style_bad"), ("{x}", "template_unknown_placeholder")):
        with pytest.raises(OptionError) as refused:
            parse_option("template", typed, min_interval=60)
        assert refused.value.key == key


def test_old_records_get_the_defaults_and_new_values_are_stored() -> None:
    old = Subscription.from_dict({"chat_id": 1, "feed_url": "https://e.test/f", "options": {}})
    assert (old.options.style, old.options.hashtags, old.options.tags) == ("full", True, "")
    assert old.options.to_dict()["style"] == "full"
    options = SubscriptionOptions(style="<b>{title}</b>\n{link}", hashtags=False, tags="a b")
    back = Subscription.from_dict(Subscription(1, "https://e.test/f", options=options).to_dict())
    assert back.options == options
    render = RenderOptions.for_subscription(options, "en")
    assert (render.style, render.hashtags, render.tags) == (options.style, False, "a b")


def test_the_card_shows_the_template_and_a_button_per_built_in_style() -> None:
    options = SubscriptionOptions(style="<b>{title}</b>\n{link}", tags="news tech")
    card = describe_options(options, 300)
    assert "📝 Style: your template <code>&lt;b&gt;{title}&lt;/b&gt;\n{link}</code>" in card
    assert "#️⃣ Categories as hashtags: on" in card and "🔖 Own hashtags: #news #tech" in card
    rows = options_keyboard(options, "tok", default_interval=300).to_dict()["inline_keyboard"]
    labels = {b["text"]: b["callback_data"] for row in rows for b in row}
    assert labels["📝 compact (title, text, tags)"] == "opt:tok:style=compact"
    assert labels["📝 full post"] == "opt:tok:style=full" and "#️⃣ Hashtags: on" in labels
    assert all(len(data.encode()) <= 64 for data in labels.values())
    assert toggled(options, "style=compact") == {"style": "compact"}
    assert toggled(options, "hashtags") == {"hashtags": False}
    with pytest.raises(ValueError):
        toggled(options, "style=<b>")
    compact = SubscriptionOptions(style="compact")
    assert "📝 ✅ compact (title, text, tags)" in str(
        options_keyboard(compact, "t", default_interval=1).to_dict()
    )
    assert OPTIONS.get("TEMPLATE") is OPTIONS.get("style")


def test_help_shows_templates_and_hashtags_in_both_languages() -> None:
    assert "<code>/set 2 style compact</code>" in help_examples()
    assert "<code>/set 2 tags news tech</code>" in help_examples()
    for lang in ("en", "zh"):
        text = (
            template_help()
            if lang == "en"
            else t("help_templates", "zh", example="e", placeholders="p")
        )
        assert api_call_error("sendMessage", {"text": text, "parse_mode": "HTML"}) is None
    assert "{summary}" in template_help() and "&lt;b&gt;{title}&lt;/b&gt;" in template_help()
