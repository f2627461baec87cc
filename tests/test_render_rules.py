"""One test per renderer rule: math, structure, links, entities, whitespace, header, length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.models import Entry
from bot.render import (
    RenderOptions,
    format_date,
    html_to_telegram,
    plain_text,
    render_entry,
    tex_to_unicode,
    utf16_len,
)
from bot.render.cut import truncate
from tests.fakes.telegram_rules import api_call_error, message_content

LINK = "https://blog.example.org/posts/p/"


def body(html: str) -> str:
    return html_to_telegram(html, LINK)


def shown(method: str, params: dict[str, object]) -> str:
    return message_content(method, params)[0]


# ------------------------------------------------------------------------------------ math


@pytest.mark.parametrize(
    ("tex", "expected"),
    [
        (r"\mathbf{x}", "𝐱"),
        (r"\alpha \le \beta_1", "α ≤ β₁"),
        (r"O(N^2 T)", "O(N² T)"),
        (r"\frac{a}{b}", "a/b"),
        (r"\frac{a+b}{2}", "(a+b)/2"),
        (r"\left( x \right)", "( x )"),
        (r"\hat y = \mathbf{w}^\top \mathbf{x}", "ŷ = 𝐰ᵀ 𝐱"),
        (r"10{,}000", "10,000"),
        (r"\sqrt{x+1}", "√(x+1)"),
        (r"\text{loss}(x)", "loss(x)"),
        (r"q^\star\in\mathcal{Q}", "q*∈𝒬"),
        (r"\{1, 2\}", "{1, 2}"),
    ],
)
def test_tex_to_unicode(tex: str, expected: str) -> None:
    assert tex_to_unicode(tex) == expected


@pytest.mark.parametrize(
    "tex",
    [r"e^{-x^2}", r"\nabla_\theta L", r"\foo x", r"\begin{matrix}a\end{matrix}", r"\hat{xy}",
     r"\sqrt[3]{x}"],
)
def test_tex_it_cannot_express_is_refused(tex: str) -> None:
    assert tex_to_unicode(tex) is None


def test_math_delimiters_and_spans() -> None:
    assert body(r"<p>Let $\alpha$ and \(\beta\) be.</p>") == "Let α and β be."
    assert body('<span class="math-inline">$O(N^2 T)$</span>\n, fast') == "O(N² T), fast"
    assert body(r"Sum: $$\sum_{i=1}^n x_i$$ done") == "Sum:\n∑ᵢ₌₁ⁿ xᵢ\ndone"
    assert body(r"see \[\frac{a}{b}\] here") == "see\na/b\nhere"
    assert body('<span class="math-display">\\alpha</span>') == "α"
    mathml = ('<math display="block"><semantics><mi>x</mi>'
              '<annotation encoding="application/x-tex">x^2</annotation></semantics></math>')
    assert body(f"a {mathml} b") == "a\nx²\nb"


def test_unconvertible_math_is_shown_as_tex_code() -> None:
    out = body(r"<p>Gaussian $e^{-x^2}$ &amp; more</p>")
    assert out == "Gaussian <code>e^{-x^2}</code> &amp; more"
    # no <code> inside a link or bold: the TeX stays as text
    assert body(r"<b>bold $e^{-x^2}$</b>") == "<b>bold e^{-x^2}</b>"


def test_prices_are_not_math() -> None:
    assert body("<p>It costs $5 and $10 per run.</p>") == "It costs $5 and $10 per run."
    assert body("<p>Pay $5,$6 or $ 7 $</p>") == "Pay $5,$6 or $ 7 $"


# ------------------------------------------------------------------------------- structure


def test_paragraphs_breaks_and_blank_lines() -> None:
    html = "<p>one\n  two</p>\n\n<p>three<br>four<br><br><br><br>five</p><p></p><p>six</p>"
    assert body(html) == "one two\n\nthree\nfour\n\nfive\n\nsix"


def test_headings_are_bold_and_permalinks_vanish() -> None:
    html = (
        '<h2 id="x" class="heading-anchor">Intro<a href="#x" class="heading-link">#</a>\n</h2>'
        '<p>Text <a href="#fn1">1</a><a href="/p/#top">¶</a></p><h3>Next 🔗<a href="#n">🔗</a></h3>'
    )
    assert body(html) == "<b>Intro</b>\nText\n\n<b>Next 🔗</b>"


def test_nested_and_ordered_lists() -> None:
    html = ('<ul><li>a<ul><li>b<ol start="7"><li>c</li><li>d</li></ol></li></ul></li>'
            "<li><b>e</b></li></ul><ol><li>one</li><li>two</li></ol>")
    assert body(html) == "• a\n   ◦ b\n      7. c\n      8. d\n• <b>e</b>\n1. one\n2. two"


def test_blockquote_pre_and_code() -> None:
    html = (
        "<blockquote><p>q1</p><blockquote>inner</blockquote></blockquote>"
        '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>'
        "<pre>plain  pre</pre><p>use <code> pip  install </code>now</p>"
    )
    assert body(html) == (
        "<blockquote>q1\n\ninner</blockquote>\n\n"
        '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>\n\n'
        "<pre>plain  pre</pre>\n\nuse <code>pip install</code> now"
    )


def test_inline_formatting_kept_and_not_doubled() -> None:
    html = "<strong>b <b>bb</b></strong> <em>i</em> <u>u</u> <del>s</del> <ins>n</ins> <tt>t</tt>"
    assert body(html) == "<b>b bb</b> <i>i</i> <u>u</u> <s>s</s> <u>n</u> <code>t</code>"


def test_dropped_elements_take_their_content() -> None:
    html = (
        "<p>keep</p><iframe>f</iframe><script>s()</script>"
        "<style>p{}</style><form>form</form><svg><text>svg</text></svg><noscript>n</noscript>"
        '<object>o</object><img src="x.png" alt="alt text"><figure><img src="y"><figcaption>cap'
        "</figcaption></figure><head><title>t</title></head><p>end</p>"
    )
    assert body(html) == "keep\n\n<i>cap</i>\n\nend"  # a figure's caption is the post's text


def test_unknown_tags_keep_their_text() -> None:
    assert body("<blink>see</blink> <x-foo a=1>this</x-foo>") == "see this"


# ----------------------------------------------------------------------------------- links


def test_links_resolved_against_the_post() -> None:
    html = ('<a href="../other/">rel</a> <a href="/root">root</a> '
            '<a href="//cdn.example/x">cdn</a> <a href="mailto:a@b.c">mail</a> <a href="tg://resolve?domain=x">tg</a>')
    assert body(html) == (
        '<a href="https://blog.example.org/posts/other/">rel</a> '
        '<a href="https://blog.example.org/root">root</a> <a href="https://cdn.example/x">cdn</a> '
        '<a href="mailto:a@b.c">mail</a> <a href="tg://resolve?domain=x">tg</a>'
    )


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", " JaVa\tScRiPt:x", "data:text/html,x", "vbscript:x", "ftp://x/y",
             "file:///etc/passwd", "http://", ""],
)
def test_unsafe_links_keep_text_only(href: str) -> None:
    assert body(f'<a href="{href}" onclick="x()">text</a>') == "text"


def test_link_attribute_is_escaped_and_no_nested_links() -> None:
    html = '<a href="https://e.com/?a=1&amp;b=&quot;2&quot;">x <a href="https://f.com">y</a></a>'
    out = body(html)
    assert out == ('<a href="https://e.com/?a=1&amp;b=&quot;2&quot;">x</a> '
                   '<a href="https://f.com">y</a>')
    assert api_call_error("sendMessage", {"text": out, "parse_mode": "HTML"}) is None


# -------------------------------------------------------------------------------- entities


def test_entities_become_characters_then_escaped() -> None:
    html = ("<p>&rsquo;&mdash;&hellip;&copy;&nbsp;&#8212;&#x1F600;&amp;&lt;b&gt;&quot;"
            "&NotEqualTilde;&bogus; 5 < 6 & 7 > 3</p>")
    out = body(html)
    assert out == "’—…©\u00a0—😀&amp;&lt;b&gt;\"≂̸&amp;bogus; 5 &lt; 6 &amp; 7 &gt; 3"
    assert set(__import__("re").findall(r"&\w+;", out)) <= {"&amp;", "&lt;", "&gt;", "&quot;"}


def test_control_characters_and_bad_codepoints_removed() -> None:
    assert body("a\x00b\x0bc&#0;d&#xD800;e\x7f") == "abc\ufffdd\ufffde"


def test_plain_text_unescapes_and_shows_urls() -> None:
    html = '<b><a href="https://e.com/">T &amp; U</a></b>\n<a href="https://x.y/">https://x.y/</a>'
    assert plain_text(html) == "T & U (https://e.com/)\nhttps://x.y/"


# ---------------------------------------------------------------------- header and options


def entry(**kw: object) -> Entry:
    base: dict[str, object] = {
        "key": "k", "title": "Hello <World> & co", "link": LINK,
        "published": datetime(2026, 11, 21, 14, 5, tzinfo=UTC), "author": "Ada",
        "content_html": "<p>Body.</p>",
    }
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


def test_header_title_feed_author_date() -> None:
    msg = render_entry(entry(categories=("Deep Learning", "C#", "2024", "deep-learning")), "Feed")
    assert [a.method for a in msg.attempts] == ["sendMessage", "sendMessage"]
    assert msg.attempts[0].params == {
        "text": f'<b><a href="{LINK}">Hello &lt;World&gt; &amp; co</a></b>\n'
        "Feed · Ada · 21 Nov 2026, 14:05 UTC\n\nBody.\n\n#Deep_Learning #C",
        "parse_mode": "HTML",
        "link_preview_options": {"url": LINK, "prefer_large_media": True},
    }
    assert msg.attempts[1].params["text"].startswith(f"Hello <World> & co ({LINK})\n")


def test_no_link_means_bold_title_and_no_preview() -> None:
    msg = render_entry(entry(link="javascript:alert(1)"), "Feed")
    assert msg.attempts[0].params["text"].startswith("<b>Hello &lt;World&gt; &amp; co</b>\n")
    assert msg.attempts[0].params["link_preview_options"] == {"is_disabled": True}


def test_custom_title_preview_off_and_timezone() -> None:
    opts = RenderOptions(custom_title="Mine", link_preview=False, timezone="Asia/Tokyo")
    text = render_entry(entry(), "Feed", opts).attempts[0].params
    assert "\nMine · Ada · 21 Nov 2026, 23:05 JST\n" in text["text"]
    assert text["link_preview_options"] == {"is_disabled": True}


def test_format_date() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))
    assert format_date(when) == "2 Jan 2026, 01:04 UTC"
    assert format_date(when, "No/Such_Zone") == "2 Jan 2026, 01:04 UTC"
    assert format_date(datetime(2026, 1, 2, 3, 4)) == "2 Jan 2026, 03:04 UTC"
    assert format_date(None) == ""


def test_title_style_is_header_only() -> None:
    msg = render_entry(entry(image_url="https://e.com/i.png"), "Feed", RenderOptions(style="title"))
    assert [a.method for a in msg.attempts] == ["sendMessage", "sendMessage"]
    assert "Body" not in msg.attempts[0].params["text"]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"title": "", "content_html": "", "author": "", "published": None}, LINK),
        ({"title": "", "content_html": "", "author": "", "published": None, "link": ""},
         "(untitled post)"),
        ({"title": " ", "content_html": "<p> </p><img src=x>", "author": "", "published": None,
          "link": ""}, "(untitled post)"),
    ],
)
def test_never_empty(kw: dict[str, object], expected: str) -> None:
    for call in render_entry(entry(**kw), "").attempts:
        assert api_call_error(call.method, call.params) is None
        assert shown(call.method, call.params) == expected


# ---------------------------------------------------------------------------------- pictures


def test_photo_with_caption_then_text_then_plain() -> None:
    msg = render_entry(entry(image_url="https://e.com/i.png"), "Feed")
    photo, text, plain = msg.attempts
    assert photo.method == "sendPhoto"
    assert photo.params == {"photo": "https://e.com/i.png", "caption": text.params["text"],
                            "parse_mode": "HTML"}
    assert text.method == plain.method == "sendMessage" and "parse_mode" not in plain.params


@pytest.mark.parametrize("url", ["ftp://e.com/i.png", "/relative.png", "javascript:x", ""])
def test_only_http_pictures(url: str) -> None:
    assert render_entry(entry(image_url=url), "F").attempts[0].method == "sendMessage"


def test_pictures_off() -> None:
    msg = render_entry(entry(image_url="https://e.com/i.png"), "F", RenderOptions(pictures=False))
    assert msg.attempts[0].method == "sendMessage"
    preview = msg.attempts[0].params["link_preview_options"]
    assert preview == {"url": LINK, "prefer_small_media": True}


def test_post_a_little_too_long_for_a_caption_gets_cut_caption() -> None:
    paras = "".join(f"<p>Paragraph {i} says something sensible here.</p>" for i in range(30))
    photo, text, _ = render_entry(entry(content_html=paras, image_url="https://e.com/i.png"),
                                  "F").attempts
    caption = photo.params["caption"]
    assert photo.method == "sendPhoto"
    assert utf16_len(shown("sendPhoto", photo.params)) <= 1024
    assert caption.endswith(f'here.\n\n<a href="{LINK}">Read more →</a>')
    assert "Paragraph 29" in text.params["text"]


def test_long_post_with_picture_is_text_with_the_picture_as_large_preview() -> None:
    """A caption would keep less than two thirds of the text: a 4096 text message keeps it all,
    the picture shown above it as the large link preview."""
    paras = "".join(f"<p>Paragraph {i} says something sensible here.</p>" for i in range(60))
    msg = render_entry(entry(content_html=paras, image_url="https://e.com/i.png"), "F")
    assert [a.method for a in msg.attempts] == ["sendMessage", "sendMessage"]
    params = msg.attempts[0].params
    assert params["link_preview_options"] == {
        "url": "https://e.com/i.png", "prefer_large_media": True, "show_above_text": True
    }
    assert "Paragraph 59" in shown("sendMessage", params)


def test_unsplittable_body_prefers_text_message_with_large_preview() -> None:
    word_soup = "<p>" + " ".join(["lorem"] * 1500) + "</p>"
    msg = render_entry(entry(content_html=word_soup, image_url="https://e.com/i.png"), "F")
    assert [a.method for a in msg.attempts] == ["sendMessage", "sendMessage"]
    params = msg.attempts[0].params
    assert params["link_preview_options"]["url"] == "https://e.com/i.png"
    text = shown("sendMessage", params)
    assert utf16_len(text) <= 4096 and text.endswith("lorem…\n\nRead more →")


# ------------------------------------------------------------------------------------ cutting


def test_cut_prefers_paragraph_then_sentence_then_word() -> None:
    html = "First para here.\n\nSecond one. It goes on and on"
    assert truncate(html, 27).html == "First para here."
    assert truncate(html, 40).html == "First para here.\n\nSecond one."
    cut = truncate("alpha beta gamma delta", 13)
    assert (cut.html, cut.boundary) == ("alpha beta", "word")


def test_cut_counts_utf16_and_never_splits_a_surrogate_pair() -> None:
    html = "<b>" + "😀" * 10 + "</b> tail"
    cut = truncate(html, 7)  # each emoji is 2 UTF-16 units: 3 fit
    assert cut.html == "<b>😀😀😀</b>"
    assert api_call_error("sendMessage", {"text": cut.html, "parse_mode": "HTML"}) is None


def test_cut_closes_tags_and_keeps_entities_whole() -> None:
    html = '<blockquote><b>bold &amp; <a href="https://e.com/">link text</a></b> more</blockquote>'
    cut = truncate(html, 13)
    assert cut.html == '<blockquote><b>bold &amp; <a href="https://e.com/">link</a></b></blockquote>'
    assert api_call_error("sendMessage", {"text": cut.html, "parse_mode": "HTML"}) is None


def test_long_messages_fit_and_end_with_read_more() -> None:
    html = "<p>" + "Sentence with 😀 emoji &amp; more. " * 600 + "</p>"
    msg = render_entry(entry(content_html=html), "F")
    text = shown("sendMessage", msg.attempts[0].params)
    assert utf16_len(text) <= 4096 and text.endswith("more.\n\nRead more →")
    plain = msg.attempts[1].params["text"]
    assert utf16_len(plain) <= 4096 and plain.endswith(f"Read more → ({LINK})")


def test_huge_title_is_shortened() -> None:
    msg = render_entry(entry(title="word " * 3000), "F")
    text = shown("sendMessage", msg.attempts[0].params)
    assert utf16_len(text.split("\n")[0]) <= 300 and text.split("\n")[0].endswith("word…")


def test_a_reply_with_a_line_longer_than_a_message_is_split_into_valid_parts() -> None:
    """Issue 13: one 100 KB line (a feed's own title) used to go out whole and be refused."""
    from bot.render.cut import measure, split_reply
    from tests.fakes.telegram_rules import api_call_error

    huge = "<b>" + "Wörter &amp; 𝐁 " * 8000 + "</b>"
    reply = f"✅ Subscribed to {huge}\nhttps://example.org/feed.xml\nNew posts will arrive here."
    parts = split_reply(reply)
    assert len(parts) > 10
    for part in parts:
        assert measure(part) <= 4000
        assert api_call_error("sendMessage", {"text": part, "parse_mode": "HTML"}) is None
    joined = " ".join(parts)
    assert "https://example.org/feed.xml" in joined and "New posts will arrive here." in joined
    # short lines are kept together, markup intact
    assert split_reply("<b>a</b>\n<i>b</i>") == ["<b>a</b>\n<i>b</i>"]


# ------------------------------------------------------------------- real feeds (issue #14)


def test_a_narrow_plain_table_is_a_pre_grid() -> None:
    html = ("<p>Stock:</p><table><tr><th>Fruit</th><th>Qty</th></tr>"
            "<tr><td>apples</td><td>3</td></tr><tr><td>梨</td><td>12</td></tr></table>")
    assert body(html) == (
        "Stock:\n\n<pre>Fruit   Qty\n───────────\napples  3\n梨      12</pre>"
    )


def test_a_wide_or_linked_table_is_one_line_per_row() -> None:
    wide = "<table><tr><td>" + "word " * 12 + "</td><td>second cell</td></tr></table>"
    assert body(wide) == "word " * 11 + "word · second cell"
    linked = '<table><tr><td><a href="/a">A</a></td><td>b</td></tr></table>'
    assert body(linked) == '<a href="https://blog.example.org/a">A</a> · b'


def test_a_table_caption_heads_the_table() -> None:
    grid = "<table><caption>Stock</caption><tr><td>a</td><td>1</td></tr></table>"
    assert body(grid) == "<b>Stock</b>\n<pre>a  1</pre>"
    linked = '<table><caption>Links</caption><tr><td><a href="/a">A</a></td><td>b</td></tr></table>'
    assert body(linked) == '<b>Links</b>\n<a href="https://blog.example.org/a">A</a> · b'


def test_a_figure_caption_hidden_from_screen_readers_is_still_shown() -> None:
    """A blog's figure markup hides the caption from screen readers (the alt says the same);
    sighted readers see it, so the message keeps it."""
    html = ('<p><span class="figure"><img src="/x.png" alt="Seen on a news site.">'
            '<span class="figcaption" aria-hidden="true">Seen on a news site.<br></span></span>'
            ' More text.</p>')
    assert body(html) == "<i>Seen on a news site.</i>\nMore text."


def test_reddit_post_table_keeps_its_text() -> None:
    """Reddit wraps every post in a table: a thumbnail cell and a text cell."""
    html = (
        '<table> <tr><td> <a href="https://www.reddit.com/r/homelab/comments/1/x/"> <img '
        'src="https://b.thumbs.redditmedia.com/t.jpg" alt="x" /> </a> </td><td> <!-- SC_OFF -->'
        '<div class="md"><p>Decided to do some re-arranging.</p></div> <!-- SC_ON --> &#32; '
        'submitted by &#32; <a href="https://www.reddit.com/user/bob"> /u/bob </a> <br/> '
        '<span><a href="https://i.redd.it/a.jpg">[link]</a></span> &#32; <span>'
        '<a href="https://www.reddit.com/r/homelab/comments/1/x/">[comments]</a></span> '
        "</td></tr></table>"
    )
    assert body(html) == (
        "Decided to do some re-arranging.\n\nsubmitted by "
        '<a href="https://www.reddit.com/user/bob">/u/bob</a>\n'
        '<a href="https://i.redd.it/a.jpg">[link]</a> '
        '<a href="https://www.reddit.com/r/homelab/comments/1/x/">[comments]</a>'
    )


def test_a_table_of_code_keeps_both_versions() -> None:
    html = (
        "Try spotting the bug in the two versions of this code: <br /><table><tbody><tr>"
        "<td><em>Too much nesting</em></td><td><em>Less nesting</em></td></tr><tr>"
        "<td><pre>if ok:<br />  go()</pre></td><td><pre>if not ok:<br />  return</pre></td>"
        "</tr></tbody></table>Answer: swapped."
    )
    assert body(html) == (
        "Try spotting the bug in the two versions of this code:\n\n"
        "<i>Too much nesting</i> · <i>Less nesting</i>\n\n"
        "<pre>if ok:\n  go()</pre>\n\n<pre>if not ok:\n  return</pre>\n\nAnswer: swapped."
    )


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<iframe src="https://www.youtube.com/embed/dQw4w9WgXcQ?rel=0" title="Never gonna"'
         "></iframe>",
         '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ">▶ YouTube: Never gonna</a>'),
        ('<iframe src="//www.youtube-nocookie.com/embed/dQw4w9WgXcQ" title="YouTube video '
         'player"></iframe>',
         '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ">▶ YouTube: '
         "https://www.youtube.com/watch?v=dQw4w9WgXcQ</a>"),
        ('<iframe src="https://player.vimeo.com/video/1" title="A &amp; B"></iframe>',
         '<a href="https://player.vimeo.com/video/1">▶ vimeo.com: A &amp; B</a>'),
        ('<video controls poster="p.jpg"><source src="/media/a b.mp4" type="video/mp4">'
         "Your browser cannot play this.</video>",
         '<a href="https://blog.example.org/media/a%20b.mp4">▶ Video: '
         "https://blog.example.org/media/a%20b.mp4</a>"),
        ('<audio src="https://cdn.test/ep.mp3" title="Episode 1"></audio>',
         '<a href="https://cdn.test/ep.mp3">🎧 Audio: Episode 1</a>'),
        ('<object><param name="movie" value="http://www.youtube.com/v/dQw4w9WgXcQ"><embed '
         'src="http://www.youtube.com/v/dQw4w9WgXcQ"></object>',
         '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ">▶ YouTube: '
         "https://www.youtube.com/watch?v=dQw4w9WgXcQ</a>"),
        ('<iframe src="javascript:alert(1)">x</iframe><video>fallback</video>', ""),
    ],
)
def test_embedded_players_become_links(html: str, expected: str) -> None:
    assert body(html) == expected


