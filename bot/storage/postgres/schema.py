"""The schema and its migrations, applied on open under an advisory lock.

Each migration is a step from one schema version to the next and is never edited once released:
a change is a new step at the end of `MIGRATIONS`. `feedbot_schema` holds one row per applied
step. Several processes opening one database at once queue on the lock, and each applies only
the steps still missing, so the schema is changed once.

Every column of a record's table is a field of its model (`bot.models`) by the same name, so a
new model field needs a step here; `check_columns` refuses to open a schema that lacks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from bot.errors import FeedbotError
from bot.models import Chat, DigestItem, Feed, Subscription

#: pg_advisory_xact_lock key serialising schema changes (any constant: "feedbot" in ASCII)
SCHEMA_LOCK = 0x66656564626F74

_V1 = """
-- every write of a record takes a fresh number from here: a stamp's version never repeats, not
-- even for a record removed and created again
CREATE SEQUENCE record_versions;
CREATE SEQUENCE delivery_seq;

CREATE TABLE feeds (
    url text PRIMARY KEY,
    version bigint NOT NULL,
    title text NOT NULL DEFAULT '',
    link text NOT NULL DEFAULT '',
    etag text,
    last_modified text,
    seen bytea NOT NULL DEFAULT '',          -- models.Prints.packed: 8 bytes a print
    next_check double precision NOT NULL DEFAULT 0,
    last_check double precision,
    last_success double precision,
    last_new_entry double precision,
    errors integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    last_error_kind text NOT NULL DEFAULT '',
    last_reason jsonb NOT NULL DEFAULT '{}',
    failing_since double precision,
    failure_notified boolean NOT NULL DEFAULT false,
    retired boolean NOT NULL DEFAULT false,
    last_paused double precision,
    body_digest text NOT NULL DEFAULT '',
    ttl_minutes integer,
    item_records bytea NOT NULL DEFAULT ''
);
CREATE INDEX feeds_due ON feeds (next_check) WHERE NOT retired;

