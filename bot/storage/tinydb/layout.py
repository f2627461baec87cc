"""The file's layout: table names and how documents are encoded (shared by the engine's parts)."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson

from bot.models import pack_prints

TABLES = ("feeds", "subscriptions", "chats", "outbox", "meta", "messages", "digests")
#: table holding the number of the first log a snapshot does not contain
LOG_TABLE = "log"
#: a field that is not there (None is a value)
MISSING = object()


#: fields held as bytes in memory and as base64 text in the file: seen-sets (8 bytes per print)
#: and item records; a seen-set from before (a list of hex prints) is packed when read
BINARY_FIELDS = ("seen", "item_records")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (what json.dumps gives with ensure_ascii=False), bytes as base64."""
    return orjson.dumps(value, default=_bytes_as_text)


def loads(data: bytes) -> Any:
    """JSON text as Python values; ValueError (json's, with its message) when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # raises the standard library's error, with its message


def _bytes_as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not stored")


def binary(value: Any) -> bytes | None:
    """A binary field as read from the file (None when it is not one)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return None
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return pack_prints(value)
    return None


def decode_binary(doc: dict[str, Any]) -> dict[str, Any]:
    """A document as read from the file, its binary fields as bytes (in place; returned)."""
    for name in BINARY_FIELDS:
        if name in doc:
            value = binary(doc[name])
            doc[name] = value if value is not None else b""
    return doc
