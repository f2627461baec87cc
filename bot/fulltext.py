"""Full text for summary-only feeds (`/set N fulltext on`): a new post's web page, fetched through
the bot's one guarded fetcher (bot.feeds.fetcher: the SSRF guard, FEEDBOT_MAX_FEED_BYTES,
FEEDBOT_FETCH_TIMEOUT, redirects and per-host politeness all apply) and its article extracted
in a thread (bot.feeds.article), once per post for every chat.

The cache is in memory and bounded: the articles of the last `CACHE_SIZE` posts, at most
`CACHE_BYTES` of them (least recently used out), by the post's identity and link. A post going
to many chats, or through two feeds, is fetched once, and two checks wanting one page at the
same time share one fetch; a check decided again, retried after a crash, or a /resume catch-up
fetches nothing the cache holds. A page that failed is remembered for `FAILURE_REST_S` only, so
a later try may succeed. A restart empties the cache, which costs little: a post is new once,
and by then it has been sent.

A page that fails (fetch, type, extraction, or an article no longer than the feed's own text)
is logged at INFO and the post goes out with the feed's summary: never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.errors import FeedbotError
from bot.feeds.article import extract_article, full_text_entry
from bot.feeds.fetcher import Fetcher
from bot.models import Entry

log = logging.getLogger(__name__)

#: posts whose article (or failure) is remembered, and the most text that may hold (UTF-8
#: bytes of the articles' HTML): enough for the posts of the checks of the last hours, which is
#: where a post comes again (another feed carrying it, a check retried, a /resume catch-up)
CACHE_SIZE = 256
CACHE_BYTES = 8 * 1024 * 1024
#: a failed page is tried again after this long (seconds), not sooner
FAILURE_REST_S = 600.0
#: pages fetched at the same time (the fetcher's per-host limit applies as well)
CONCURRENCY = 4


@dataclass(frozen=True)
class _Known:
    article: str | None  # None: the page failed
    at: float

    @property
    def size(self) -> int:
        return len(self.article.encode()) if self.article else 0


class ArticleSource:
    """The articles of posts' pages, fetched once each (see the module's docstring)."""

    def __init__(self, fetcher: Fetcher, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetcher = fetcher
        self.clock = clock
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._bytes = 0  # held by `_known`'s articles
        self._pending: dict[str, asyncio.Task[str | None]] = {}
        self._slots = asyncio.Semaphore(CONCURRENCY)
        #: pages fetched since start (tests, logs)
        self.fetched = 0

    async def full_texts(self, entries: Iterable[Entry]) -> dict[str, Entry]:
        """Each post (by entry key) with its page's article as its body; a post whose page
        failed, or whose article says no more than the feed, is left out (it keeps the feed's
        body)."""
        unique = list({e.key: e for e in entries if e.key}.values())
        articles = await asyncio.gather(*(self.article(e) for e in unique))
        found: dict[str, Entry] = {}
        for entry, article in zip(unique, articles, strict=True):
            if article is None:
                continue
            try:
                full = await asyncio.to_thread(full_text_entry, entry, article)
            except Exception as exc:  # a bug here must not stop the check: the summary goes
                log.warning("full text of %s not used (%s: %s); the feed's text is sent",
                            entry.link, type(exc).__name__, exc, exc_info=True)
                continue
            if full is None:
                log.info("full text of %s: the page says no more than the feed; the feed's "
                         "text is sent", entry.link)
                continue
            found[entry.key] = full
        return found

    async def article(self, entry: Entry) -> str | None:
        """The article of the post's page (from the cache, or fetched now), None when it
        failed (logged)."""
        key = f"{entry.key}\0{entry.link}"
        known = self._known.get(key)
        if known is not None and (
            known.article is not None or self.clock() - known.at < FAILURE_REST_S
        ):
            self._known.move_to_end(key)
            return known.article
        task = self._pending.get(key)
        if task is None:  # else another check is fetching it now: wait for that fetch
            task = asyncio.create_task(self._fetch_and_keep(key, entry), name=f"page {key}")
            self._pending[key] = task
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        # shielded: a check cancelled meanwhile leaves the fetch to the others waiting for it
        return await asyncio.shield(task)

    async def _fetch_and_keep(self, key: str, entry: Entry) -> str | None:
        article = await self._fetch(entry)
        self._keep(key, _Known(article, self.clock()))
        return article

    def _keep(self, key: str, known: _Known) -> None:
        old = self._known.pop(key, None)
        self._bytes -= old.size if old is not None else 0
        self._known[key] = known
        self._bytes += known.size
        while len(self._known) > CACHE_SIZE or (self._bytes > CACHE_BYTES and self._known):
            _, dropped = self._known.popitem(last=False)
            self._bytes -= dropped.size

    async def aclose(self) -> None:
        """Stop the fetches under way (the bot is stopping)."""
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def _fetch(self, entry: Entry) -> str | None:
        link = entry.link.strip()
        if not link.lower().startswith(("http://", "https://")):
            log.info("full text of %r: the post has no web page; the feed's text is sent",
                     entry.title or entry.key)
            return None
        async with self._slots:
            try:
                self.fetched += 1
                result = await self.fetcher.fetch_page(link)
                article = await asyncio.to_thread(
                    extract_article, result.body, result.url, result.content_type
                )
            except FeedbotError as exc:
                log.info("full text of %s not fetched (%s); the feed's text is sent", link, exc)
                return None
            except Exception as exc:  # an extractor's bug must not cost the post
                log.info("full text of %s not extracted (%s: %s); the feed's text is sent",
                         link, type(exc).__name__, exc, exc_info=True)
                return None
        if article is None:
            log.info("full text of %s: no article found in the page (%s); the feed's text is "
                     "sent", link, result.content_type or "no content type")
        return article
