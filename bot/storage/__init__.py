"""Persistence. `base` is the protocol the bot talks to; `tinydb` is today's backend (the only
code that imports TinyDB). `open_storage` picks the backend."""

from __future__ import annotations

from pathlib import Path

from bot.storage.base import Storage
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.files import check_database


async def open_storage(path: str | Path, *, lazy_flush_s: float = 30.0) -> Storage:
    return await TinyDBStorage.open(path, lazy_flush_s=lazy_flush_s)


__all__ = ["Storage", "TinyDBStorage", "check_database", "open_storage"]
