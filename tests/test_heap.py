"""bot.heap: the collector set for a long-running bot, and back to its defaults at stop."""

from __future__ import annotations

import gc

from bot import heap


def test_settle_freezes_what_is_alive_and_spaces_collections_then_unsettle_restores() -> None:
    defaults = gc.get_threshold()
    kept = [[i] for i in range(1000)]  # alive at start-up: the store's records
    heap.settle()
    try:
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == heap.THRESHOLDS
        heap.settle()  # a second start in one process keeps the first defaults
    finally:
        heap.unsettle()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == defaults


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    class Record:
        freed = 0

        def __del__(self) -> None:
            Record.freed += 1

    record = Record()
    heap.settle()
    try:
        del record
        assert Record.freed == 1
    finally:
        heap.unsettle()
