"""Executors: how a submitted run gets trained, behind one small interface.

The queue is the store (status ``queued``). ``LocalExecutor`` makes sure enough worker
processes (``python -m lrviz.jobs.worker``) exist to drain it, never more than
``max_concurrent`` alive at once across every Streamlit session and CLI (the count lives
in the store's ``workers`` table, changed in one transaction). Workers run in their own
session, so they outlive a Streamlit restart, a closed tab or a reload.

What happens to a ``running`` run whose worker goes away (``reconcile``):

* worker still alive (e.g. Streamlit restarted): the run stays ``running`` and is shown.
* worker asked to stop (SIGTERM/SIGINT/SIGHUP: logout, shutdown, ``kill``): the worker
  itself marks its run ``interrupted`` (epochs kept; a new Train starts it afresh).
* worker vanished without a word (SIGKILL, the OOM killer, a crash of the interpreter):
  ``reconcile`` sees its pid gone and marks the run ``failed``, "worker process N died
  (killed or out of memory) during epoch k", with the end of the worker's log.
* worker silent for longer than ``STALE_AFTER_S`` (hung, on a lost host, or its pid
  reused by another program): ``failed``, "stopped responding".

So no run stays ``running`` forever: the Runs page calls ``reconcile`` on each refresh.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from lrviz import settings
from lrviz.store import RunStore, WorkerInfo, new_run_id

STALE_AFTER_S = 60.0      # no heartbeat for this long: the worker is taken for dead
SPAWN_GRACE_S = 120.0     # a reserved worker must announce its pid within this (TF import)
DEFAULT_TRAINER = "lrviz.training:run_training"
LOG_TAIL_LINES = 6

HOST = socket.gethostname()

# Worker processes this process started: polled by reconcile so that they are reaped
# (no zombies in a long-lived Streamlit server) and so their exit signal can be named.
_children: dict[int, subprocess.Popen] = {}
_exit_codes: dict[int, int] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: the run that will hold the result, and whether it existed."""

    run_id: str
    reused: bool


@runtime_checkable
class Executor(Protocol):
    def submit(self, config, *, retrain: bool = False) -> Submission: ...
    def submit_many(self, configs: Sequence[Any], *, retrain: bool = False) -> list[Submission]: ...

    def cancel(self, run_id: str) -> None: ...
    def status(self, run_id: str) -> str: ...


# -- process liveness -------------------------------------------------------------------

