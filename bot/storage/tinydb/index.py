"""The in-memory indexes of the subscriptions table."""

from __future__ import annotations

from typing import Any


class SubscriptionIndex:
    """(chat id, feed URL) -> document id, also findable by feed and by chat in O(1).

    A poll cycle asks for each feed's subscriptions; scanning every subscription each time made
    a cycle O(N²) in the number of feeds."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, str], str] = {}
        # most feeds have one subscriber, most chats a few feeds: a lone member is kept as
        # itself, not as a one-item dict (about 45 MB at 100k feeds)
        self._by_feed: dict[str, int | dict[int, None]] = {}
        self._by_chat: dict[int, str | dict[str, None]] = {}

    def get(self, key: tuple[int, str]) -> str | None:
        return self._ids.get(key)

    def __contains__(self, key: tuple[int, str]) -> bool:
        return key in self._ids

    def __setitem__(self, key: tuple[int, str], doc_id: str) -> None:
        chat_id, url = key
        self._ids[key] = doc_id
        _add(self._by_feed, url, chat_id)
        _add(self._by_chat, chat_id, url)

    def pop(self, key: tuple[int, str]) -> str | None:
        doc_id = self._ids.pop(key, None)
        if doc_id is not None:
            chat_id, url = key
            _discard(self._by_feed, url, chat_id)
            _discard(self._by_chat, chat_id, url)
        return doc_id

    def chats_of(self, url: str) -> list[int]:
        return _members(self._by_feed.get(url))

    def feeds_of(self, chat_id: int) -> list[str]:
        return _members(self._by_chat.get(chat_id))

    def items(self) -> list[tuple[tuple[int, str], str]]:
        return list(self._ids.items())


def _add(index: dict[Any, Any], key: Any, member: Any) -> None:
    members = index.get(key, _NONE)
    if members is _NONE or members == member:
        index[key] = member
    elif isinstance(members, dict):
        members[member] = None
    else:
        index[key] = {members: None, member: None}


def _members(members: Any) -> list[Any]:
    if members is None:
        return []
    return list(members) if isinstance(members, dict) else [members]


def _discard(index: dict[Any, Any], key: Any, member: Any) -> None:
    members = index.get(key, _NONE)
    if members is _NONE:
        return
    if isinstance(members, dict):
        members.pop(member, None)
        if len(members) == 1:
            index[key] = next(iter(members))
        elif not members:
            del index[key]
    elif members == member:
        del index[key]


_NONE = object()

