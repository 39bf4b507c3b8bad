"""The Ray executor: runs and batched groups as Ray tasks on a cluster, results in the local store.

Chosen by ``lrviz.jobs.get_executor()`` when ``LRVIZ_RAY_ADDRESS`` is set (``auto`` for a
cluster started on this machine with ``ray start --head``, or ``ray://host:10001``). This
module is the only one in lrviz that imports Ray, and only when it is used.

What runs where:

* the driver (this process: Streamlit or the CLI) owns the SQLite store. It draws each
  distinct data sample once (``lrviz.data.load_sample``) and ``ray.put``s it; every task
  gets the ``ObjectRef``, so worker nodes need no dataset files.
* a task trains one run (``run_training``) or one stackable group (``train_batched``)
  with ``LRVIZ_RAY_CPUS_PER_RUN`` CPUs (default 1). Its sink sends every epoch and
  per-step LR to a small relay actor; ``should_stop`` asks the actor for a cancel flag.
* a drain thread here empties the relay every ``POLL_S`` into the store through the same
  calls a local worker makes (``log_epoch``, ``log_step_lr``), writes status transitions
  (``queued`` -> ``running`` when the task starts, then its outcome) and heartbeats the
  runs in flight so the Runs page is as live as with local workers.

Cancel: ``store.request_cancel`` plus the relay's flag (the task stops within a batch and
ends ``cancelled`` keeping its epochs); a task that has not started is ``ray.cancel``led;
one that ignores the flag for ``CANCEL_GRACE_S`` is force-cancelled. A task whose worker
dies (node lost, OOM, SIGKILL) ends ``failed`` with Ray's reason, or is retried
``LRVIZ_RAY_RETRIES`` times first. If the driver itself dies, Ray kills its tasks and
``reconcile`` (any process) marks the silent runs ``failed`` after ``STALE_AFTER_S``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from lrviz import settings
from lrviz.jobs.executor import LocalExecutor, Submission
from lrviz.store import TERMINAL, RunStore, new_run_id

POLL_S = 0.2               # drain period: an epoch shows up in the store within this
HEARTBEAT_EVERY_S = 2.0    # keeps reconcile (STALE_AFTER_S = 60) from failing live runs
CANCEL_GRACE_S = 15.0      # a started task that ignores the cancel flag this long is killed
STOP_CHECK_EVERY_S = 0.5   # how often a task's sink asks the relay for a cancel


def check_address(address: str | None) -> str:
    """``auto``, ``ray://host:port`` or ``host:port``; anything else (or nothing, which would
    make Ray start a private single-machine cluster) is refused."""
    text = (address or "").strip()
    if text == "auto" or text.startswith("ray://") or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return text
    raise ValueError("LRVIZ_RAY_ADDRESS must be `auto` (a cluster this machine joined with `ray start`), "
                     f"`ray://host:10001` or `host:6379`. Received: {address!r}")


def select_executor(store: RunStore | None = None):
    """``RayExecutor`` when ``LRVIZ_RAY_ADDRESS`` is set, else ``LocalExecutor``
    (the rule ``lrviz.jobs.get_executor`` applies)."""
    address = settings.ray_address()
    return LocalExecutor(store) if address is None else RayExecutor(address, store=store)


# -- the task side (runs on Ray workers) ----------------------------------------------------

class RelaySink:
    """The ``MetricsSink`` of a run inside a Ray task: everything goes to the relay actor.

    Actor calls from one caller run in order, so the driver sees epochs in order; ``flush``
    waits for the last one so nothing is in flight when the task returns.
    """

    def __init__(self, relay: Any, run_id: str, hook: Callable[[str, int], None] | None = None):
        self.relay = relay
        self.run_id = run_id
        self.hook = hook
        self._last = None
        self._stop = False
        self._checked_at = float("-inf")

    def on_epoch(self, epoch: int, metrics: dict, seconds: float) -> None:
        self._last = self.relay.push.remote(
            ("epoch", self.run_id, int(epoch), {k: float(v) for k, v in metrics.items()}, float(seconds)))
        if self.hook is not None:  # tests: kill the worker after an epoch, for instance
            import ray

            ray.get(self._last)
            self.hook(self.run_id, int(epoch))

    def on_step_lr(self, first_step: int, lrs: np.ndarray) -> None:
        self._last = self.relay.push.remote(
            ("lr", self.run_id, int(first_step), np.asarray(lrs, dtype=np.float64)))

    def should_stop(self) -> bool:
        if self._stop:
            return True
        now = time.monotonic()
        if now - self._checked_at >= STOP_CHECK_EVERY_S:
            import ray

            self._checked_at = now
            self._stop = bool(ray.get(self.relay.is_cancelled.remote(self.run_id)))
        return self._stop

    def flush(self) -> None:
        if self._last is not None:
            import ray

            ray.get(self._last)


@contextlib.contextmanager
def provided_sample(config: Any, sample: Any) -> Iterator[None]:
    """Make ``load_sample`` return the shipped arrays for ``config``'s sample.

    The trainers draw their data with ``lrviz.data.load_sample``; on a worker node the
    files may not exist, so for the duration of the task that call answers from the
    object store for this sample's arguments (any other sample still reads files).
    """
    import lrviz.data
    import lrviz.training.run

    original = lrviz.data.load_sample
    wanted = (config.train_size, config.sample_seed, config.validation, config.validation_split)

    def load_sample(train_size, sample_seed, validation="test", validation_split=0.2):
        if (train_size, sample_seed, validation, validation_split) == wanted:
            return sample
        return original(train_size, sample_seed, validation, validation_split)

    lrviz.data.load_sample = load_sample
    lrviz.training.run.load_sample = load_sample
    try:
        yield
    finally:
        lrviz.data.load_sample = original
        lrviz.training.run.load_sample = original


def train_task(relay: Any, run_ids: Sequence[str], config_dicts: Sequence[dict], sample: Any,
               hook: Callable[[str, int], None] | None = None) -> list[tuple[str, int, str | None]]:
    """Body of the Ray task: train one run or one stackable group, report through the relay.

    Returns one ``(status, epochs_done, error)`` per run.
    """
    import ray

    from lrviz.config import RunConfig

    configs = [RunConfig.from_dict({k: v for k, v in c.items() if v is not None}) for c in config_dicts]
    ray.get(relay.push.remote(("started", list(run_ids), socket.gethostname(), os.getpid())))
    sinks = [RelaySink(relay, rid, hook) for rid in run_ids]
    with provided_sample(configs[0], sample):
        if len(configs) == 1:
            from lrviz.training import run_training

            outcomes = [run_training(configs[0], sinks[0])]
        else:
            from lrviz.training.batched import train_batched

            outcomes = train_batched(configs, sinks, jit_compile=False)  # as train_group: no XLA compile wait
    for sink in sinks:
        sink.flush()
    return [(o.status, int(o.epochs_done), getattr(o, "error", None)) for o in outcomes]


class Relay:
    """Ray actor between tasks and the driver: an event buffer and the cancel flags."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.cancelled: set[str] = set()

    def push(self, event: tuple) -> None:
        self.events.append(event)

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events

    def cancel(self, run_id: str) -> None:
        self.cancelled.add(run_id)

    def is_cancelled(self, run_id: str) -> bool:
        return run_id in self.cancelled


