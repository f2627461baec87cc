"""The TinyDB backend: a snapshot in TinyDB's layout plus a checksummed change log.

files (atomic writes, the snapshot, start-up checks), doctable (one table in memory),
changelog (framed log lines), engine (replay, savepoints, commits, folds), index (subscriptions),
database (the queries), backend (the async `Storage`)."""
