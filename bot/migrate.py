"""`feedbot migrate`: copy a TinyDB database into PostgreSQL, everything as it is.

The source is opened as the bot opens it (its lock refuses a running bot on the same file); the
target is refused when it holds anything, unless `--force` (then what it holds is replaced).
The copy is one transaction in PostgreSQL: it is there whole or not at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.errors import FeedbotError
from bot.storage.base import StoredState
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.files import UnusableDatabase, load_snapshot
from bot.storage.tinydb.lock import holder_of, in_use_message


def add_migrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate", help="copy a TinyDB database into PostgreSQL (no token needed)"
    )
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="the PostgreSQL database: postgresql://user:password@host/db")
    migrate.add_argument("--from", dest="source", metavar="PATH",
                         help="the TinyDB file (default: FEEDBOT_DB)")
    migrate.add_argument("--force", action="store_true",
                         help="replace what the target database holds")
    migrate.add_argument("--config", help="TOML settings file (or FEEDBOT_CONFIG)")


async def migrate(source: Path, url: str, *, force: bool = False) -> int:
    """Exit status: 0 copied, 1 a database cannot be used, 2 refused (one line on stderr)."""
    refusal = _source_problem(source)
    if refusal is not None:
        return _fail(refusal, 2)
    from bot.storage.postgres.backend import PostgresStorage, describe_url

    try:
        tinydb = await TinyDBStorage.open(source)
    except FeedbotError as exc:  # a bot took it meanwhile
        return _fail(str(exc), 2)
    try:
        state = await tinydb.export_all()
    finally:
        await tinydb.close()
    try:
        target = await PostgresStorage.open(url)
    except FeedbotError as exc:
        return _fail(str(exc), 1)
    try:
        if not force and not (await target.export_all()).empty:
            return _fail(f"PostgreSQL at {describe_url(url)} is not empty: point --to at an "
                         "empty database, or run with --force to replace what it holds", 2)
        await target.import_all(state)
        copied = await target.export_all()
    finally:
        await target.close()
    print(f"feedbot: copied {_counts(state)} from {source} to PostgreSQL at "
          f"{describe_url(url)}")
    return 0 if _counts(copied) == _counts(state) else _fail("the copy is incomplete", 1)


def _source_problem(source: Path) -> str | None:
    if not source.is_file():
        return f"{source}: no such database file (give it with --from, or set FEEDBOT_DB)"
    holder = holder_of(source)
    if holder is not None:
        return in_use_message(source, holder)
    try:
        load_snapshot(source)
    except UnusableDatabase as exc:
        return str(exc)
    return None


def _counts(state: StoredState) -> str:
    return (f"{len(state.chats)} chats, {len(state.feeds)} feeds, "
            f"{len(state.subscriptions)} subscriptions, {len(state.deliveries)} pending deliveries")


def _fail(line: str, status: int) -> int:
    print(f"feedbot: {line}", file=sys.stderr)
    return status
