"""The run cache's SQLite schema and its migrations.

``MIGRATIONS[i]`` takes a cache from schema version ``i`` to ``i + 1``; ``migrate`` applies
the missing ones when a store opens, inside one write transaction, so two processes
opening a fresh cache at once end with one schema. A cache written by a newer lrviz
(a version this list does not reach) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import time

STATUSES = ("queued", "running", "finished", "diverged", "cancelled", "failed", "interrupted")
KINDS = ("train", "lr_find")

_STATUS_CHECK = ", ".join(f"'{s}'" for s in STATUSES)
_KIND_CHECK = ", ".join(f"'{k}'" for k in KINDS)

# Version 1. Timestamps are unix seconds (REAL). JSON columns hold text. Non-finite
# metric values are kept in `nonfinite` because SQLite turns NaN into NULL.
_V1 = [
    f"""
    CREATE TABLE runs (
        id               TEXT PRIMARY KEY,
        kind             TEXT NOT NULL CHECK (kind IN ({_KIND_CHECK})),
        name             TEXT,
        tags             TEXT NOT NULL DEFAULT '[]',
        config           TEXT NOT NULL,
        config_hash      TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ({_STATUS_CHECK})),
        created_at       REAL NOT NULL,
        started_at       REAL,
        finished_at      REAL,
        epochs_total     INTEGER,
        epochs_done      INTEGER NOT NULL DEFAULT 0,
        error            TEXT,
        pid              INTEGER,
        worker_id        TEXT,
        heartbeat_at     REAL,
        group_id         TEXT,
        tracking         TEXT NOT NULL DEFAULT '{{}}',
        cancel_requested INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX runs_by_hash ON runs (config_hash, kind, created_at)",
    "CREATE INDEX runs_by_status ON runs (status, created_at)",
    """
    CREATE TABLE epochs (
        run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        epoch         INTEGER NOT NULL,
        loss          REAL,
        accuracy      REAL,
        val_loss      REAL,
        val_accuracy  REAL,
        learning_rate REAL,
        seconds       REAL,
        nonfinite     TEXT,
        extra         TEXT,
        logged_at     REAL NOT NULL,
        PRIMARY KEY (run_id, epoch)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE step_lr (
        run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        first_step INTEGER NOT NULL,
        lrs        BLOB NOT NULL,
        PRIMARY KEY (run_id, first_step)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE points (
        run_id    TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        idx       INTEGER NOT NULL,
        lr        REAL,
        loss      REAL,
        smoothed  REAL,
        nonfinite TEXT,
        PRIMARY KEY (run_id, idx)
    ) WITHOUT ROWID
    """,
    # Local worker processes: the executor counts live rows to respect max_concurrent.
    """
    CREATE TABLE workers (
        worker_id    TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          INTEGER,
        started_at   REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        run_id       TEXT
    )
    """,
]

MIGRATIONS: list[list[str]] = [_V1]
LATEST = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The run cache cannot be used as it is (for example, written by a newer lrviz)."""


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema to ``LATEST``; return the version found before. Refuse newer ones."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        found = current_version(conn)
        if found > LATEST:
            raise StoreError(
                f"The run cache {path} has schema version {found}, newer than this lrviz "
                f"understands ({LATEST}). Upgrade lrviz, or point LRVIZ_CACHE_DIR at another folder."
            )
        for version in range(found, LATEST):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version + 1, time.time()))
        conn.execute("COMMIT")
        return found
    except BaseException:
        conn.execute("ROLLBACK")
        raise