def pid_alive(pid: int | None) -> bool:
    """Whether a local process with this pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    _reap_children()
    if pid in _exit_codes:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie has exited but answers kill(0) until its parent reaps it
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def _is_local(worker_id: str | None) -> bool:
    # worker ids start with the host name (see RunStore.reserve_workers); others are remote
    return worker_id is None or worker_id.split(":", 1)[0] == HOST


def _worker_alive(worker: WorkerInfo, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if worker.pid is None:  # reserved, process still starting
        return now - worker.heartbeat_at < SPAWN_GRACE_S
    if worker.host == HOST and not pid_alive(worker.pid):
        return False
    return now - worker.heartbeat_at < STALE_AFTER_S


def worker_log_path(worker_id: str, cache: Path | None = None) -> Path:
    cache = settings.cache_dir() if cache is None else cache
    return cache / "logs" / f"worker-{worker_id.replace(':', '-')}.log"


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(tail)


def _exit_detail(pid: int) -> str:
    code = _exit_codes.get(pid)
    if code is None:
        return ""
    if code < 0:
        try:
            return f" (ended by {signal.Signals(-code).name})"
        except ValueError:
            return f" (ended by signal {-code})"
    return f" (exit status {code})"


# -- reconcile ----------------------------------------------------------------------------

def reconcile(store: RunStore, *, stale_after: float = STALE_AFTER_S) -> list[str]:
    """Mark ``running`` runs whose worker is gone as ``failed``; return their ids.

    Cheap enough to call on every page refresh: one query, plus a ``kill(pid, 0)`` per
    running run. See the module docstring for the rule.
    """
    _reap_children()
    now = time.time()
    changed = []
    for run in store.list_runs(statuses=["running"]):
        epoch = run.epochs_done + 1
        last = run.heartbeat_at or run.started_at or run.created_at
        if _is_local(run.worker_id) and run.pid and not pid_alive(run.pid):
            error = (f"worker process {run.pid} died{_exit_detail(run.pid)} (killed or out of "
                     f"memory) during epoch {epoch}")
        elif now - last > stale_after:
            error = (f"worker process {run.pid} stopped responding (no heartbeat for "
                     f"{now - last:.0f} s) during epoch {epoch}")
        else:
            continue
        if run.worker_id:
            tail = _log_tail(worker_log_path(run.worker_id, store.path.parent))
            if tail:
                error += f"\nLast lines of the worker log:\n{tail}"
        if store.set_status(run.id, "failed", error=error, only_if="running"):
            changed.append(run.id)
    return changed


def _reap_children() -> None:
    """Collect the exit status of our finished workers (this also reaps the zombies)."""
    with _children_lock:
        for pid, child in list(_children.items()):
            code = child.poll()
            if code is not None:
                _exit_codes[pid] = code
                del _children[pid]


# -- the local executor -------------------------------------------------------------------

class LocalExecutor:
    """Runs each submitted config in a warm worker process on this machine.

    Thread-safe: one instance may be shared by every Streamlit session
    (``st.cache_resource``); several instances in several processes also agree, since all
    state lives in the store.
    """

    def __init__(self, store: RunStore | None = None, max_concurrent: int | None = None, *,
                 idle_timeout: float | None = None, trainer: str = DEFAULT_TRAINER):
        self.store = store if store is not None else RunStore()
        self.max_concurrent = settings.max_concurrent_runs() if max_concurrent is None else max_concurrent
        if isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int) \
                or self.max_concurrent < 1:
            raise ValueError("Argument `max_concurrent` must be a whole number >= 1. "
                             f"Received: max_concurrent={self.max_concurrent!r}")
        self.idle_timeout = settings.worker_idle_seconds() if idle_timeout is None else float(idle_timeout)
        self.trainer = trainer

    def submit(self, config, *, retrain: bool = False) -> Submission:
        """Queue ``config`` (or reuse its cached/in-flight run) and make sure a worker runs."""
        reconcile(self.store)  # a dead 'running' twin must not be "reused"
        info, reused = self.store.create_or_reuse(config, retrain=retrain)
        self.ensure_workers()
        return Submission(info.id, reused)

    def submit_many(self, configs: Sequence[Any], *, retrain: bool = False) -> list[Submission]:
        """Submit several configs as one group: a worker claims the group's queued runs
        together and trains the stackable ones in one batched computation."""
        reconcile(self.store)
        group_id = "g" + new_run_id()[1:]
        infos = [self.store.create_or_reuse(c, retrain=retrain, group_id=group_id) for c in configs]
        self.ensure_workers()
        return [Submission(info.id, reused) for info, reused in infos]

    def cancel(self, run_id: str) -> None:
        """Queued: cancelled now. Running: stops within one epoch, ends ``cancelled``."""
        self.store.request_cancel(run_id)

    def status(self, run_id: str) -> str:
        self.refresh()
        return self.store.get(run_id).status

    def refresh(self) -> list[str]:
        """``reconcile``, then start workers for runs left queued (e.g. after a restart)."""
        changed = reconcile(self.store)
        self.ensure_workers()
        return changed

    def ensure_workers(self) -> list[int]:
        """Start the worker processes the queue needs; return their pids."""
        reserved = self.store.reserve_workers(HOST, self.max_concurrent, _worker_alive)
        pids = []
        for worker_id in reserved:
            try:
                pids.append(self._spawn(worker_id))
            except BaseException:
                self.store.drop_worker(worker_id)
                raise
        return pids

    def _spawn(self, worker_id: str) -> int:
        cache = self.store.path.parent
        log = worker_log_path(worker_id, cache)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["LRVIZ_CACHE_DIR"] = str(settings.cache_dir())
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(settings.REPO_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, "-m", "lrviz.jobs.worker", "--worker-id", worker_id,
               "--db", str(self.store.path), "--idle-timeout", str(self.idle_timeout),
               "--trainer", self.trainer]
        with open(log, "ab") as out:
            # own session: Ctrl-C in the Streamlit terminal or a server restart leaves it be
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=env, cwd=settings.REPO_ROOT,
                                     start_new_session=True, close_fds=True)
        with _children_lock:
            _children[child.pid] = child
            _exit_codes.pop(child.pid, None)  # a reused pid: forget the old process
        self.store.register_worker(worker_id, child.pid)
        return child.pid