def test_embed_links_speak_the_chats_language() -> None:
    html = '<iframe src="https://www.youtube.com/embed/dQw4w9WgXcQ" title="歌"></iframe>'
    assert html_to_telegram(html, LINK, lang="zh") == (
        '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ">▶ YouTube 视频：歌</a>'
    )
    entry = Entry(key="k", title="T", link=LINK, content_html=html)
    text = render_entry(entry, "F", RenderOptions(lang="zh")).attempts[0].params["text"]
    assert "▶ YouTube 视频：歌" in text


def test_blank_paragraphs_and_pasted_data_vanish() -> None:
    html = ("<p>one</p><p>&nbsp;</p><p>\u3000</p><p>&nbsp; &nbsp;</p><p>two "
            "data:image/png;base64," + "iVBORw0KGgo" * 200 + "= three</p>")
    assert body(html) == "one\n\ntwo three"


def test_spaces_in_links_are_percent_encoded() -> None:
    assert body('<a href=" https://e.test/a file.pdf ">doc</a>') == (
        '<a href="https://e.test/a%20file.pdf">doc</a>'
    )
    assert body('<a href="mailto:ann&#32;@e.test">ann</a>') == '<a href="mailto:ann@e.test">ann</a>'


def test_figure_captions_and_the_word_link_stay() -> None:
    html = ('<figure><img src="a.jpg"><figcaption>Left: old. Right: new.</figcaption></figure>'
            '<p>Content with <a href="https://e.test/">link</a>.</p>'
            f'<h2>Part<a href="{LINK}">link</a></h2>')
    assert body(html) == (
        '<i>Left: old. Right: new.</i>\n\nContent with <a href="https://e.test/">link</a>.'
        "\n\n<b>Part</b>"
    )
