"""``RunStore``: the run cache in SQLite, shared by Streamlit sessions, the CLI and workers.

One SQLite file (``settings.db_path()`` by default) in WAL mode, so readers never wait
for the writer. Every write is one short ``BEGIN IMMEDIATE`` transaction and a 10 s busy
timeout, so a writer that finds the file locked by another process waits its turn
instead of failing. Each thread (and each process after a fork) gets its own
connection, so one ``RunStore`` may be shared by Streamlit's threads.

NaN and inf are stored explicitly (SQLite would turn NaN into NULL) and come back as
such; a metric that was never logged comes back as NaN too.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from lrviz import settings
from lrviz.store.schema import KINDS, STATUSES, StoreError, migrate

BUSY_TIMEOUT_S = 10.0
TERMINAL = ("finished", "diverged", "cancelled", "failed", "interrupted")
REUSABLE = ("finished", "diverged", "queued", "running")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
HISTORY_COLUMNS = ("run_id", "epoch", *METRICS, "seconds")

_RUN_COLUMNS = (
    "id, kind, name, tags, config, config_hash, status, created_at, started_at, finished_at, "
    "epochs_total, epochs_done, error, pid, worker_id, heartbeat_at, group_id, tracking, "
    "cancel_requested"
)
_ID_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_run_id() -> str:
    """A short id that sorts by creation time: 'r', 9 base-36 digits of ms, 4 random."""
    ms = time.time_ns() // 1_000_000
    digits = ""
    for _ in range(9):
        ms, rest = divmod(ms, 36)
        digits = _ID_DIGITS[rest] + digits
    return "r" + digits + "".join(secrets.choice(_ID_DIGITS) for _ in range(4))


def config_hash_of(config: Mapping[str, Any]) -> str:
    """The same hash ``RunConfig.config_hash`` gives, for a config already in dict form."""
    import hashlib

    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunInfo:
    """One run's row. Timestamps are unix seconds (float) or None."""

    id: str
    kind: str
    name: str | None
    config: dict
    config_hash: str
    status: str
    tags: list = field(default_factory=list)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    epochs_done: int = 0
    epochs_total: int | None = None
    error: str | None = None
    pid: int | None = None
    heartbeat_at: float | None = None
    group_id: str | None = None
    tracking: dict = field(default_factory=dict)
    cancel_requested: bool = False
    worker_id: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> "RunInfo":
        (id_, kind, name, tags, config, chash, status, created, started, finished,
         total, done, error, pid, worker_id, heartbeat, group_id, tracking, cancel) = row
        return cls(id=id_, kind=kind, name=name, config=json.loads(config), config_hash=chash,
                   status=status, tags=json.loads(tags), created_at=created, started_at=started,
                   finished_at=finished, epochs_done=done, epochs_total=total, error=error,
                   pid=pid, heartbeat_at=heartbeat, group_id=group_id,
                   tracking=json.loads(tracking), cancel_requested=bool(cancel),
                   worker_id=worker_id)


@dataclass(frozen=True)
class WorkerInfo:
    """A local worker process as the ``workers`` table knows it (pid None: being started)."""

    worker_id: str
    host: str
    pid: int | None
    started_at: float
    heartbeat_at: float
    run_id: str | None


# -- non-finite values -------------------------------------------------------------------

def _split_finite(values: Mapping[str, float | None]) -> tuple[dict[str, float | None], str | None]:
    """Column values SQLite can hold, plus a JSON note of the NaN/inf ones it cannot."""
    plain: dict[str, float | None] = {}
    special: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            plain[key] = None
            continue
        value = float(value)
        if math.isfinite(value):
            plain[key] = value
        else:
            plain[key] = None
            special[key] = repr(value)  # 'nan', 'inf', '-inf': float() reads them back
    return plain, (json.dumps(special) if special else None)


def _restore(values: dict[str, Any], nonfinite: str | None) -> dict[str, Any]:
    for key, text in json.loads(nonfinite or "{}").items():
        values[key] = float(text)
    return values


