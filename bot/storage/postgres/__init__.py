"""The PostgreSQL backend: shared state for any number of feedbot processes on one database.

The only code that imports the driver (tests/test_layout.py checks it), and only imported when
FEEDBOT_DATABASE_URL is set (bot.storage.open_storage).

The driver is asyncpg. It is asyncio-native (no thread, nothing blocks the event loop), speaks
PostgreSQL's binary protocol (bytea seen-sets and item records go over as they are, with no
hex or escape round trip) and is the fastest Python driver by a wide margin, which matters
when the feeds table is the work queue of several checkers. It is one wheel with no other
dependency and no system libpq, so `pip install .` is all a user needs; its pool, LISTEN/NOTIFY
listeners and session-level advisory locks are what the later steps (the sender's election, the
checkers' leases) use. psycopg 3 would also do; it is libpq-based (every libpq URL parameter
and service files work) but slower, and its binary build bundles libpq. asyncpg takes the
common URL parameters (`sslmode`, host, port, user, password, database); other query
parameters are sent as server settings (e.g. `?search_path=bot1`). Behind PgBouncer in
transaction mode its prepared-statement cache must be off: not supported here yet.

schema (tables and migrations), records (rows <-> models), queries (one transaction's SQL,
stamps), backend (the async `Storage`).
"""

from bot.storage.postgres.backend import PostgresStorage, StorageUnavailable, describe_url

__all__ = ["PostgresStorage", "StorageUnavailable", "describe_url"]
