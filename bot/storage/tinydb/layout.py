"""The file's layout: table names and how documents are encoded (shared by the engine's parts)."""

from __future__ import annotations

import json
from typing import Any

TABLES = ("feeds", "subscriptions", "chats", "outbox", "meta")
#: table holding the number of the first log a snapshot does not contain
LOG_TABLE = "log"
#: a field that is not there (None is a value)
MISSING = object()


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
