"""Every storage backend against the contract in tests/storage_contract.py.

A backend is one line in BACKENDS: its name and how to open it at a test's place (a context
manager giving the Opener, and cleaning up after). The PostgreSQL half needs a server:
FEEDBOT_TEST_DATABASE_URL names a database the tests may create schemas in (.ci/run starts a
throwaway one); each test gets a fresh schema, dropped after it. Without it those cases skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

from bot.storage.base import Storage
from bot.storage.tinydb.backend import TinyDBStorage
from tests.storage_contract import CASES, Case, Opener

TEST_DATABASE_URL = "FEEDBOT_TEST_DATABASE_URL"
NO_SERVER = (
    f"PostgreSQL backend not tested: {TEST_DATABASE_URL} is not set (a database the tests may "
    "create schemas in, e.g. postgresql://postgres@127.0.0.1:5432/postgres; .ci/run starts one)"
)


@asynccontextmanager
async def tinydb(place: Path) -> AsyncIterator[Opener]:
    async def open_storage() -> Storage:
        return await TinyDBStorage.open(place / "db.json")

    yield open_storage


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A database URL whose tables live in a fresh schema of their own (dropped after)."""
    url = os.environ.get(TEST_DATABASE_URL, "")
    if not url:
        pytest.skip(NO_SERVER)
    import asyncpg

    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(url, schema)
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


def with_search_path(url: str, schema: str) -> str:
    """The URL with its tables in `schema` (asyncpg sends unknown parameters as settings)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"search_path": schema})) if q)
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def postgres(place: Path) -> AsyncIterator[Opener]:
    async with postgres_schema() as url:
        from bot.storage.postgres import PostgresStorage

        async def open_storage() -> Storage:  # a reopen: a new storage on the same database
            return await PostgresStorage.open(url, connect_wait_s=5.0)

        yield open_storage


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Opener]]] = {
    "tinydb": tinydb,
    "postgres": postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
async def open_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    async with BACKENDS[request.param](tmp_path) as opener:
        yield opener


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
async def test_contract(case: Case, open_storage: Opener) -> None:
    await case(open_storage)
