"""Every storage backend against the contract in tests/storage_contract.py.

A backend is one line in BACKENDS: its name and how to open it at a test's place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.storage.base import Storage
from bot.storage.tinydb.backend import TinyDBStorage
from tests.storage_contract import CASES, Case, Opener


def tinydb(place: Path) -> Opener:
    async def open_storage() -> Storage:
        return await TinyDBStorage.open(place / "db.json")

    return open_storage


BACKENDS: dict[str, Callable[[Path], Opener]] = {
    "tinydb": tinydb,
}


@pytest.fixture(params=sorted(BACKENDS))
def open_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return BACKENDS[request.param](tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
async def test_contract(case: Case, open_storage: Opener) -> None:
    await case(open_storage)