_remote: dict[str, Any] = {}


def _remote_defs() -> tuple[Any, Any]:
    """The Ray-decorated task and actor, made once (``ray`` is imported only here)."""
    if not _remote:
        import ray

        _remote["task"] = ray.remote(train_task)
        _remote["relay"] = ray.remote(num_cpus=0)(Relay)
    return _remote["task"], _remote["relay"]


# -- the driver side ------------------------------------------------------------------------

@dataclass
class _Task:
    ref: Any
    run_ids: list[str]
    started: bool = False
    cancel_at: float | None = None      # when a started task was asked to stop
    attempts: int = 0
    node: str | None = None
    epochs: dict[str, int] = field(default_factory=dict)
    foreign: set[str] = field(default_factory=set)  # runs someone else owns: record nothing


class RayExecutor:
    """Submits runs to a Ray cluster and mirrors their progress into the local store.

    Same interface as ``LocalExecutor``: ``submit``, ``submit_many``/``submit_group``,
    ``cancel``, ``status``. Thread-safe; one instance per process is enough (the Streamlit
    app keeps one in ``st.cache_resource``).
    """

    def __init__(self, address: str | None = None, store: RunStore | None = None, *,
                 cpus_per_run: float | None = None, retries: int | None = None,
                 task_hook: Callable[[str, int], None] | None = None):
        import ray

        self.store = store if store is not None else RunStore()
        self.address = check_address(address if address is not None else settings.ray_address())
        self.cpus_per_run = settings.ray_cpus_per_run() if cpus_per_run is None else float(cpus_per_run)
        if not self.cpus_per_run > 0:
            raise ValueError(f"Argument `cpus_per_run` must be > 0. Received: cpus_per_run={cpus_per_run!r}")
        self.retries = settings.ray_retries() if retries is None else int(retries)
        self.task_hook = task_hook
        if not ray.is_initialized():  # else: joined already (a test, or a notebook's ray.init)
            ray.init(address=self.address, log_to_driver=False)
        self._ray = ray
        task, relay_cls = _remote_defs()
        self._task_fn = task
        self.relay = relay_cls.remote()
        self._samples: dict[tuple, Any] = {}
        self._tasks: dict[str, _Task] = {}      # run id -> its task (a group shares one)
        self._cancel_sent: set[str] = set()     # runs whose cancel flag the relay has
        self._lock = threading.RLock()
        self._local: LocalExecutor | None = None
        self._stop = threading.Event()
        self._beat_at = 0.0
        self._thread = threading.Thread(target=self._drain_loop, name="lrviz-ray-drain", daemon=True)
        self._thread.start()

    # ---- the Executor interface ------------------------------------------------------------
    def submit(self, config: Any, *, retrain: bool = False) -> Submission:
        """Queue ``config`` on the cluster (or reuse its cached / in-flight run)."""
        info, reused = self.store.create_or_reuse(config, retrain=retrain)
        if not reused:
            self._launch([info.id], [_as_config(config)])
        return Submission(info.id, reused)

    def submit_many(self, configs: Sequence[Any], *, retrain: bool = False, group_id: str | None = None,
                    batched: bool = True) -> list[Submission]:
        """Submit several configs as one group (a sweep): cached ones are reused, the new
        ones go out as tasks, stackable ones together through ``train_batched`` when
        ``batched`` (one task per stack), the rest one task each."""
        group_id = group_id or "g" + new_run_id()[1:]
        configs = [_as_config(c) for c in configs]
        subs, fresh = [], []
        for config in configs:
            info, reused = self.store.create_or_reuse(config, retrain=retrain, group_id=group_id)
            subs.append(Submission(info.id, reused))
            if not reused and info.id not in {rid for rid, _ in fresh}:
                fresh.append((info.id, config))
        for group in _groups([c for _, c in fresh], batched):
            self._launch([fresh[i][0] for i in group], [fresh[i][1] for i in group])
        return subs

    submit_group = submit_many

    def cancel(self, run_id: str) -> None:
        """Queued: cancelled now (its pending task too). Running: stops within a batch or
        so and ends ``cancelled`` keeping its epochs."""
        self.store.request_cancel(run_id)
        self._cancel_task_of(run_id)

    def status(self, run_id: str) -> str:
        info = self.store.get(run_id)
        if info.kind != "train" and info.status == "queued":
            # LR range tests write to the store as they go: they stay on local workers
            self._local_executor().ensure_workers()
        return self.store.get(run_id).status

    def refresh(self) -> list[str]:
        """For the Runs page: local reconcile (our runs are heartbeated while alive)."""
        from lrviz.jobs.executor import reconcile

        return reconcile(self.store)

    def in_flight(self) -> list[str]:
        """Run ids this executor is still training or waiting for."""
        with self._lock:
            return list(self._tasks)

    def wait(self, run_ids: Sequence[str], timeout: float | None = None, poll: float = 0.2) -> bool:
        """Block until these runs have a final status in the store (True) or ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if all(self.store.get(r).status in TERMINAL for r in run_ids):
                with self._lock:  # and the drain thread has let go of them
                    if not any(r in self._tasks for r in run_ids):
                        return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll)

    def shutdown(self) -> None:
        """Stop the drain thread (runs in flight keep training on the cluster but are no
        longer mirrored; reconcile marks them failed once their heartbeat is stale)."""
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # the cluster may be gone already
            self._ray.kill(self.relay)

    # ---- submitting ------------------------------------------------------------------------
    def _sample_ref(self, config: Any) -> Any:
        """The ``ObjectRef`` of this config's data sample, put once per distinct sample."""
        key = (config.train_size, config.sample_seed, config.validation, config.validation_split)
        with self._lock:
            if key not in self._samples:
                from lrviz.data import load_sample

                self._samples[key] = self._ray.put(load_sample(*key))
            return self._samples[key]

    def _launch(self, run_ids: list[str], configs: list[Any]) -> None:
        # Held until the task is registered: its "started" event must find it (the drain
        # thread takes this lock to apply it), or a first start would look like a retry.
        with self._lock:
            self._launch_locked(run_ids, configs)

    def _launch_locked(self, run_ids: list[str], configs: list[Any]) -> None:
        try:
            ref = self._task_fn.options(
                num_cpus=self.cpus_per_run, max_retries=self.retries, retry_exceptions=False,
                name=f"lrviz:{run_ids[0]}" + (f"+{len(run_ids) - 1}" if len(run_ids) > 1 else ""),
            ).remote(self.relay, run_ids, [c.to_dict() for c in configs], self._sample_ref(configs[0]),
                     self.task_hook)
        except Exception as exc:  # e.g. the data is missing here: say so on every run
            for rid in run_ids:
                self.store.set_status(rid, "failed", error=f"could not submit to Ray: {_first_line(exc)}",
                                      only_if="queued")
            raise
        task = _Task(ref, list(run_ids))
        for rid in run_ids:
            self._tasks[rid] = task

    def _cancel_task_of(self, run_id: str) -> None:
        self._ray.get(self.relay.cancel.remote(run_id))
        with self._lock:
            self._cancel_sent.add(run_id)
            task = self._tasks.get(run_id)
            if task is None:
                return
            others_live = [r for r in task.run_ids if r != run_id and not self.store.cancel_requested(r)]
            if task.started:
                if not others_live and task.cancel_at is None:
                    task.cancel_at = time.monotonic()
            elif not others_live:
                self._ray.cancel(task.ref)  # still pending: nothing to keep

    def _local_executor(self) -> LocalExecutor:
        if self._local is None:
            self._local = LocalExecutor(self.store)
        return self._local

    # ---- the drain thread ------------------------------------------------------------------
    def _drain_loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._drain_once()
            except Exception:  # a locked file or a hiccup of Ray: try again next period
                traceback.print_exc()

    def _drain_once(self) -> None:
        with self._lock:
            tasks = {id(t): t for t in self._tasks.values()}
        if not tasks:  # nothing in flight sends events; an idle app costs no actor calls
            return
        self._apply(self._ray.get(self.relay.drain.remote()))
        self._mirror_cancels(tasks.values())
        refs = [t.ref for t in tasks.values()]
        done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        if done:
            # events a finished task sent before returning are in the relay already
            self._apply(self._ray.get(self.relay.drain.remote()))
            done_set = set(done)
            for task in tasks.values():
                if task.ref in done_set:
                    self._finish(task)
        now = time.monotonic()
        for task in tasks.values():
            if task.cancel_at is not None and now - task.cancel_at > CANCEL_GRACE_S:
                self._ray.cancel(task.ref, force=True)
                task.cancel_at = float("inf")
        if now - self._beat_at >= HEARTBEAT_EVERY_S:
            self._beat_at = now
            for task in tasks.values():
                if task.started:
                    for rid in task.run_ids:
                        if rid in self._tasks and rid not in task.foreign:
                            self.store.heartbeat(rid)

    def _mirror_cancels(self, tasks: Any) -> None:
        """Cancels asked through the store alone (another process, a CLI) reach the task."""
        live = {rid for t in tasks for rid in t.run_ids} - self._cancel_sent
        for rid in live:
            try:
                wanted = self.store.cancel_requested(rid)
            except Exception:
                continue
            if wanted:
                self._cancel_task_of(rid)

    def _apply(self, events: list[tuple]) -> None:
        for event in events:
            kind, payload = event[0], event[1:]
            try:
                if kind == "started":
                    self._started(*payload)
                elif kind == "epoch":
                    rid, epoch, metrics, seconds = payload
                    if not self._foreign(rid):
                        self.store.log_epoch(rid, epoch, metrics, seconds)
                        with self._lock:
                            task = self._tasks.get(rid)
                            if task is not None:
                                task.epochs[rid] = epoch
                elif kind == "lr":
                    rid, first_step, lrs = payload
                    if not self._foreign(rid):
                        self.store.log_step_lr(rid, first_step, lrs)
            except KeyError:  # the run was deleted meanwhile: tell its task to stop
                self._ray.get(self.relay.cancel.remote(payload[0] if kind != "started" else payload[0][0]))

    def _foreign(self, run_id: str) -> bool:
        with self._lock:
            task = self._tasks.get(run_id)
            return task is not None and run_id in task.foreign

    def _started(self, run_ids: list[str], host: str, pid: int) -> None:
        with self._lock:
            task = self._tasks.get(run_ids[0])
            retry = task is not None and task.started
            if task is not None:
                task.started = True
                task.attempts += 1
                task.node = f"{host}:{pid}"
        for rid in run_ids:
            if retry:  # Ray reran the task after its worker died: same run, from epoch 1
                self.store.heartbeat(rid)
                continue
            if not self.store.set_status(rid, "running", only_if="queued"):
                # cancelled before it started, or claimed by a local worker: do not train
                # twice, and leave its epochs and final status to whoever has it
                if task is not None:
                    with self._lock:
                        task.foreign.add(rid)
                self._ray.get(self.relay.cancel.remote(rid))
            else:
                self.store.heartbeat(rid)

    def _finish(self, task: _Task) -> None:
        try:
            results = self._ray.get(task.ref)
            outcomes = [(status, error) for status, _, error in results]
        except Exception as exc:
            outcomes = [self._failure(task, rid, exc) for rid in task.run_ids]
        for rid, (status, error) in zip(task.run_ids, outcomes):
            if rid in task.foreign:
                continue
            try:
                self.store.set_status(rid, status, error=error, only_if=("queued", "running"))
            except KeyError:
                pass  # deleted while training
        with self._lock:
            for rid in task.run_ids:
                self._cancel_sent.discard(rid)
                if self._tasks.get(rid) is task:
                    del self._tasks[rid]

    def _failure(self, task: _Task, run_id: str, exc: BaseException) -> tuple[str, str | None]:
        from ray import exceptions as rex

        if isinstance(exc, rex.TaskCancelledError) or self.store.cancel_requested(run_id):
            return "cancelled", None
        epoch = task.epochs.get(run_id, 0) + 1
        where = f" on {task.node}" if task.node else ""
        if isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError, rex.OutOfMemoryError,
                            rex.LocalRayletDiedError)):
            tries = f" (after {task.attempts} attempts)" if task.attempts > 1 else ""
            return "failed", (f"the Ray worker{where} died during epoch {epoch}{tries}: "
                              f"{type(exc).__name__}: {_first_line(exc)}")
        if isinstance(exc, rex.RayTaskError):
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return "failed", f"training failed{where} during epoch {epoch}: {type(cause).__name__}: {_first_line(cause)}"
        return "failed", f"Ray lost the task{where} during epoch {epoch}: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_config(config: Any) -> Any:
    from lrviz.config import RunConfig

    if isinstance(config, RunConfig):
        return config
    return RunConfig.from_dict({k: v for k, v in dict(config).items() if v is not None})


def _groups(configs: Sequence[Any], batched: bool) -> list[list[int]]:
    """Index groups, one task each: ``group_runs`` of the batched engine when it is there."""
    if batched and len(configs) > 1:
        try:
            from lrviz.training.batched import group_runs  # numpy only at import time
        except ImportError:
            pass
        else:
            return group_runs(configs)
    return [[i] for i in range(len(configs))]
