"""Builders for Hugo-like RSS 2.0 and Atom documents (shaped like /work/shared/seeds/*.xml).

Item bodies are HTML escaped into <description> (as Hugo does, not CDATA) and use what real
posts use: <figure><img>, <h2> with a permalink <a href="#x">#</a>, <ul>, <blockquote>, <code>,
LaTeX in <span class="math-inline">, and named entities (&rsquo; &ldquo; &mdash;).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from bot.models import Enclosure

BLOG = "https://blog.example.org/en"
BASE_DATE = datetime(2026, 2, 8, 9, 0, tzinfo=UTC)


def _rfc822(when: datetime | str) -> str:
    return when if isinstance(when, str) else email.utils.format_datetime(when)


def _iso(when: datetime | str) -> str:
    return when if isinstance(when, str) else when.isoformat()


def item(
    guid: str,
    title: str,
    link: str,
    pub_date: datetime | str,
    html: str,
    categories: Iterable[str] = (),
    enclosure: Enclosure | None = None,
    author: str = "",
) -> str:
    parts = [
        f"<title>{escape(title)}</title>",
        f"<link>{escape(link)}</link>",
        f"<pubDate>{_rfc822(pub_date)}</pubDate>",
        f"<guid>{escape(guid)}</guid>",
        *([f"<author>{escape(author)}</author>"] if author else []),
        *(f"<category>{escape(c)}</category>" for c in categories),
        f"<description>{escape(html)}</description>",
    ]
    if enclosure is not None:
        parts.append(
            f"<enclosure url={quoteattr(enclosure.url)} length=\"{enclosure.length or 0}\" "
            f"type={quoteattr(enclosure.type)}/>"
        )
    return "<item>" + "".join(parts) + "</item>"


def rss(
    title: str,
    link: str,
    items: Iterable[str],
    *,
    self_url: str | None = None,
    ttl: int | None = None,
    description: str = "",
) -> str:
    head = [
        f"<title>{escape(title)}</title>",
        f"<link>{escape(link)}</link>",
        f"<description>{escape(description or 'Recent content in ' + title)}</description>",
        "<generator>Hugo</generator><language>en</language>",
        f"<lastBuildDate>{_rfc822(BASE_DATE)}</lastBuildDate>",
    ]
    if self_url:
        head.append(
            f'<atom:link href={quoteattr(self_url)} rel="self" type="application/rss+xml"/>'
        )
    if ttl is not None:
        head.append(f"<ttl>{ttl}</ttl>")
    return (
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        + "".join(head)
        + "".join(items)
        + "</channel></rss>"
    )


def atom_entry(
    entry_id: str,
    title: str,
    link: str,
    updated: datetime | str,
    html: str,
    categories: Iterable[str] = (),
) -> str:
    cats = "".join(f"<category term={quoteattr(c)}/>" for c in categories)
    return (
        f"<entry><id>{escape(entry_id)}</id><title>{escape(title)}</title>"
        f'<link rel="alternate" href={quoteattr(link)}/>'
        f"<updated>{_iso(updated)}</updated><published>{_iso(updated)}</published>{cats}"
        f'<content type="html">{escape(html)}</content></entry>'
    )


def atom(title: str, link: str, entries: Iterable[str], *, feed_id: str | None = None) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{escape(feed_id or link)}</id><title>{escape(title)}</title>"
        f'<link rel="alternate" href={quoteattr(link)}/>'
        f"<updated>{_iso(BASE_DATE)}</updated>" + "".join(entries) + "</feed>"
    )


def hugo_html(n: int) -> str:
    """A deterministic Hugo-style post body for post number n."""
    img = f"https://img.example.org/posts/{n:02d}/illustration_1.png"
    return (
        f'<p><figure class="article-figure">\n <img src="{img}" alt="Post {n} &mdash; overview"'
        ' loading="lazy" decoding="async" class="content-image">\n \n</figure>\n</p>\n<hr>\n'
        f'<h2 id="part-{n}" class="heading-anchor">What You Will Learn'
        f'<a href="#part-{n}" class="heading-link" aria-label="Permalink">#</a>\n</h2>'
        f"<p>Part {n} of the series. It&rsquo;s about &ldquo;learning&rdquo; &mdash; "
        f'the bound <span class="math-inline">$\\alpha \\le \\beta_{n}$</span>\n'
        f" holds, and so does <code>x &lt; y &amp;&amp; y &gt; z</code>.</p>\n"
        "<ul>\n<li><strong>Why?</strong> regularisation</li>\n"
        "<li><em>How?</em> theory</li>\n</ul>\n"
        f"<blockquote>\n<p><strong>Hook.</strong> Quote number {n}.</p>\n</blockquote>\n"
        f'<p>See <a href="{BLOG}/series/{n + 1:02d}-topic/">Part {n + 1}</a>.</p>'
    )


def hugo_item(n: int, guid: str | None = None) -> str:
    """A realistic RSS <item> for post number n (newer posts have larger n)."""
    link = f"{BLOG}/series/{n:02d}-topic/"
    return item(
        guid=guid or link,
        title=f"ML Math Derivations ({n}): Topic {n} \u2014 Overview",
        link=link,
        pub_date=BASE_DATE - timedelta(days=1000 - n),
        html=hugo_html(n),
    )


def hugo_feed(ns: Iterable[int], title: str = "Machine Learning on Test Blog") -> str:
    """An RSS feed of hugo_item(n) for each n, newest first like Hugo."""
    return rss(
        title,
        f"{BLOG}/tags/machine-learning/",
        [hugo_item(n) for n in sorted(ns, reverse=True)],
        self_url=f"{BLOG}/tags/machine-learning/index.xml",
    )
