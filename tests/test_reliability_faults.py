"""Faults tried on purpose: real worker processes, a real SQLite cache, a temporary cache folder.

What is broken, and how it is simulated:

* a worker killed mid-epoch: ``SIGKILL`` to the real worker process;
* the data missing, truncated or not gzip: ``LRVIZ_DATA_DIR`` at a temporary folder;
* the cache folder read-only: tests run as root, where ``chmod 0o555`` stops nothing.
  Two honest stand-ins: the folder made immutable with ``chattr +i`` (root cannot create
  a file in it either; skipped where the file system refuses chattr), and
  ``LRVIZ_CACHE_DIR`` pointing *under a regular file*, so the folder cannot exist;
* the disk full: the store's connection raises ``sqlite3.OperationalError('database or
  disk is full')`` on chosen write statements, exactly where SQLite would raise it;
* the SQLite file locked: a second process holds ``BEGIN EXCLUSIVE`` for 3 s;
* two sessions pressing Train at once: two processes, released by one barrier, each
  calling ``LocalExecutor.submit`` on the same config.

For each: the run ends in a truthful status, finished epochs stay in the store, nothing
is half-written, and the app keeps serving (AppTest of the Runs page has no exception).
The fast tests swap the trainer for ``fake_training`` below; ``slow`` ones train Keras.
"""

from __future__ import annotations

import gzip
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

from lrviz.cli import main
from lrviz.config import RunConfig
from lrviz.data import FILES, find_data_dir
from lrviz.jobs import LocalExecutor, pid_alive
from lrviz.jobs.worker import Worker
from lrviz.settings import REPO_ROOT
from lrviz.store import RunStore, StoreError

APP = str(REPO_ROOT / "app.py")
FAKE = "tests.test_reliability_faults:fake_training"
needs_data = pytest.mark.skipif(find_data_dir() is None, reason="real Fashion-MNIST not installed")


def fake_training(config, sink):
    """Stands in for ``run_training`` in worker processes: one epoch per ``$REL_EPOCH_S``
    seconds, asking ``should_stop`` as the Keras callback does every batch."""
    pause = float(os.environ.get("REL_EPOCH_S", "0.05"))
    for epoch in range(1, config.epochs + 1):
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            if sink.should_stop():
                return SimpleNamespace(status="cancelled", epochs_done=epoch - 1, error=None)
            time.sleep(0.01)
        sink.on_epoch(epoch, {"loss": 1.0 / epoch, "accuracy": 0.5, "val_loss": 1.0,
                              "val_accuracy": 0.5, "learning_rate": 0.01}, pause)
    return SimpleNamespace(status="finished", epochs_done=config.epochs, error=None)


def _config(epochs: int = 3, **run: Any) -> RunConfig:
    return RunConfig.create("constant", {"lr": 0.01}, None, "sgd", None, epochs=epochs,
                            train_size=run.pop("train_size", 100), **run)


