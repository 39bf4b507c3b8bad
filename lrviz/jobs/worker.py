"""A warm training worker: ``python -m lrviz.jobs.worker --worker-id ID``.

Started by ``LocalExecutor`` in its own session. It imports the trainer (and with it
TensorFlow) once, then loops: claim the oldest queued run, train it with a ``StoreSink``,
write its final status, and claim the next, so that a second run starts in well under a
second. It exits after ``--idle-timeout`` seconds with nothing to do. It never calls
Streamlit; the pages read everything from the store.

A heartbeat thread bumps the worker's row and its run's every few seconds, so
``reconcile`` can tell a long epoch from a dead process. SIGTERM/SIGINT/SIGHUP mark the
current run ``interrupted`` before exiting; an exception in training marks it ``failed``
with the error's last lines.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from lrviz.jobs.executor import DEFAULT_TRAINER
from lrviz.store import RunInfo, RunStore, StoreSink

HEARTBEAT_EVERY_S = 2.0
POLL_EVERY_S = 0.25
OUTCOME_STATUSES = ("finished", "diverged", "cancelled")


class Stopped(BaseException):
    """Raised in the main thread by a stop signal (BaseException: training code's
    ``except Exception`` must not swallow it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def load_trainer(spec: str) -> Callable[[Any, Any], Any]:
    """'package.module:function' -> the function (the import is where TF gets warm)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"Argument `trainer` must look like 'module:function'. Received: trainer={spec!r}")
    return getattr(importlib.import_module(module), name)


def error_text(exc: BaseException) -> str:
    """What the Runs page shows for a failed run: a refusal we wrote for people (bad
    data, a refused parameter) as it is; anything else as its type, message and the line
    it came from (the worker log under cache/logs has the whole traceback)."""
    from lrviz.data import DataError
    from lrviz.params import ParamError

    if isinstance(exc, (DataError, ParamError)):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Worker:
    def __init__(self, store: RunStore, worker_id: str, trainer_spec: str, idle_timeout: float):
        self.store = store
        self.worker_id = worker_id
        self.trainer_spec = trainer_spec
        self.idle_timeout = idle_timeout
        self.current: RunInfo | None = None
        self._done = threading.Event()

    # The heartbeat runs beside training; it uses its own connection (thread-local).
    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_EVERY_S):
            try:
                # False: our row was dropped as dead (silent > STALE_AFTER_S); our run has
                # been marked failed, and its trainer stops at the next should_stop.
                self.store.worker_heartbeat(self.worker_id)
            except Exception as exc:  # a locked file for >10 s: try again next beat
                print(f"heartbeat failed: {exc}", file=sys.stderr, flush=True)

    def run(self) -> int:
        if not self.store.register_worker(self.worker_id, os.getpid()):
            print(f"worker {self.worker_id}: reservation gone; exiting", flush=True)
            return 0
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        beat.start()
        try:
            trainer, load_error = None, None
            try:
                trainer = load_trainer(self.trainer_spec)
            except Exception as exc:  # every claimed run will say why, instead of hanging queued
                load_error = f"worker could not load the trainer {self.trainer_spec}: " + error_text(exc)
                print(load_error, flush=True)
            print(f"worker {self.worker_id} ready (pid {os.getpid()})", flush=True)
            idle_since = time.monotonic()
            while True:
                info = self.store.claim_next(self.worker_id, os.getpid())
                if info is None:
                    if time.monotonic() - idle_since >= self.idle_timeout \
                            and self.store.retire_worker_if_idle(self.worker_id):
                        print(f"worker {self.worker_id}: idle, exiting", flush=True)
                        return 0
                    time.sleep(POLL_EVERY_S)
                    continue
                self.current = info
                if load_error is not None:
                    self.store.set_status(info.id, "failed", error=load_error, only_if="running")
                else:
                    self._handle(trainer, info)
                self.current = None
                self.store.worker_done_with_run(self.worker_id)
                idle_since = time.monotonic()
        except Stopped as stop:
            name = signal.Signals(stop.signum).name
            if self.current is not None:
                epoch = self.store.get(self.current.id).epochs_done + 1 \
                    if self.store.exists(self.current.id) else "?"
                self.store.set_status(
                    self.current.id, "interrupted", only_if="running",
                    error=f"worker process {os.getpid()} was stopped by {name} during epoch {epoch}")
            print(f"worker {self.worker_id}: stopped by {name}", flush=True)
            return 128 + stop.signum
        finally:
            self._done.set()
            self.store.drop_worker(self.worker_id)

    def _handle(self, trainer: Callable[[Any, Any], Any], info: RunInfo) -> None:
        """Train a claimed run; a run of a submitted group brings its queued siblings."""
        if info.kind == "lr_find":
            self._lr_find(info)
            return
        runs = [info]
        if info.group_id is not None and self.trainer_spec == DEFAULT_TRAINER:
            runs += self.store.claim_group(self.worker_id, info.group_id, os.getpid())
        started = time.monotonic()
        print(f"runs {', '.join(r.id for r in runs)}: training", flush=True)
        outcomes: list[tuple[str, str | None]]
        try:
            from lrviz.config import RunConfig

            # to_dict() writes unused fields (validation_split without a split) as None;
            # leaving them out lets from_dict fill its defaults instead of refusing None.
            configs = [RunConfig.from_dict({k: v for k, v in r.config.items() if v is not None})
                       for r in runs]
            with contextlib.ExitStack() as stack:
                sinks = [stack.enter_context(_sink(self.store, r.id, c)) for r, c in zip(runs, configs)]
                if len(runs) == 1:
                    results = [trainer(configs[0], sinks[0])]
                else:
                    from lrviz.training.batched import train_batched

                    results = train_batched(configs, sinks)
                outcomes = [_outcome(result) for result in results]
                # The status is the person's news: record it before trackers spend
                # seconds rendering and uploading their end-of-run charts.
                self._record(runs, outcomes, started)
                for sink, (status, _) in zip(sinks, outcomes):
                    if hasattr(sink, "finish"):
                        sink.finish(status)
        except Exception as exc:
            traceback.print_exc()
            self._record(runs, [("failed", error_text(exc))] * len(runs), started)

    def _record(self, runs: list[RunInfo], outcomes: list[tuple[str, str | None]],
                started: float) -> None:
        for run, (status, error) in zip(runs, outcomes):
            if self.store.exists(run.id):  # deleted while training: nothing to record
                self.store.set_status(run.id, status, error=error, only_if="running")
            print(f"run {run.id}: {status} after {time.monotonic() - started:.1f} s", flush=True)

    def _lr_find(self, info: RunInfo) -> None:
        # run_lr_find records its own points and final status (failed included)
        try:
            from lrviz.training.range_test import run_lr_find

            run_lr_find(info.id, self.store)
        except Exception as exc:
            traceback.print_exc()
            self.store.set_status(info.id, "failed", error=error_text(exc), only_if="running")


def _outcome(result: Any) -> tuple[str, str | None]:
    status, error = getattr(result, "status", None), getattr(result, "error", None)
    if status not in OUTCOME_STATUSES:
        return "failed", f"the trainer returned an unknown status {status!r}"
    return status, error


def _sink(store: RunStore, run_id: str, config: Any) -> contextlib.AbstractContextManager:
    """The run's StoreSink, mirrored to Neptune/TensorBoard when tracking is available."""
    inner = StoreSink(store, run_id)
    try:
        from lrviz.tracking import tracked
    except ImportError:
        return contextlib.nullcontext(inner)
    return tracked(inner, config, run_id, store)


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrviz.jobs.worker")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--db", default=None, help="SQLite file (default: settings.db_path())")
    parser.add_argument("--idle-timeout", type=float, default=30.0)
    parser.add_argument("--trainer", default=DEFAULT_TRAINER,
                        help="module:function training one RunConfig into a sink (tests swap it)")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stopped)
    worker = Worker(RunStore(args.db), args.worker_id, args.trainer, args.idle_timeout)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
