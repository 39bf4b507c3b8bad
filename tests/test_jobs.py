"""Background jobs: real worker processes on a real SQLite cache.

The fast tests swap the trainer for ``fake_training`` below (a worker imports it as
``tests.test_jobs:fake_training``), so the process machinery (queue, warm worker, limits,
cancel, crashes) is tested in seconds. The ``slow`` tests train the real Keras model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from lrviz.jobs import LocalExecutor, Submission, get_executor, pid_alive, reconcile
from lrviz.store import RunStore

FAKE = "tests.test_jobs:fake_training"


def fake_training(config, sink):
    """Stands in for ``run_training``: one 'epoch' per ``$FAKE_EPOCH_S`` seconds.

    ``$FAKE_MODE=raise`` fails in epoch 2, ``slow`` sleeps 60 s per epoch.
    """
    mode = os.environ.get("FAKE_MODE", "")
    pause = 60.0 if mode == "slow" else float(os.environ.get("FAKE_EPOCH_S", "0.05"))
    for epoch in range(1, config.epochs + 1):
        if mode == "raise" and epoch == 2:
            raise RuntimeError("the fake trainer blew up on purpose")
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:  # like the Keras callback: asks every batch
            if sink.should_stop():
                return SimpleNamespace(status="cancelled", epochs_done=epoch - 1, error=None)
            time.sleep(0.02)
        sink.on_epoch(epoch, {"loss": 1.0 / epoch, "learning_rate": config.schedule_params["lr"]},
                      pause)
    return SimpleNamespace(status="finished", epochs_done=config.epochs, error=None)


def _config(epochs: int = 3, lr: float = 0.01, **run):
    from lrviz.config import RunConfig

    return RunConfig.create("constant", {"lr": lr}, None, "sgd", {}, epochs=epochs,
                            train_size=run.pop("train_size", 100), **run)


def _config_or_skip():
    try:
        _config()
    except Exception as exc:  # noqa: BLE001 - whatever stops configs from being built
        pytest.skip(f"RunConfig.create does not work yet: {type(exc).__name__}: {exc}")


def _wait(predicate, timeout: float, what, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def _wait_status(store: RunStore, run_id: str, statuses, timeout: float = 60.0) -> str:
    def describe() -> str:
        info = store.get(run_id)
        return f"run {run_id} to become {statuses} (now {info.status}, error {info.error!r})"

    return _wait(lambda: store.get(run_id).status if store.get(run_id).status in statuses else None,
                 timeout, describe)


@pytest.fixture
def store(tmp_cache):
    store = RunStore()
    yield store
    # Stop only the worker processes this test started (their pids are in its own store).
    for worker in store.workers():
        if worker.pid and pid_alive(worker.pid):
            os.kill(worker.pid, signal.SIGKILL)


@pytest.fixture
def fake_executor(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_EPOCH_S", "0.05")
    return LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)


# -- without workers -------------------------------------------------------------------------


def test_import_pulls_in_neither_tensorflow_nor_streamlit():
    code = ("import sys, lrviz.jobs, lrviz.jobs.worker, lrviz.store; "
            "print([m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_get_executor_is_local_unless_ray_is_asked_for(store, monkeypatch):
    monkeypatch.delenv("LRVIZ_RAY_ADDRESS", raising=False)
    executor = get_executor(store)
    assert isinstance(executor, LocalExecutor) and executor.store is store
    monkeypatch.setenv("LRVIZ_RAY_ADDRESS", "auto")
    try:
        import lrviz.jobs.ray_executor  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="LRVIZ_RAY_ADDRESS is set .* unset LRVIZ_RAY_ADDRESS"):
            get_executor(store)


def test_max_concurrent_is_validated(store):
    with pytest.raises(ValueError, match="Argument `max_concurrent` must be a whole number >= 1. "
                                         "Received: max_concurrent=0"):
        LocalExecutor(store, max_concurrent=0)


def test_reconcile_fails_a_running_run_whose_process_is_dead(store):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_id = store.create_run({"epochs": 5}, status="running")
    store.heartbeat(run_id, gone.pid)
    store.log_epoch(run_id, 1, {"loss": 1.0}, 1.0)
    alive = store.create_run({"epochs": 5, "seed": 1}, status="running")
    store.heartbeat(alive, os.getpid())
    assert reconcile(store) == [run_id]
    info = store.get(run_id)
    assert info.status == "failed" and info.finished_at is not None
    assert f"worker process {gone.pid} died" in info.error and "during epoch 2" in info.error
    assert store.get(alive).status == "running" and store.history(run_id)["epoch"].tolist() == [1]
    assert reconcile(store) == []


def test_reconcile_fails_a_run_whose_heartbeat_went_silent(store):
    run_id = store.create_run({"epochs": 5}, status="running")
    store.heartbeat(run_id, os.getpid())  # alive pid, but silent for a long time
    assert reconcile(store, stale_after=60.0) == []
    time.sleep(0.2)
    assert reconcile(store, stale_after=0.1) == [run_id]
    assert "stopped responding" in store.get(run_id).error


# -- with (fake-trainer) worker processes ------------------------------------------------------


def test_submit_trains_in_a_worker_then_reuses_and_the_idle_worker_exits(store, fake_executor):
    config = _config(epochs=3)
    sub = fake_executor.submit(config)
    assert sub == Submission(sub.run_id, False)
    assert _wait_status(store, sub.run_id, ("finished",), 30) == "finished"
    info = store.get(sub.run_id)
    assert info.epochs_done == 3 and info.pid != os.getpid() and info.error is None
    assert store.history(sub.run_id)["loss"].tolist() == pytest.approx([1.0, 0.5, 1 / 3])
    assert fake_executor.submit(config) == Submission(sub.run_id, True)  # cache hit
    again = fake_executor.submit(config, retrain=True)
    assert not again.reused and again.run_id != sub.run_id
    assert fake_executor.status(again.run_id) in ("queued", "running", "finished")
    _wait_status(store, again.run_id, ("finished",), 30)
    assert store.get(again.run_id).pid == info.pid  # the same warm worker took it
    _wait(lambda: not store.workers() and not pid_alive(info.pid), 20, "the idle worker to exit")
    log = (store.path.parent / "logs")
    assert any("idle, exiting" in p.read_text() for p in log.iterdir())


def test_two_sessions_never_start_more_workers_than_allowed(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")
    sessions = [LocalExecutor(RunStore(), max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
                for _ in range(2)]
    subs = [sessions[i % 2].submit(_config(epochs=2, seed=i)) for i in range(4)]
    peak, deadline = 0, time.monotonic() + 120
    while any(store.get(s.run_id).status != "finished" for s in subs):
        running = store.list_runs(statuses=["running"])
        live = [w for w in store.workers() if w.pid is None or pid_alive(w.pid)]
        peak = max(peak, len(running), len(live))
        sessions[0].refresh()
        time.sleep(0.05)
        assert time.monotonic() < deadline, [store.get(s.run_id).status for s in subs]
    assert peak == 1
    starts = [store.get(s.run_id).started_at for s in subs]
    assert starts == sorted(starts)  # oldest first


def test_max_concurrent_two_runs_two_at_once(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_EPOCH_S", "0.5")
    executor = LocalExecutor(store, max_concurrent=2, idle_timeout=1.0, trainer=FAKE)
    subs = [executor.submit(_config(epochs=3, seed=i)) for i in range(2)]
    _wait(lambda: len(store.list_runs(statuses=["running"])) == 2, 60, "two runs at once")
    for s in subs:
        _wait_status(store, s.run_id, ("finished",))
    assert len({store.get(s.run_id).pid for s in subs}) == 2


def test_cancel_queued_and_running_runs(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_EPOCH_S", "0.5")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    first = executor.submit(_config(epochs=50))
    second = executor.submit(_config(epochs=50, seed=1))
    executor.cancel(second.run_id)
    assert store.get(second.run_id).status == "cancelled"  # at once, never trained
    _wait(lambda: store.get(first.run_id).epochs_done >= 1, 60, "the first epoch")
    executor.cancel(first.run_id)
    asked = time.monotonic()
    assert _wait_status(store, first.run_id, ("cancelled",), 10) == "cancelled"
    assert time.monotonic() - asked < 2.0  # within one (0.5 s) epoch plus the check interval
    kept = store.get(first.run_id).epochs_done
    assert kept >= 1 and store.history(first.run_id)["epoch"].tolist() == list(range(1, kept + 1))
    assert store.get(second.run_id).epochs_done == 0


def test_a_trainer_exception_fails_the_run_with_its_message(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_MODE", "raise")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    sub = executor.submit(_config(epochs=3))
    assert _wait_status(store, sub.run_id, ("failed",), 30) == "failed"
    info = store.get(sub.run_id)
    assert "RuntimeError: the fake trainer blew up on purpose" in info.error
    assert info.epochs_done == 1


def test_a_trainer_that_cannot_load_fails_runs_instead_of_leaving_them_queued(store):
    _config_or_skip()
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer="tests.nowhere:train")
    sub = executor.submit(_config(epochs=1))
    assert _wait_status(store, sub.run_id, ("failed",), 30) == "failed"
    assert "could not load the trainer tests.nowhere:train" in store.get(sub.run_id).error


def test_a_worker_killed_by_sigkill_leaves_its_run_failed(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_MODE", "slow")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    sub = executor.submit(_config(epochs=3))
    _wait_status(store, sub.run_id, ("running",), 30)
    pid = store.get(sub.run_id).pid
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: executor.status(sub.run_id) == "failed", 10, "reconcile to fail the run")
    error = store.get(sub.run_id).error
    # the signal is named when this process reaped the worker; otherwise (another process
    # noticed the dead pid first) the cause is given as "killed or out of memory"
    assert (f"worker process {pid} died (ended by SIGKILL)" in error
            or f"worker process {pid} died (killed or out of memory)" in error), error
    assert "during epoch 1" in error
    assert "Last lines of the worker log" in error


def test_a_worker_stopped_by_sigterm_marks_its_run_interrupted(store, monkeypatch):
    _config_or_skip()
    monkeypatch.setenv("FAKE_MODE", "slow")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    sub = executor.submit(_config(epochs=3))
    _wait_status(store, sub.run_id, ("running",), 30)
    pid = store.get(sub.run_id).pid
    os.kill(pid, signal.SIGTERM)
    assert _wait_status(store, sub.run_id, ("interrupted",), 10) == "interrupted"
    assert "stopped by SIGTERM during epoch 1" in store.get(sub.run_id).error
    _wait(lambda: not store.workers(), 10, "the worker to remove its row")


# -- real training (slow) -------------------------------------------------------------------------


def _real_or_skip():
    try:
        from lrviz.training import run_training  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"lrviz.training.run_training does not import yet: {exc}")
    _config_or_skip()


@pytest.mark.slow
def test_real_runs_in_a_warm_worker_finish_and_diverge(store):
    _real_or_skip()
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=2.0)
    good = executor.submit(_config(epochs=2, train_size=1000))
    from lrviz.config import RunConfig

    huge = RunConfig.create("custom", {"expression": "1000 + 0 * t"}, None, "sgd", {}, epochs=2,
                            train_size=1000)
    bad = executor.submit(huge)  # LR 1000: the loss explodes to NaN in the first epoch
    assert _wait_status(store, good.run_id, ("finished", "failed"), 240) == "finished", \
        store.get(good.run_id).error
    history = store.history(good.run_id)
    assert history["epoch"].tolist() == [1, 2]
    assert history["val_accuracy"].between(0.3, 1.0).all()
    assert history["learning_rate"].tolist() == pytest.approx([0.01, 0.01])
    assert len(store.step_lr(good.run_id)) == 2 * _config(train_size=1000).steps_per_epoch
    assert _wait_status(store, bad.run_id, ("diverged", "failed", "finished"), 120) == "diverged", \
        store.get(bad.run_id).error
    first, second = store.get(good.run_id), store.get(bad.run_id)
    assert first.pid == second.pid  # one warm worker
    # TensorFlow was already imported: the next run starts at once (slack for a busy machine)
    gap = second.started_at - first.finished_at
    assert gap < 5.0, f"second run started {gap:.1f} s after the first finished"


@pytest.mark.slow
def test_real_run_cancel_and_sigkill(store):
    _real_or_skip()
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=2.0)
    first = executor.submit(_config(epochs=200, train_size=1000))
    _wait(lambda: store.get(first.run_id).epochs_done >= 1, 240, "the first real epoch")
    executor.cancel(first.run_id)
    assert _wait_status(store, first.run_id, ("cancelled", "failed"), 30) == "cancelled"
    assert store.get(first.run_id).epochs_done >= 1 and not store.history(first.run_id).empty
    second = executor.submit(_config(epochs=200, train_size=1000, seed=1))
    _wait(lambda: store.get(second.run_id).epochs_done >= 1, 120, "an epoch of the second run")
    pid = store.get(second.run_id).pid
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: executor.status(second.run_id) == "failed", 10, "the killed run to fail")
    assert f"worker process {pid} died" in store.get(second.run_id).error
