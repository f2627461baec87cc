"""The in-memory indexes of the subscriptions table."""

from __future__ import annotations

from typing import Any


class SubscriptionIndex:
    """(chat id, feed URL) -> document id, also findable by feed and by chat in O(1).

    A poll cycle asks for each feed's subscriptions; scanning every subscription each time made
    a cycle O(N²) in the number of feeds."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, str], str] = {}
        self._by_feed: dict[str, dict[int, None]] = {}
        self._by_chat: dict[int, dict[str, None]] = {}

    def get(self, key: tuple[int, str]) -> str | None:
        return self._ids.get(key)

    def __contains__(self, key: tuple[int, str]) -> bool:
        return key in self._ids

    def __setitem__(self, key: tuple[int, str], doc_id: str) -> None:
        chat_id, url = key
        self._ids[key] = doc_id
        self._by_feed.setdefault(url, {})[chat_id] = None
        self._by_chat.setdefault(chat_id, {})[url] = None

    def pop(self, key: tuple[int, str]) -> str | None:
        doc_id = self._ids.pop(key, None)
        if doc_id is not None:
            chat_id, url = key
            _discard(self._by_feed, url, chat_id)
            _discard(self._by_chat, chat_id, url)
        return doc_id

    def chats_of(self, url: str) -> list[int]:
        return list(self._by_feed.get(url, ()))

    def feeds_of(self, chat_id: int) -> list[str]:
        return list(self._by_chat.get(chat_id, ()))

    def items(self) -> list[tuple[tuple[int, str], str]]:
        return list(self._ids.items())


def _discard(index: dict[Any, dict[Any, None]], key: Any, member: Any) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(member, None)
        if not members:
            del index[key]

