"""Which entries are new, and the bounded memory of what was seen. Pure functions."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence, Set

from bot.feeds.identity import fingerprint
from bot.models import Entry, Prints, as_prints

SEEN_MIN = 200


def seen_cap(entries_in_feed: int) -> int:
    """Keep about max(2 x entries in the feed, 200) keys: a post that drops out and back in
    is still remembered, and the database does not grow forever."""
    return max(2 * entries_in_feed, SEEN_MIN)


def entry_prints(entry: Entry) -> list[str]:
    if entry.prints:
        return list(entry.prints)
    return [fingerprint(k) for k in (entry.key, *entry.alt_keys)]


def is_seen(entry: Entry, seen: Collection[str]) -> bool:
    return any(p in seen for p in entry_prints(entry))


def oldest_first(entries: list[Entry]) -> list[Entry]:
    """Feeds list newest first by convention; dates decide when every entry has one."""
    if entries and all(e.published for e in entries):
        indexed = list(enumerate(entries))
        indexed.sort(key=lambda pair: (pair[1].published, -pair[0]))
        return [e for _, e in indexed]
    return list(reversed(entries))


def new_entries(entries: list[Entry], seen: Collection[str]) -> list[Entry]:
    """Entries whose identity is not in `seen`, oldest first, each key once."""
    if not isinstance(seen, Set | Prints):  # a packed seen-set answers lookups unpacked
        seen = set(seen)
    taken: set[str] = set()
    fresh: list[Entry] = []
    for entry in oldest_first(entries):
        prints = entry_prints(entry)
        if any(p in seen or p in taken for p in prints):
            continue
        taken.update(prints)
        fresh.append(entry)
    return fresh


def document_prints(entries: Iterable[Entry]) -> list[str]:
    """Every print of `entries`, in their order: what a seen-set remembers of a document."""
    return [p for entry in entries for p in entry_prints(entry)]


def remember(seen: Sequence[str], entries: Iterable[Entry], cap: int) -> Prints:
    """`seen` (oldest first) plus the prints of `entries`, newest `cap` kept (packed)."""
    return as_prints(seen).with_newest(document_prints(entries), cap)
