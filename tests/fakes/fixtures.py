"""Pytest fixtures for the fakes. In a conftest.py or test module:

    from tests.fakes.fixtures import fake_api, feed_server, make_fake_api, telegraph  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.botapi import FakeBotApi
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegraph import FakeTelegraph


@pytest.fixture
def make_fake_api() -> Iterator[Callable[..., FakeBotApi]]:
    """Factory: make_fake_api(enforce_limits=True, ...) -> a started FakeBotApi (stopped later)."""
    started: list[FakeBotApi] = []

    def make(**kwargs: Any) -> FakeBotApi:
        api = FakeBotApi(**kwargs).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


@pytest.fixture
def fake_api(make_fake_api: Callable[..., FakeBotApi]) -> FakeBotApi:
    return make_fake_api()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
def telegraph() -> Iterator[FakeTelegraph]:
    """The loopback fake of Telegraph; the bot uses it when FEEDBOT_TELEGRAPH_URL names it."""
    server = FakeTelegraph().start()
    yield server
    server.stop()
