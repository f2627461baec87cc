"""Persistence. `base` is the protocol the bot talks to; `tinydb` is the embedded default (the
only code that imports TinyDB), `postgres` the shared one (the only code that imports its
driver, and imported only when a database URL is given). `open_storage` picks the backend."""

from __future__ import annotations

from pathlib import Path

from bot.storage.base import Storage
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.files import check_database


async def open_storage(
    path: str | Path, *, lazy_flush_s: float = 30.0, database_url: str = ""
) -> Storage:
    """PostgreSQL at `database_url` when one is given (`path` is then not touched; a server
    that cannot be reached is waited for, then StorageUnavailable: never a TinyDB fallback),
    else the TinyDB file at `path`."""
    if database_url:
        from bot.storage.postgres import PostgresStorage

        return await PostgresStorage.open(database_url)
    return await TinyDBStorage.open(path, lazy_flush_s=lazy_flush_s)


__all__ = ["Storage", "TinyDBStorage", "check_database", "open_storage"]
