"""Rows and models: each record table's columns are its model's fields (see schema.py), plus a
`version`. Seen-sets and item records are bytea, option and reason mappings jsonb (the codec is
set on every connection: `set_codecs`).

PostgreSQL's text and jsonb cannot hold the character NUL, which a feed may send (a JSON Feed's
title or item id): it is dropped on the way in (TinyDB would keep it; nothing shows it)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from bot.models import (
    Chat,
    Delivery,
    DigestItem,
    Feed,
    Prints,
    RenderedMessage,
    Subscription,
    SubscriptionOptions,
    pack_prints,
)
from bot.storage.postgres.schema import field_names

FEED_COLUMNS = tuple(field_names(Feed))
#: what a check that parsed nothing (a 304, the same body, a failure) may change: everything
#: but the feed's key and its two large values, the seen-set and the item records
FEED_STATE_COLUMNS = tuple(c for c in FEED_COLUMNS if c not in ("url", "seen", "item_records"))
CHAT_COLUMNS = tuple(field_names(Chat))
SUBSCRIPTION_COLUMNS = tuple(field_names(Subscription))
DELIVERY_COLUMNS = (
    "id", "chat_id", "seq", "feed_url", "entry_key", "message_digest", "created", "thread_id",
    "silent", "attempts", "reply_to_previous", "not_before",
)
DIGEST_COLUMNS = tuple(field_names(DigestItem))
_DEFAULT_OPTIONS = SubscriptionOptions().to_dict()


#: a JSON \u0000 escape: one whose backslash is not itself escaped (an even run before it)
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


async def set_codecs(conn: Any) -> None:
    """jsonb in and out as Python values, through orjson (run on each new connection)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="text", encoder=encode_json, decoder=orjson.loads
    )


def encode_json(value: Any) -> str:
    data = orjson.dumps(value)
    if b"\\u0000" in data:
        data = _JSON_NUL.sub(rb"\1", data)
    return data.decode()


def _without_nul(values: list[Any]) -> list[Any]:
    return [v.replace("\x00", "") if isinstance(v, str) and "\x00" in v else v for v in values]


# ---------------------------------------------------------------------- feeds
def feed_values(feed: Feed) -> list[Any]:
    row = feed.to_dict()
    row["seen"] = pack_prints(feed.seen)
    return _without_nul([row[name] for name in FEED_COLUMNS])


def feed_state_values(feed: Feed) -> list[Any]:
    row = feed.to_dict()
    return _without_nul([row[name] for name in FEED_STATE_COLUMNS])


def feed_from(row: Mapping[str, Any]) -> Feed:
    feed = Feed(**{name: row[name] for name in FEED_COLUMNS})
    feed.seen = Prints(row["seen"])
    return feed


# ---------------------------------------------------------------------- chats
def chat_values(chat: Chat) -> list[Any]:
    row = chat.to_dict()
    row["seen"] = pack_prints(chat.seen)
    return _without_nul([row[name] for name in CHAT_COLUMNS])


def chat_from(row: Mapping[str, Any]) -> Chat:
    chat = Chat(**{name: row[name] for name in CHAT_COLUMNS})
    chat.seen = Prints(row["seen"])
    return chat


# -------------------------------------------------------------- subscriptions
def subscription_values(sub: Subscription) -> list[Any]:
    row = sub.to_dict()
    # only the options not at their default: a new option's default reaches old records
    row["options"] = {k: v for k, v in row["options"].items() if _DEFAULT_OPTIONS.get(k) != v}
    return _without_nul([row[name] for name in SUBSCRIPTION_COLUMNS])


def subscription_from(row: Mapping[str, Any]) -> Subscription:
    return Subscription.from_dict({name: row[name] for name in SUBSCRIPTION_COLUMNS})


# ----------------------------------------------------------------- deliveries
def message_form(message: RenderedMessage) -> tuple[bytes, list[dict[str, Any]]]:
    """A rendered message as stored once for all its deliveries: (digest, jsonb value)."""
    stored = message.to_list()
    digest = hashlib.blake2b(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return digest.digest(), stored


def delivery_values(delivery: Delivery, digest: bytes) -> list[Any]:
    row = {"not_before": 0.0, **delivery.to_dict(), "message_digest": digest}
    return _without_nul([row[name] for name in DELIVERY_COLUMNS])


def delivery_from(row: Mapping[str, Any]) -> Delivery:
    return Delivery.from_dict(dict(row))


# ----------------------------------------------------------------- digests
def digest_values(item: DigestItem) -> list[Any]:
    row = item.to_dict()
    return _without_nul([row[name] for name in DIGEST_COLUMNS])


def digest_from(row: Mapping[str, Any]) -> DigestItem:
    return DigestItem.from_dict({name: row[name] for name in DIGEST_COLUMNS})