def _wait(predicate: Callable[[], Any], timeout: float, what: Callable[[], str] | str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def _epochs(store: RunStore, run_id: str) -> list[int]:
    return store.history(run_id)["epoch"].tolist()


@pytest.fixture
def store(tmp_cache):
    store = RunStore()
    yield store
    for worker in store.workers():  # only the workers this test started (its own cache)
        if worker.pid and pid_alive(worker.pid):
            os.kill(worker.pid, signal.SIGKILL)


def _runs_page():
    """The Runs page as a fresh session sees it; it must serve whatever happened before."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    return at


def _page_text(at) -> str:
    parts = [e.value for kind in ("error", "warning", "info", "success", "markdown", "caption")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


# -- a worker killed mid-epoch -------------------------------------------------------------------


def test_worker_killed_mid_epoch_fails_the_run_and_keeps_its_epochs(store, monkeypatch):
    monkeypatch.setenv("REL_EPOCH_S", "0.4")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    sub = executor.submit(_config(epochs=50))
    _wait(lambda: store.get(sub.run_id).epochs_done >= 2, 60, "two epochs")
    pid = store.get(sub.run_id).pid
    os.kill(pid, signal.SIGKILL)  # mid-epoch: the next epoch is 0.4 s long
    assert _wait(lambda: executor.status(sub.run_id) == "failed", 15, "the run to fail")
    info = store.get(sub.run_id)
    kept = info.epochs_done
    assert kept >= 2 and _epochs(store, sub.run_id) == list(range(1, kept + 1))
    assert f"worker process {pid} died" in info.error and f"during epoch {kept + 1}" in info.error
    time.sleep(0.5)  # nothing more arrives from a dead worker
    assert store.get(sub.run_id).epochs_done == kept and store.get(sub.run_id).status == "failed"
    at = _runs_page()
    assert any("died" in e.value and e.value.startswith("Failed") for e in at.error), _page_text(at)


@pytest.mark.slow
@needs_data
def test_real_worker_killed_mid_epoch_keeps_finished_epochs(store):
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=2.0)
    # 1000 images in batches of 8: 125 steps per epoch, long enough to land mid-epoch
    sub = executor.submit(_config(epochs=3, train_size=1000, batch_size=8))
    _wait(lambda: store.get(sub.run_id).epochs_done >= 1, 240, "the first real epoch")
    pid = store.get(sub.run_id).pid
    os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: executor.status(sub.run_id) == "failed", 15, "the killed run to fail")
    info = store.get(sub.run_id)
    history = store.history(sub.run_id)
    assert 1 <= info.epochs_done < 3 and history["epoch"].tolist() == list(range(1, info.epochs_done + 1))
    assert np.isfinite(history["val_accuracy"]).all() and f"worker process {pid} died" in info.error
    _runs_page()


# -- data missing or damaged ---------------------------------------------------------------------


def _broken_data(folder: Path, kind: str) -> Path:
    """A data folder whose files are missing, truncated (the first 2,000 bytes of the real
    gzip files) or not gzip at all."""
    folder.mkdir()
    real = find_data_dir()
    for name in FILES:
        if kind == "truncated":
            if real is None:
                with gzip.open(folder / name, "wb") as fh:
                    fh.write(os.urandom(50_000))
                (folder / name).write_bytes((folder / name).read_bytes()[:2000])
            else:
                with open(real / name, "rb") as src:
                    (folder / name).write_bytes(src.read(2000))
        elif kind == "corrupt":
            (folder / name).write_bytes(b"this is not a gzip file\n" * 100)
    return folder


@pytest.mark.parametrize("kind, says", [("missing", "is missing"), ("truncated", "cannot be read"),
                                        ("corrupt", "cannot be read")])
def test_train_cli_with_broken_data_exits_2_with_the_data_sentence(tmp_path, tmp_cache, kind, says):
    data = _broken_data(tmp_path / "data", kind)
    env = {**os.environ, "LRVIZ_CACHE_DIR": str(tmp_cache), "LRVIZ_DATA_DIR": str(data),
           "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "lrviz", "train", "constant", "--epochs", "1",
                           "--train-size", "100"], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr.count("\n") == 1
    line = proc.stderr
    assert line.startswith("error: Fashion-MNIST file ") and str(data) in line and says in line
    assert "dataset-fashion-mnist" in line and "LRVIZ_DATA_DIR" in line
    assert RunStore(tmp_cache / "lrviz.db").list_runs() == []  # nothing half-written


@pytest.mark.slow
def test_worker_run_with_truncated_data_ends_failed_with_the_data_sentence(store, tmp_path, monkeypatch):
    data = _broken_data(tmp_path / "data", "truncated")
    monkeypatch.setenv("LRVIZ_DATA_DIR", str(data))  # the worker inherits the environment
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0)  # the real trainer
    sub = executor.submit(_config(epochs=2))
    assert _wait(lambda: store.get(sub.run_id).status in ("failed", "finished"), 240,
                 lambda: f"the run to end (now {store.get(sub.run_id).status})")
    info = store.get(sub.run_id)
    assert info.status == "failed" and info.epochs_done == 0
    sentence = info.error  # the person's sentence alone: no traceback lines, no class name
    assert sentence.startswith("Fashion-MNIST file") and str(data) in sentence
    assert "\n" not in sentence
    assert "cannot be read" in sentence and "to fix it" in sentence
    at = _runs_page()
    assert any("Fashion-MNIST file" in e.value for e in at.error), _page_text(at)


# -- the cache folder read-only ----------------------------------------------------------------------


@pytest.fixture(params=["immutable folder", "folder under a file"])
def unwritable_cache(request, tmp_path, monkeypatch):
    """LRVIZ_CACHE_DIR where no file can be created, even by root (see the module doc)."""
    if request.param == "immutable folder":
        cache = tmp_path / "ro-cache"
        cache.mkdir()
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", str(cache)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE)")
        request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(cache)]))
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        cache = blocker / "cache"
    monkeypatch.setenv("LRVIZ_CACHE_DIR", str(cache))
    return cache


@needs_data
def test_train_cli_with_an_unwritable_cache_says_so_in_one_line(unwritable_cache):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "lrviz", "train", "constant", "--epochs", "1",
                           "--train-size", "100"], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: The run cache {unwritable_cache} cannot be opened")
    assert "LRVIZ_CACHE_DIR" in proc.stderr
    assert not any(unwritable_cache.glob("*")) if unwritable_cache.is_dir() else True


def test_store_with_an_unwritable_cache_raises_one_clear_error(unwritable_cache):
    with pytest.raises(StoreError, match=r"The run cache .* cannot be opened .*LRVIZ_CACHE_DIR"):
        RunStore()


def test_train_button_with_an_unwritable_cache_shows_a_message(unwritable_cache):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception  # the Schedules page never needs the cache to draw
    at.number_input(key="lab.run.epochs").set_value(1)
    at.number_input(key="lab.run.train_size").set_value(100)
    at.multiselect(key="lab.chosen").set_value(["constant"]).run()
    at.button(key="train.go").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    # names the folder: "The run cache <dir> cannot be opened" or "Not a directory: <dir>"
    assert any("not submitted" in e and str(unwritable_cache) in e for e in errors), errors


def test_runs_page_with_an_unwritable_cache_shows_a_message(unwritable_cache):
    at = _runs_page()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and str(unwritable_cache) in errors[0], errors


# -- the disk full (simulated) ---------------------------------------------------------------------


class _FullDisk:
    """Wraps a connection; raises SQLite's disk-full error on the write statements
    ``refuse(sql, args)`` picks, as SQLite raises it: from ``execute``."""

    def __init__(self, conn: sqlite3.Connection, refuse: Callable[[str, tuple], bool]):
        self._conn, self._refuse = conn, refuse

    def execute(self, sql: str, args: Any = ()):
        if self._refuse(sql.lstrip().upper(), tuple(args) if isinstance(args, (list, tuple)) else ()):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, args)

    def executemany(self, sql: str, rows: Any):
        if self._refuse(sql.lstrip().upper(), ()):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@pytest.fixture
def disk(monkeypatch):
    """``disk.refuse = predicate`` fills the disk for those statements; None empties it."""
    state = SimpleNamespace(refuse=None)
    original = RunStore._conn

    def conn(self):
        real = original(self)
        return real if state.refuse is None else _FullDisk(real, state.refuse)

    monkeypatch.setattr(RunStore, "_conn", conn)
    return state


def test_disk_full_on_create_writes_nothing_and_says_so(store, disk):
    disk.refuse = lambda sql, args: sql.startswith(WRITES)
    with pytest.raises(StoreError, match=r"run cache .*lrviz.db cannot be written \(database or "
                                         r"disk is full\); nothing was saved"):
        store.create_or_reuse(_config())
    disk.refuse = None
    assert store.list_runs() == []
    # the connection is usable again at once: no transaction was left open
    info, reused = store.create_or_reuse(_config())
    assert not reused and store.get(info.id).status == "queued"


def test_disk_full_mid_training_fails_the_run_and_keeps_earlier_epochs(store, disk):
    """The worker's own code path (claim, sink, final status) with the disk filling up
    during epoch 3: the run ends failed saying why, epochs 1 and 2 stay."""
    run_id = store.create_run(_config(epochs=5))
    worker = Worker(store, "test-worker", FAKE, idle_timeout=0.1)
    info = store.claim_next("test-worker")
    disk.refuse = lambda sql, args: "INTO EPOCHS" in sql and len(args) > 1 and args[1] >= 3
    worker._handle(fake_training, info)
    disk.refuse = None
    info = store.get(run_id)
    assert info.status == "failed" and "database or disk is full" in info.error
    assert info.epochs_done == 2 and _epochs(store, run_id) == [1, 2]
    at = _runs_page()
    assert any("disk is full" in e.value for e in at.error), _page_text(at)


@needs_data
def test_train_cli_with_a_full_disk_exits_with_one_line_and_no_run(disk, capsys, tmp_cache):
    disk.refuse = lambda sql, args: sql.startswith(WRITES)
    assert main(["train", "constant", "--epochs", "1", "--train-size", "100"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "database or disk is full" in err
    disk.refuse = None
    assert RunStore().list_runs() == []


def test_train_button_with_a_full_disk_shows_a_message_and_writes_nothing(store, disk):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.number_input(key="lab.run.epochs").set_value(1)
    at.number_input(key="lab.run.train_size").set_value(100)
    at.multiselect(key="lab.chosen").set_value(["constant"]).run()
    disk.refuse = lambda sql, args: sql.startswith(WRITES)
    at.button(key="train.go").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("not submitted" in e and "disk is full" in e for e in errors), errors
    disk.refuse = None
    assert store.list_runs() == []
    _runs_page()


# -- the SQLite file locked by another writer ------------------------------------------------------


def test_writes_wait_for_a_lock_held_three_seconds_and_succeed(store, monkeypatch):
    monkeypatch.setenv("REL_EPOCH_S", "0.25")
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    first = executor.submit(_config(epochs=12))
    _wait(lambda: store.get(first.run_id).epochs_done >= 1, 60, "the first epoch")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, time\n"
        f"c = sqlite3.connect({str(store.path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "time.sleep(3); c.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        second = executor.submit(_config(epochs=2, seed=1))  # a session pressing Train now
        waited = time.monotonic() - locked_at
        assert holder.wait(10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert waited > 2.0, f"the write did not wait for the lock ({waited:.2f} s)"
    assert not second.reused and store.get(second.run_id).status in ("queued", "running", "finished")
    for sub, epochs in ((first, 12), (second, 2)):
        assert _wait(lambda s=sub: store.get(s.run_id).status == "finished", 60,
                     lambda s=sub: f"{s.run_id} to finish (now {store.get(s.run_id).status})")
        assert _epochs(store, sub.run_id) == list(range(1, epochs + 1))  # no epoch lost
    _runs_page()


# -- two sessions pressing Train on the same config at once -------------------------------------------


def _press_train(db: str, config: dict, barrier, out) -> None:
    store = RunStore(db)
    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=1.0, trainer=FAKE)
    config = RunConfig.from_dict(config)
    barrier.wait(30)  # both interpreters are up and connected: press at the same moment
    sub = executor.submit(config)
    out.put((sub.run_id, sub.reused))


def test_two_sessions_pressing_train_at_once_make_one_run(store, monkeypatch):
    monkeypatch.setenv("REL_EPOCH_S", "0.05")
    ctx = mp.get_context("spawn")  # fresh interpreters: no connection inherited
    barrier, out = ctx.Barrier(2), ctx.Queue()
    config = _config(epochs=3)
    procs = [ctx.Process(target=_press_train, args=(str(store.path), config.to_dict(), barrier, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len({run_id for run_id, _ in results}) == 1, results
    assert sorted(reused for _, reused in results) == [False, True]
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0].config_hash == config.config_hash()
    run_id = runs[0].id
    assert _wait(lambda: store.get(run_id).status == "finished", 60, "the one run to finish")
    assert _epochs(store, run_id) == [1, 2, 3]
    at = _runs_page()
    assert not any(e.value.startswith("Failed") for e in at.error)


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/lr_finder.py", "pages/schedules.py"])
def test_other_pages_with_an_unwritable_cache_keep_serving(unwritable_cache, page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    if page != "pages/schedules.py":  # the Schedules page draws without the cache
        errors = [e.value for e in at.error]
        assert any(str(unwritable_cache) in e for e in errors), errors
