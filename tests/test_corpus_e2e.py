"""Every hostile feed of feedparser's corpus, served over loopback HTTP with its own headers, goes
through /sub (the subscription service) and a real check (the poller): each ends as a clear
error or as messages Telegram would accept. Outcome counts are printed (pytest -s)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot.config import load
from bot.feeds.fetcher import Fetcher
from bot.models import Chat
from bot.pipeline.poller import Poller
from bot.runtime import fetch_settings
from bot.service import SubscriptionService
from bot.storage.tinydb.backend import TinyDBStorage
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "feedparser"
HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.MULTILINE)
ENCODINGS = {".gz": "gzip", ".z": "deflate"}
ORIGINAL_HOST = "http://localhost:8097"


@dataclass
class Outcome:
    path: str
    status: str  # "subscribed" | "failed" | other SubscribeOutcome statuses
    entries: int = 0
    messages: int = 0
    reason: str = ""


def corpus_files() -> list[str]:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        return []
    rows = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t", 1)[0] for row in rows if row.strip()]


def headers_of(rel: str, server: FeedServer) -> dict[str, str]:
    """The file's own `Header:` lines (what feedparser's test server sends), pointed at us."""
    data = (CORPUS / rel).read_bytes()
    headers = {
        m.group(1).decode("ascii").title(): m.group(2).decode("latin-1")
        for m in HEADER.finditer(data[:4096])
    }
    if "Location" in headers:
        headers["Location"] = headers["Location"].replace(ORIGINAL_HOST, server.base_url)
    encoding = ENCODINGS.get(Path(rel).suffix)
    if encoding:
        headers["Content-Encoding"] = encoding
        headers.setdefault("Content-Type", "application/xml")
    return headers


def serve(server: FeedServer, rel: str) -> str:
    path = "/corpus/" + rel
    headers = headers_of(rel, server)
    status = headers.pop("Status", "")
    if status.isdigit():
        server.set_response(path, int(status), (CORPUS / rel).read_bytes(), headers)
    else:
        server.serve_file(path, CORPUS / rel, headers)
    return server.url(path)


def reason_kind(reason: str) -> str:
    """A short bucket for an error text: its words before any detail."""
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip()
    return re.sub(r"\d{3,}", "N", head)[:48] or "?"


@pytest.fixture
async def service_and_poller(
    tmp_path: Path,
) -> AsyncIterator[tuple[SubscriptionService, Poller, TinyDBStorage]]:
    settings = replace(load(environ={}), allow_private=True, fetch_timeout=5.0)
    store = await TinyDBStorage.open(tmp_path / "db.json", lazy_flush_s=3600)
    fetcher = Fetcher(fetch_settings(settings))
    try:
        yield SubscriptionService(store, fetcher, settings), Poller(store, fetcher, settings), store
    finally:
        await fetcher.aclose()
        await store.close()


async def run_one(
    rel: str, chat_id: int, server: FeedServer, service: SubscriptionService,
    poller: Poller, store: TinyDBStorage,
) -> Outcome:
    url = serve(server, rel)
    outcome = await service.subscribe(Chat(id=chat_id), url)
    if outcome.status != "added":
        assert outcome.status in ("failed", "choose"), (rel, outcome)
        reason = outcome.reason.text("en") if outcome.reason else ""
        assert outcome.status == "choose" or reason.strip(), rel
        return Outcome(rel, outcome.status, reason=reason)
    probe = await service.probe(outcome.url, discover=False)
    assert probe.feed is not None, (rel, probe.error)
    entries = len(probe.feed.entries)

    # make everything new again so the check renders and queues the feed's posts
    stored, chat = await store.get_feed(outcome.url), await store.get_chat(chat_id)
    assert stored is not None and chat is not None
    stored.seen, stored.etag, stored.last_modified, chat.seen = [], None, None, []
    await store.save_feed(stored)
    await store.save_chat(chat)
    await poller.check(outcome.url)
    messages = [d for d in await store.pending() if d.chat_id == chat_id]
    for delivery in messages:
        for call in delivery.message.attempts:
            assert api_call_error(call.method, call.params) is None, (rel, call.params)
    return Outcome(rel, "subscribed", entries=entries, messages=len(messages))


async def test_every_corpus_feed_subscribes_or_fails_clearly(
    feed_server: FeedServer,
    service_and_poller: tuple[SubscriptionService, Poller, TinyDBStorage],
) -> None:
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus/feedparser is not present")
    service, poller, store = service_and_poller
    feed_server.set_feed("/tests/http/target.xml", hugo_feed(range(1, 3), title="Target"))
    feed_server.set_response("/-/return-304.xml", 304)
    gate = asyncio.Semaphore(8)

    async def guarded(n: int, rel: str) -> Outcome:
        async with gate:
            return await asyncio.wait_for(
                run_one(rel, n, feed_server, service, poller, store), timeout=20
            )

    outcomes = await asyncio.gather(*(guarded(n, rel) for n, rel in enumerate(files, 1)))

    ok = [o for o in outcomes if o.status == "subscribed"]
    failed = Counter(reason_kind(o.reason) for o in outcomes if o.status == "failed")
    print(f"\ncorpus: {len(outcomes)} files, {len(ok)} subscribed "
          f"({sum(o.entries for o in ok)} entries, {sum(o.messages for o in ok)} messages)")
    print("  subscribed by entry count:", dict(sorted(Counter(o.entries for o in ok).items())))
    for kind, count in failed.most_common():
        print(f"  failed {count:3d}: {kind}")
    assert len(outcomes) == len(files)
    assert len(ok) > len(files) // 2  # most of the corpus is usable
    # the http/ scenarios behave as HTTP says
    by_path = {o.path: o for o in outcomes}
    assert by_path["http/http_status_404.xml"].status == "failed"
    assert "404" in by_path["http/http_status_404.xml"].reason
    assert by_path["http/http_status_301.xml"].status == "subscribed"
    assert by_path["compression/gzip.gz"].status == "subscribed"
    assert by_path["compression/gzip-struct-error.gz"].status == "failed"
