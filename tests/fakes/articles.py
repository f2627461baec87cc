"""Fake article pages for full text (`/set N fulltext on`), served by FeedServer on loopback.

Each page is shaped like a real blog post's page: a site header with navigation, a sidebar of
other posts, the article (a repeated title heading, paragraphs, a picture, a subheading, a list,
a quote, code), a comment section and a footer. Only the article should come out of it. Every
paragraph carries a marker (`Article.marker(i)`) that the feed's summary never has, so a test can
tell the full text from the summary:

    server = FeedServer().start()
    urls = serve_articles(server)                       # {slug: page URL}
    server.set_feed("/summary.xml", summary_feed(server, ["first"]))
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from tests.fakes.feeds import BASE_DATE, item, rss
from tests.fakes.feedserver import FeedServer

HTML_TYPE = "text/html; charset=utf-8"
PREFIX = "/posts/"


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    summary: str  # what the feed says about it: one sentence
    paragraphs: int = 4  # how many paragraphs the page has (more: a long read)

    def marker(self, i: int) -> str:
        return f"only-on-the-page {self.slug} {i}"

    def paragraph(self, i: int) -> str:
        return (
            f"Paragraph {i} of {self.title}, {self.marker(i)}: the whole argument goes on "
            "here in sentences long enough to read as the article's own text, with a detail "
            "or two that a summary would leave out, and a conclusion that follows from them."
        )


ARTICLES: dict[str, Article] = {
    a.slug: a
    for a in (
        Article("first", "The first article", "A short summary of the first article."),
        Article("second", "The second article", "A short summary of the second article."),
        Article("chinese", "中文文章", "第一篇中文文章的摘要。"),
        Article("longread", "A very long read", "A summary of the long read.", paragraphs=30),
    )
}

_CHROME_TOP = """<header class="site-header"><a class="logo" href="/">Example Blog</a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/archive/">Archive</a></li>
<li><a href="/about/">About</a></li><li><a href="/subscribe/">Subscribe</a></li></ul></nav>
</header>
<aside class="sidebar"><h3>Popular posts</h3><ul>
<li><a href="/posts/other-1/">Sidebar post about something else entirely</a></li>
<li><a href="/posts/other-2/">Another sidebar post nobody asked for</a></li></ul>
<div class="newsletter">SIDEBAR-NEWSLETTER: sign up for our weekly newsletter!</div></aside>"""

_CHROME_BOTTOM = """<section id="comments"><h3>3 comments</h3>
<div class="comment"><p>COMMENT-TEXT: great post, thanks for writing it.</p></div></section>
<footer class="site-footer"><p>FOOTER-TEXT © 2026 Example Blog. All rights reserved.</p>
<p><a href="/privacy/">Privacy</a> · <a href="/imprint/">Imprint</a></p></footer>"""


def article_page(article: Article) -> str:
    """The page of `article`, with everything around the article a blog puts there."""
    title = html.escape(article.title)
    numbers = range(1, article.paragraphs + 1)
    paragraphs = [f"<p>{html.escape(article.paragraph(i))}</p>" for i in numbers]
    middle = len(paragraphs) // 2
    body = (
        f"<h1>{title}</h1>"
        f'<p class="meta">By Jane Writer · 8 Feb 2026</p>'
        + "".join(paragraphs[:middle])
        + f'<figure><img src="/img/{article.slug}.jpg" width="800" height="450" alt="A picture">'
        f"<figcaption>The picture of {title}</figcaption></figure>"
        + "<h2>What follows</h2>"
        + "".join(paragraphs[middle:])
        + "<ul><li>a first point</li><li>a second point</li></ul>"
        + "<blockquote><p>A quoted line that matters.</p></blockquote>"
        + "<pre><code>print(&quot;hello&quot;)</code></pre>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} | Example Blog</title>"
        f'<meta name="description" content="{html.escape(article.summary)}"></head><body>'
        f"{_CHROME_TOP}<main><article class=\"post\">{body}</article></main>{_CHROME_BOTTOM}"
        "</body></html>"
    )


def serve_articles(
    server: FeedServer, articles: Iterable[Article] = ARTICLES.values()
) -> dict[str, str]:
    """Serve each article's page at /posts/<slug>/ (and its picture); {slug: page URL}."""
    urls: dict[str, str] = {}
    for article in articles:
        path = f"{PREFIX}{article.slug}/"
        server.set_response(path, 200, article_page(article), {"Content-Type": HTML_TYPE})
        picture = {"Content-Type": "image/jpeg"}
        server.set_response(f"/img/{article.slug}.jpg", 200, b"\xff\xd8\xff", picture)
        urls[article.slug] = server.url(path)
    return urls


def summary_item(server: FeedServer, article: Article, n: int = 0) -> str:
    """A feed item for `article` that carries only its summary, linking to its page."""
    link = server.url(f"{PREFIX}{article.slug}/")
    return item(
        link, article.title, link, BASE_DATE + timedelta(days=n),
        f"<p>{html.escape(article.summary)}</p>",
    )


def summary_feed(server: FeedServer, slugs: Iterable[str], title: str = "Summaries") -> str:
    """An RSS feed of summary-only items, one per slug (the last one newest)."""
    items = [summary_item(server, ARTICLES[s], n) for n, s in enumerate(slugs)]
    return rss(title, server.url("/"), list(reversed(items)))
