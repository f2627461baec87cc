"""The cyclic garbage collector, set for a long-running bot.

By default CPython runs a young collection every 700 new container objects and, every hundred
of those, a full one that walks every object alive. A running bot's heap is mostly the store's
records, read once at start-up and never part of a reference cycle, and a 304 check allocates a
few hundred short-lived objects: with the defaults the collector took about a fifth of a check's
CPU at 2,000 feeds (bench.check_cost), and a full collection's walk grows with the feeds.

So once the store is read its objects are frozen (`gc.freeze`: out of the collector's sight;
reference counting still frees them), and young collections run every 50,000 new objects (what
little cyclic garbage waits longer is a few MiB at most)."""

from __future__ import annotations

import gc

#: (young, middle, old): collect the young every 50,000 new containers, the rest as by default
THRESHOLDS = (50_000, 10, 10)


_defaults: tuple[int, int, int] | None = None


def settle() -> None:
    """Freeze what is alive now and space the collections out: call once start-up is done."""
    global _defaults
    if _defaults is None:
        _defaults = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def unsettle() -> None:
    """Back to the collector's defaults (at stop: a process that runs the bot again, as the
    tests do, must not keep every earlier run frozen)."""
    global _defaults
    gc.unfreeze()
    if _defaults is not None:
        gc.set_threshold(*_defaults)
        _defaults = None