def _as_float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Argument `{name}` must be a number. Received: {name}={value!r}") from None


class RunStore:
    """The run cache. ``path`` defaults to ``settings.db_path()`` (``LRVIZ_CACHE_DIR`` moves it)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self._local = threading.local()
        try:
            self.path = Path(path) if path is not None else settings.db_path()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            migrate(self._conn(), str(self.path))
        except (OSError, sqlite3.OperationalError) as exc:
            # A read-only or missing cache folder: one sentence naming it, not a traceback.
            where = path if path is not None else os.environ.get("LRVIZ_CACHE_DIR") or settings.REPO_ROOT / "cache"
            raise StoreError(f"The run cache {where} cannot be opened ({exc}); point "
                             "LRVIZ_CACHE_DIR at a writable folder.") from exc

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # -- connections and transactions ----------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        # isolation_level=None: we issue BEGIN ourselves, so reads never hold a snapshot.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; far fewer fsyncs
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction. IMMEDIATE takes the write lock up front, so the
        busy timeout applies (a deferred read-then-write could fail at once in WAL)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            # Disk full, a read-only file, a lock held past the busy timeout: nothing was
            # written; say so in one sentence naming the file (the pages and CLI show it).
            raise StoreError(f"The run cache {self.path} cannot be written ({exc}); nothing "
                             "was saved. Free disk space or point LRVIZ_CACHE_DIR at a "
                             "writable folder.") from exc

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, config: Any, *, kind: str = "train", status: str = "queued",
                   name: str | None = None, group_id: str | None = None) -> str:
        """Insert a new run and return its id. ``config``: a ``RunConfig`` or a dict."""
        with self._write() as conn:
            return self._insert_run(conn, config, kind, status, name, group_id)

    def create_or_reuse(self, config: Any, *, retrain: bool = False, kind: str = "train",
                        name: str | None = None,
                        group_id: str | None = None) -> tuple[RunInfo, bool]:
        """The cached run for ``config`` (reused=True) or a new queued one (reused=False).

        Check and insert happen in one transaction, so two sessions pressing Train on the
        same config at the same moment get one run. ``retrain`` skips finished and
        diverged runs but still joins a queued or running one: never train a config twice
        at the same time.
        """
        config_dict, chash, _ = self._config_parts(config)
        with self._write() as conn:
            statuses = ("queued", "running") if retrain else REUSABLE
            found = self._find(conn, chash, kind, statuses)
            if found is not None:
                return found, True
            run_id = self._insert_run(conn, config, kind, "queued", name, group_id)
            return self._get(conn, run_id), False

    def find_reusable(self, config_hash: str, kind: str = "train") -> RunInfo | None:
        """The newest run with this hash that finished or diverged, or is queued/running."""
        return self._find(self._conn(), config_hash, kind, REUSABLE)

    def get(self, run_id: str) -> RunInfo:
        """The run, or ``KeyError`` naming the id."""
        return self._get(self._conn(), run_id)

    def exists(self, run_id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def list_runs(self, kind: str | None = None, statuses: Iterable[str] | None = None,
                  group_id: str | None = None) -> list[RunInfo]:
        """Runs, newest first, optionally only of one kind / some statuses / one group."""
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(_check_kind(kind))
        if statuses is not None:
            statuses = [_check_status(s) for s in ([statuses] if isinstance(statuses, str) else statuses)]
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if group_id is not None:
            where.append("group_id = ?")
            args.append(group_id)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
        return [RunInfo._from_row(r) for r in rows]

    def set_status(self, run_id: str, status: str, *, error: str | None = None,
                   only_if: str | Iterable[str] | None = None) -> bool:
        """Set the status (and error text); with ``only_if``, only from those statuses.

        Returns whether the row changed: a compare-and-set, so a worker's final status
        never overwrites a cancel or a reconcile that got there first.
        """
        _check_status(status)
        now = time.time()
        sets = ["status = ?", "error = COALESCE(?, error)"]
        args: list[Any] = [status, error]
        if status == "running":
            sets.append("started_at = COALESCE(started_at, ?)")
            args.append(now)
        if status in TERMINAL:
            sets.append("finished_at = ?")
            args.append(now)
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE id = ?"
        args.append(run_id)
        if only_if is not None:
            allowed = [_check_status(s) for s in ([only_if] if isinstance(only_if, str) else only_if)]
            sql += f" AND status IN ({','.join('?' * len(allowed))})"
            args.extend(allowed)
        with self._write() as conn:
            changed = conn.execute(sql, args).rowcount == 1
            if not changed and not self._exists(conn, run_id):
                raise KeyError(f"No run with id {run_id!r} in {self.path}")
            return changed

    def claim_next(self, worker_id: str, pid: int | None = None,
                   kinds: Sequence[str] = KINDS) -> RunInfo | None:
        """Atomically move the oldest queued run (of ``kinds``) to running for this worker."""
        pid = os.getpid() if pid is None else pid
        now = time.time()
        marks = ",".join("?" * len(kinds))
        with self._write() as conn:
            row = conn.execute(
                f"SELECT id FROM runs WHERE status = 'queued' AND kind IN ({marks}) "
                "ORDER BY created_at, rowid LIMIT 1", [_check_kind(k) for k in kinds]
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?, pid = ?, "
                "worker_id = ? WHERE id = ?", (now, now, pid, worker_id, row[0]))
            conn.execute("UPDATE workers SET run_id = ?, heartbeat_at = ? WHERE worker_id = ?",
                         (row[0], now, worker_id))
            return self._get(conn, row[0])

    def claim_group(self, worker_id: str, group_id: str, pid: int | None = None,
                    kind: str = "train") -> list[RunInfo]:
        """Atomically move every queued run of ``group_id`` to running for this worker
        (the batched engine trains a submitted group together)."""
        pid = os.getpid() if pid is None else pid
        now = time.time()
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE status = 'queued' AND kind = ? AND group_id = ? "
                "ORDER BY created_at, rowid", (_check_kind(kind), group_id))]
            conn.executemany(
                "UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?, pid = ?, "
                "worker_id = ? WHERE id = ?", [(now, now, pid, worker_id, i) for i in ids])
            return [self._get(conn, i) for i in ids]

    def request_cancel(self, run_id: str) -> None:
        """Ask a run to stop: a queued run is cancelled at once, a running one at its next
        check (the training callback asks ``cancel_requested`` and ends ``cancelled``)."""
        now = time.time()
        with self._write() as conn:
            if not self._exists(conn, run_id):
                raise KeyError(f"No run with id {run_id!r} in {self.path}")
            conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
            conn.execute("UPDATE runs SET status = 'cancelled', finished_at = ? "
                         "WHERE id = ? AND status = 'queued'", (now, run_id))

    def cancel_requested(self, run_id: str) -> bool:
        """True when a cancel was asked, and also when the run is gone or no longer running
        (deleted, or marked failed by reconcile): either way its trainer should stop."""
        row = self._conn().execute("SELECT cancel_requested, status FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
        return row is None or bool(row[0]) or row[1] not in ("queued", "running")

    def heartbeat(self, run_id: str, pid: int | None = None) -> None:
        """The run's process is alive (reconcile treats a long silence as a dead worker)."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET heartbeat_at = ?, pid = COALESCE(?, pid) WHERE id = ?",
                         (time.time(), pid, run_id))

    def set_tracking(self, run_id: str, tracking: Mapping[str, Any]) -> None:
        """Where the run is mirrored (e.g. {'neptune': url, 'tensorboard': logdir})."""
        self._update(run_id, "tracking", json.dumps(dict(tracking)))

    def rename(self, run_id: str, name: str | None) -> None:
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Argument `name` must be text or None. Received: name={name!r}")
        self._update(run_id, "name", (name or "").strip() or None)

    def set_tags(self, run_id: str, tags: Iterable[str]) -> None:
        """Replace the run's tags (text, blanks dropped, duplicates kept once, order kept)."""
        if isinstance(tags, str):
            raise ValueError(f"Argument `tags` must be a list of text. Received: tags={tags!r}")
        clean: list[str] = []
        for tag in tags:
            if not isinstance(tag, str):
                raise ValueError(f"Argument `tags` must be a list of text. Received: tags={tags!r}")
            tag = tag.strip()
            if tag and tag not in clean:
                clean.append(tag)
        self._update(run_id, "tags", json.dumps(clean))

    def delete(self, run_id: str) -> None:
        """Delete the run with its epochs, step LRs and points. A worker still training it
        sees ``cancel_requested`` and stops."""
        with self._write() as conn:
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount != 1:
                raise KeyError(f"No run with id {run_id!r} in {self.path}")

    # -- metrics ---------------------------------------------------------------------------

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float],
                  seconds: float) -> None:
        """Record one epoch (numbered from 1); logging the same epoch again replaces it."""
        if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 1:
            raise ValueError(f"Argument `epoch` must be a whole number >= 1. Received: epoch={epoch!r}")
        values = {m: (None if metrics.get(m) is None else _as_float(metrics[m], m)) for m in METRICS}
        values["seconds"] = _as_float(seconds, "seconds")
        plain, nonfinite = _split_finite(values)
        extra = {k: _as_float(v, k) for k, v in metrics.items() if k not in METRICS and k != "seconds"}
        now = time.time()
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, int(epoch), *(plain[m] for m in METRICS), plain["seconds"],
                     nonfinite, json.dumps(extra) if extra else None, now))
                conn.execute("UPDATE runs SET epochs_done = MAX(epochs_done, ?), heartbeat_at = ? "
                             "WHERE id = ?", (int(epoch), now, run_id))
        except sqlite3.IntegrityError:
            raise KeyError(f"No run with id {run_id!r} in {self.path}") from None

    def log_step_lr(self, run_id: str, first_step: int, lrs: np.ndarray) -> None:
        """Record the LR of optimizer steps ``first_step, first_step + 1, ...``."""
        blob = np.ascontiguousarray(lrs, dtype="<f8").ravel().tobytes()
        try:
            with self._write() as conn:
                conn.execute("INSERT OR REPLACE INTO step_lr VALUES (?, ?, ?)",
                             (run_id, int(first_step), blob))
        except sqlite3.IntegrityError:
            raise KeyError(f"No run with id {run_id!r} in {self.path}") from None

    def step_lr(self, run_id: str) -> np.ndarray:
        """The per-step LR logged so far (steps never logged are NaN)."""
        rows = self._conn().execute(
            "SELECT first_step, lrs FROM step_lr WHERE run_id = ? ORDER BY first_step",
            (run_id,)).fetchall()
        chunks = [(first, np.frombuffer(blob, dtype="<f8")) for first, blob in rows]
        length = max((first + len(c) for first, c in chunks), default=0)
        out = np.full(length, np.nan)
        for first, chunk in chunks:
            out[first:first + len(chunk)] = chunk
        return out

    def history(self, run_ids: str | Iterable[str]) -> pd.DataFrame:
        """Per-epoch metrics of these runs (in the order given, then by epoch)."""
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        marks = ",".join("?" * len(ids))
        rows = self._conn().execute(
            f"SELECT run_id, epoch, {', '.join(METRICS)}, seconds, nonfinite FROM epochs "
            f"WHERE run_id IN ({marks})", ids).fetchall() if ids else []
        records = []
        for row in rows:
            record = dict(zip(HISTORY_COLUMNS, row[:-1]))
            records.append(_restore(record, row[-1]))
        frame = pd.DataFrame.from_records(records, columns=list(HISTORY_COLUMNS))
        order = {run_id: i for i, run_id in enumerate(ids)}
        frame["_order"] = frame["run_id"].map(order)
        frame = frame.sort_values(["_order", "epoch"]).drop(columns="_order")
        frame = frame.astype({"run_id": str, "epoch": "int64", **{c: "float64" for c in HISTORY_COLUMNS[2:]}})
        return frame.reset_index(drop=True)

    def extra_metrics(self, run_id: str) -> pd.DataFrame:
        """Metrics beyond the standard columns, one row per epoch (empty when none)."""
        rows = self._conn().execute(
            "SELECT epoch, extra FROM epochs WHERE run_id = ? AND extra IS NOT NULL ORDER BY epoch",
            (run_id,)).fetchall()
        return pd.DataFrame([{"epoch": e, **json.loads(x)} for e, x in rows])

    def log_points(self, run_id: str, first_idx: int, lr: Sequence[float], loss: Sequence[float],
                   smoothed: Sequence[float] | None = None) -> None:
        """LR-finder points ``first_idx, first_idx + 1, ...`` (loss may be NaN/inf)."""
        smoothed = [None] * len(lr) if smoothed is None else smoothed
        if not len(lr) == len(loss) == len(smoothed):
            raise ValueError(f"Arguments `lr`, `loss` and `smoothed` must have the same length. "
                             f"Received: {len(lr)}, {len(loss)}, {len(smoothed)}")
        rows = []
        for i, (a, b, c) in enumerate(zip(lr, loss, smoothed)):
            plain, nonfinite = _split_finite({"lr": a, "loss": b, "smoothed": c})
            rows.append((run_id, int(first_idx) + i, plain["lr"], plain["loss"], plain["smoothed"], nonfinite))
        try:
            with self._write() as conn:
                conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise KeyError(f"No run with id {run_id!r} in {self.path}") from None

    def points(self, run_id: str) -> pd.DataFrame:
        """The LR finder's points: columns idx, lr, loss, smoothed (NaN kept)."""
        rows = self._conn().execute(
            "SELECT idx, lr, loss, smoothed, nonfinite FROM points WHERE run_id = ? ORDER BY idx",
            (run_id,)).fetchall()
        cols = ["idx", "lr", "loss", "smoothed"]
        records = [_restore(dict(zip(cols, r[:-1])), r[-1]) for r in rows]
        frame = pd.DataFrame.from_records(records, columns=cols)
        return frame.astype({"idx": "int64", "lr": "float64", "loss": "float64", "smoothed": "float64"})

    # -- local worker registry (used by lrviz.jobs) ------------------------------------------

    def reserve_workers(self, host: str, wanted_max: int,
                        is_alive: Callable[[WorkerInfo], bool], kinds: Sequence[str] = KINDS
                        ) -> list[str]:
        """Drop dead worker rows, then reserve ids for the workers still needed.

        Needed: enough for the queued runs beyond the idle workers, capped so that live
        workers never exceed ``wanted_max``. One transaction, so two sessions submitting at
        once cannot both start the last allowed worker. The caller starts a process per
        returned id (and calls ``drop_worker`` if it cannot).
        """
        now = time.time()
        marks = ",".join("?" * len(kinds))
        with self._write() as conn:
            workers = [WorkerInfo(*r) for r in conn.execute(
                "SELECT worker_id, host, pid, started_at, heartbeat_at, run_id FROM workers")]
            live = []
            for w in workers:
                if is_alive(w):
                    live.append(w)
                else:
                    conn.execute("DELETE FROM workers WHERE worker_id = ?", (w.worker_id,))
            queued = conn.execute(f"SELECT COUNT(*) FROM runs WHERE status = 'queued' AND kind IN ({marks})",
                                  list(kinds)).fetchone()[0]
            idle = sum(1 for w in live if w.run_id is None)
            count = max(0, min(wanted_max - len(live), queued - idle))
            ids = [f"{host}:{now:.0f}:{secrets.token_hex(3)}" for _ in range(count)]
            conn.executemany("INSERT INTO workers VALUES (?, ?, NULL, ?, ?, NULL)",
                             [(wid, host, now, now) for wid in ids])
            return ids

    def register_worker(self, worker_id: str, pid: int) -> bool:
        """A worker process announces its pid; False if its reservation was dropped."""
        with self._write() as conn:
            return conn.execute("UPDATE workers SET pid = ?, heartbeat_at = ? WHERE worker_id = ?",
                                (pid, time.time(), worker_id)).rowcount == 1

    def worker_heartbeat(self, worker_id: str) -> bool:
        """Bump the worker's heartbeat and its current run's; False if the row is gone."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT run_id FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (now, worker_id))
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE worker_id = ? AND status = 'running'",
                         (now, worker_id))
            return True

    def worker_done_with_run(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE workers SET run_id = NULL, heartbeat_at = ? WHERE worker_id = ?",
                         (time.time(), worker_id))

    def retire_worker_if_idle(self, worker_id: str, kinds: Sequence[str] = KINDS) -> bool:
        """Remove the worker's row unless runs are queued (then it should claim one).

        Same transaction as the check, so a run queued just before is never left without
        a worker: either the worker sees it, or the submitter sees the worker gone.
        """
        marks = ",".join("?" * len(kinds))
        with self._write() as conn:
            queued = conn.execute(f"SELECT COUNT(*) FROM runs WHERE status = 'queued' AND kind IN ({marks})",
                                  list(kinds)).fetchone()[0]
            if queued:
                return False
            conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
            return True

    def drop_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(*r) for r in self._conn().execute(
            "SELECT worker_id, host, pid, started_at, heartbeat_at, run_id FROM workers "
            "ORDER BY started_at")]

    # -- private helpers -------------------------------------------------------------------

    def _config_parts(self, config: Any) -> tuple[dict, str, int | None]:
        if hasattr(config, "to_dict") and hasattr(config, "config_hash"):
            data, chash = config.to_dict(), config.config_hash()
        elif isinstance(config, Mapping):
            data = dict(config)
            chash = config_hash_of(data)
        else:
            raise ValueError("Argument `config` must be a RunConfig or a dict. "
                             f"Received: config={config!r}")
        epochs = data.get("epochs")
        return data, chash, int(epochs) if isinstance(epochs, (int, float)) else None

    def _insert_run(self, conn: sqlite3.Connection, config: Any, kind: str, status: str,
                    name: str | None, group_id: str | None) -> str:
        _check_kind(kind)
        _check_status(status)
        data, chash, epochs = self._config_parts(config)
        run_id = new_run_id()
        conn.execute(
            "INSERT INTO runs (id, kind, name, config, config_hash, status, created_at, "
            "epochs_total, group_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, kind, name, json.dumps(data, sort_keys=True), chash, status, time.time(),
             epochs, group_id))
        return run_id

    def _find(self, conn: sqlite3.Connection, chash: str, kind: str,
              statuses: Sequence[str]) -> RunInfo | None:
        marks = ",".join("?" * len(statuses))
        row = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE config_hash = ? AND kind = ? "
            f"AND status IN ({marks}) ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (chash, _check_kind(kind), *statuses)).fetchone()
        return None if row is None else RunInfo._from_row(row)

    def _get(self, conn: sqlite3.Connection, run_id: str) -> RunInfo:
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"No run with id {run_id!r} in {self.path}")
        return RunInfo._from_row(row)

    @staticmethod
    def _exists(conn: sqlite3.Connection, run_id: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def _update(self, run_id: str, column: str, value: Any) -> None:
        with self._write() as conn:
            if conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id)).rowcount != 1:
                raise KeyError(f"No run with id {run_id!r} in {self.path}")


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"Argument `status` must be one of {', '.join(STATUSES)}. Received: status={status!r}")
    return status


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"Argument `kind` must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    return kind