CREATE TABLE chats (
    id bigint PRIMARY KEY,
    version bigint NOT NULL,
    type text NOT NULL DEFAULT 'private',
    title text NOT NULL DEFAULT '',
    paused boolean NOT NULL DEFAULT false,
    failures integer NOT NULL DEFAULT 0,
    lang text NOT NULL DEFAULT 'en',
    seen bytea NOT NULL DEFAULT '',
    filters text NOT NULL DEFAULT '',
    defaults jsonb NOT NULL DEFAULT '{}',
    choices jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE subscriptions (
    chat_id bigint NOT NULL,
    feed_url text NOT NULL,
    version bigint NOT NULL,
    created double precision NOT NULL DEFAULT 0,
    thread_id bigint,
    paused boolean NOT NULL DEFAULT false,
    options jsonb NOT NULL DEFAULT '{}',     -- only the options not at their default
    paused_at double precision,
    page text NOT NULL DEFAULT '',
    PRIMARY KEY (chat_id, feed_url)
);
CREATE INDEX subscriptions_by_feed ON subscriptions (feed_url) INCLUDE (paused);

-- the version of each chat's set of subscriptions (one joining or leaving changes it)
CREATE TABLE subscription_sets (
    chat_id bigint PRIMARY KEY,
    version bigint NOT NULL
);

-- a rendered post going to many chats is stored once; deliveries name it by digest
CREATE TABLE messages (
    digest bytea PRIMARY KEY,
    message jsonb NOT NULL
);

CREATE TABLE deliveries (
    id text PRIMARY KEY,
    chat_id bigint NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('delivery_seq'),
    feed_url text NOT NULL,
    entry_key text NOT NULL,
    message_digest bytea NOT NULL REFERENCES messages (digest),
    created double precision NOT NULL,
    thread_id bigint,
    silent boolean NOT NULL DEFAULT false,
    attempts integer NOT NULL DEFAULT 0,
    reply_to_previous boolean NOT NULL DEFAULT false
);
CREATE INDEX deliveries_by_chat ON deliveries (chat_id, seq);
CREATE INDEX deliveries_by_feed ON deliveries (feed_url);
CREATE INDEX deliveries_by_message ON deliveries (message_digest);
"""

_V2 = """
-- the bot's own few values by name (the Telegraph account's token)
CREATE TABLE bot_values (
    name text PRIMARY KEY,
    value text NOT NULL
);
"""

_V3 = """
-- several processes on one database (issue 17): a checker's lease on a feed it checks (the
-- epoch second it ends; 0: none), the messages sent lately (what a sender taking over counts
-- against each chat's allowance), and calls relayed to the active sender
ALTER TABLE feeds ADD COLUMN lease_until double precision NOT NULL DEFAULT 0;

CREATE TABLE recent_sends (
    chat_id bigint NOT NULL,
    sent_at double precision NOT NULL     -- the server's epoch seconds
);
CREATE INDEX recent_sends_by_time ON recent_sends (sent_at);

CREATE TABLE relayed_calls (
    id text PRIMARY KEY,
    endpoint text NOT NULL,
    params jsonb NOT NULL,
    priority integer NOT NULL,
    created double precision NOT NULL,    -- the server's epoch seconds
    taken_until double precision NOT NULL DEFAULT 0,
    answer jsonb
);
CREATE INDEX relayed_calls_open ON relayed_calls (priority, created) WHERE answer IS NULL;
"""

_V4 = """
-- where a chat's feed notices go (Chat.notices; NULL: into the chat itself)
ALTER TABLE chats ADD COLUMN notices bigint;
"""

_V5 = """
-- a chat's time zone (Chat.timezone, issue 18: dates, quiet hours), and a delivery held by
-- quiet hours until an epoch second (Delivery.not_before; 0: at once)
ALTER TABLE chats ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE deliveries ADD COLUMN not_before double precision NOT NULL DEFAULT 0;
"""

_V6 = """
-- posts collected for digests (issue 18: models.DigestItem), until their digest is queued
CREATE TABLE digest_items (
    id text PRIMARY KEY,
    chat_id bigint NOT NULL,
    thread_id bigint,
    feed_url text NOT NULL,
    feed_title text NOT NULL DEFAULT '',
    title text NOT NULL DEFAULT '',
    link text NOT NULL DEFAULT '',
    entry_key text NOT NULL DEFAULT '',
    due double precision NOT NULL,
    created double precision NOT NULL
);
CREATE INDEX digest_items_due ON digest_items (due, chat_id);
CREATE INDEX digest_items_chat ON digest_items (chat_id);
"""

_V7 = """
-- the request headers a feed record is fetched with (Feed.request_headers, issue 18: a
-- subscription's own headers and basic auth; such a feed's URL carries a marker)
ALTER TABLE feeds ADD COLUMN request_headers jsonb NOT NULL DEFAULT '{}';
"""

#: (version, SQL): schema version N is reached by applying step N
MIGRATIONS: list[tuple[int, str]] = [
    (1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6), (7, _V7),
]
#: the schema version this code reads and writes
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaError(FeedbotError):
    kind = "storage"


async def migrate(conn: Any) -> int:
    """Bring the schema up to date in one transaction; returns how many steps were applied."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS feedbot_schema ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM feedbot_schema")
        if current > SCHEMA_VERSION:
            raise SchemaError(
                f"the database's schema is version {current}, newer than this feedbot's "
                f"{SCHEMA_VERSION}: run a feedbot at least as new as the one that wrote it"
            )
        steps = [(version, sql) for version, sql in MIGRATIONS if version > current]
        for version, sql in steps:
            await conn.execute(sql)
            await conn.execute("INSERT INTO feedbot_schema (version) VALUES ($1)", version)
        await check_columns(conn)
    return len(steps)


#: each record table and the model whose fields are its columns
MODEL_TABLES: dict[str, type] = {
    "feeds": Feed, "chats": Chat, "subscriptions": Subscription, "digest_items": DigestItem,
}


async def check_columns(conn: Any) -> None:
    for table, model in MODEL_TABLES.items():
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        missing = sorted(set(field_names(model)) - {r["column_name"] for r in rows})
        if missing:
            raise SchemaError(
                f"table {table} has no column for {', '.join(missing)}: a schema migration "
                "is missing (bot/storage/postgres/schema.py)"
            )


def field_names(model: type) -> Iterable[str]:
    return (f.name for f in fields(model))
