"""The Ray executor against a real local Ray cluster started by these tests.

One cluster for the whole session (``ray.init(num_cpus=2)``). Its worker processes are
started with ``LRVIZ_DATA_DIR`` pointing at an empty folder, so every run here proves the
data sample travelled through the object store: a worker that tried to read the dataset
would fail. Runs are tiny (500 images, 2 epochs) to stay well under a minute and a half.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ray

try:
    import ray
except ImportError:  # the optional extra: make ray-test installs it
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="the optional `ray` package is not installed "
                                                   "(pip install -r requirements-ray.txt, or make ray-test)")
REPO = Path(__file__).resolve().parent.parent
SMALL = {"epochs": 2, "train_size": 500, "batch_size": 64}


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray for the session; its workers cannot see the Fashion-MNIST files."""
    if ray is None:
        pytest.skip("the optional `ray` package is not installed")
    empty = tmp_path_factory.mktemp("no-data")
    saved = os.environ.get("LRVIZ_DATA_DIR")
    os.environ["LRVIZ_DATA_DIR"] = str(empty)   # inherited by the raylet and its workers
    try:
        for attempt in (1, 2):
            try:
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
                break
            except Exception as exc:
                # Ray's raylet gives its Python agents 15 s to start; on a machine busy
                # with other work they can miss it. The second try finds warm caches.
                ray.shutdown()
                if attempt == 2:
                    pytest.fail(f"a local Ray could not start twice ({exc}); see /tmp/ray/session_latest/logs")
    finally:  # the driver (the test process) keeps reading the real data
        if saved is None:
            os.environ.pop("LRVIZ_DATA_DIR", None)
        else:
            os.environ["LRVIZ_DATA_DIR"] = saved
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from lrviz.store import RunStore

    return RunStore(tmp_path_factory.mktemp("ray-store") / "lrviz.db")


@pytest.fixture(scope="module")
def executor(ray_cluster, store):
    from lrviz.jobs.ray_executor import RayExecutor

    ex = RayExecutor("auto", store=store)
    yield ex
    ex.shutdown()


class MemorySink:
    def __init__(self):
        self.epochs: list[tuple[int, dict]] = []
        self.lrs: dict[int, np.ndarray] = {}

    def on_epoch(self, epoch, metrics, seconds):
        self.epochs.append((epoch, dict(metrics)))

    def on_step_lr(self, first_step, lrs):
        self.lrs[first_step] = np.asarray(lrs)

    def should_stop(self):
        return False


def kill_worker_at_epoch_1(run_id: str, epoch: int) -> None:
    """Task hook: the Ray worker SIGKILLs itself right after epoch 1 reached the relay."""
    if epoch == 1:
        os.kill(os.getpid(), 9)


def kill_first_attempt(marker_dir: str):
    def hook(run_id: str, epoch: int) -> None:
        marker = Path(marker_dir) / run_id
        if epoch == 1 and not marker.exists():
            marker.write_text("killed once")
            os.kill(os.getpid(), 9)
    return hook


# -- without Ray configured, nothing changes --------------------------------------------------

def test_local_executor_without_address_and_ray_never_imported(tmp_path):
    code = ("import sys, lrviz.jobs, lrviz.sweep, lrviz.charts_sweep\n"
            "from lrviz.store import RunStore\n"
            f"ex = lrviz.jobs.get_executor(RunStore({str(tmp_path / 'x.db')!r}))\n"
            "print(type(ex).__name__, 'ray' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "LRVIZ_RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LocalExecutor", "False"]


# -- on a local cluster -----------------------------------------------------------------------

@needs_ray
def test_get_executor_picks_ray_when_address_set(ray_cluster, store, monkeypatch):
    from lrviz.jobs import get_executor
    from lrviz.jobs.ray_executor import RayExecutor

    monkeypatch.setenv("LRVIZ_RAY_ADDRESS", "auto")
    ex = get_executor(store)
    try:
        assert isinstance(ex, RayExecutor)
    finally:
        ex.shutdown()


@needs_ray
def test_sweep_of_four_lands_in_store_with_every_epoch(executor, store):
    from lrviz.sweep import expand_grid, submit_sweep, wait_for_runs

    sweep = expand_grid({"schedules": {"step": {"drop_rate": [0.5, 0.8], "epochs_drop": 1}},
                         "seeds": [0, 1], "run": SMALL})
    subs = submit_sweep(executor, sweep)
    assert len(subs) == 4 and not any(s.reused for s in subs)
    ids = [s.run_id for s in subs]
    # two stacks (one per seed) of two schedules each: the batched engine on Ray
    # (registered until they end, which takes seconds: TensorFlow has to start first)
    assert len({id(executor._tasks[r]) for r in ids}) == 2
    assert wait_for_runs(executor, ids, timeout=120), [store.get(r).status for r in ids]
    for rid, config in zip(ids, sweep.configs):
        info = store.get(rid)
        assert info.status == "finished", info.error
        assert info.group_id == sweep.group_id
        assert info.epochs_done == 2
        hist = store.history(rid)
        assert list(hist["epoch"]) == [1, 2]
        assert hist[["loss", "accuracy", "val_loss", "val_accuracy"]].notna().all().all()
        lrs = store.step_lr(rid)
        assert len(lrs) == 2 * config.steps_per_epoch and np.isfinite(lrs).all()
        # the LR halves (or x0.8) each epoch: the schedule ran remotely as configured
        np.testing.assert_allclose(hist["learning_rate"].iloc[1] / hist["learning_rate"].iloc[0],
                                   config.schedule_params["drop_rate"], rtol=1e-6)
    # submitting again reuses every cached run
    again = executor.submit_many(sweep.configs)
    assert [s.run_id for s in again] == ids and all(s.reused for s in again)


@needs_ray
def test_sweep_cli_runs_on_the_active_ray_cluster(ray_cluster, capsys, monkeypatch):
    import json

    from lrviz.cli import main
    from lrviz.store import RunStore

    monkeypatch.setenv("LRVIZ_RAY_ADDRESS", "auto")  # joins the session's cluster
    argv = ["sweep", "--schedule", "constant", "--set", "lr=[0.01,0.05]", "--seeds", "0,1",
            "--epochs", "1", "--train-size", "200", "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "ray" and len(out["runs"]) == 4
    assert all(r["status"] == "finished" and r["epochs_done"] == 1 for r in out["runs"]), out["runs"]
    assert [c["runs"] for c in out["configurations"]] == [2, 2]
    store = RunStore()
    assert {store.get(r["run_id"]).group_id for r in out["runs"]} == {out["group_id"]}


@needs_ray
def test_results_equal_local_run_training(executor, store):
    from lrviz.config import RunConfig
    from lrviz.training import run_training

    config = RunConfig.create("exponential", {"initial_lr": 0.1, "k": 0.3}, seed=3, **SMALL)
    sub = executor.submit(config)
    assert executor.wait([sub.run_id], timeout=90)
    assert store.get(sub.run_id).status == "finished", store.get(sub.run_id).error
    remote = store.history(sub.run_id)

    local = MemorySink()
    outcome = run_training(config, local)
    assert outcome.status == "finished"
    for (epoch, metrics), (_, row) in zip(local.epochs, remote.iterrows()):
        assert row["epoch"] == epoch
        for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            np.testing.assert_allclose(row[name], metrics[name], rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(store.step_lr(sub.run_id), np.concatenate(list(local.lrs.values())),
                               rtol=1e-6)


@needs_ray
def test_cancel_reaches_running_task_and_keeps_epochs(executor, store):
    from lrviz.config import RunConfig

    config = RunConfig.create("constant", {"lr": 0.05}, seed=5, epochs=200, train_size=500, batch_size=64)
    rid = executor.submit(config).run_id
    deadline = time.monotonic() + 60
    # live: epochs show up in the store while the run is still running
    while store.get(rid).epochs_done < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    info = store.get(rid)
    assert info.status == "running" and info.epochs_done >= 1, info
    executor.cancel(rid)
    assert executor.wait([rid], timeout=30)
    info = store.get(rid)
    assert info.status == "cancelled"
    assert 1 <= info.epochs_done < 200
    assert len(store.history(rid)) == info.epochs_done


@needs_ray
def test_cancel_before_start_cancels_pending_task(executor, store):
    from lrviz.config import RunConfig

    # three long runs on two CPUs: the third waits in Ray's queue
    configs = [RunConfig.create("constant", {"lr": 0.01 * (i + 1)}, seed=7, epochs=200, train_size=500)
               for i in range(3)]
    ids = [executor.submit(c).run_id for c in configs]
    executor.cancel(ids[2])
    assert store.get(ids[2]).status == "cancelled"
    for rid in ids[:2]:
        executor.cancel(rid)
    assert executor.wait(ids, timeout=60)
    assert [store.get(r).status for r in ids] == ["cancelled"] * 3
    assert store.get(ids[2]).epochs_done == 0


@needs_ray
def test_run_claimed_elsewhere_is_left_to_its_owner(executor, store):
    from lrviz.config import RunConfig

    config = RunConfig.create("constant", {"lr": 0.04}, seed=9, **SMALL)
    rid = executor.submit(config).run_id
    # a local worker claims it first (as LocalExecutor's claim_next would)
    assert store.set_status(rid, "running", only_if="queued")
    deadline = time.monotonic() + 60
    while rid in executor.in_flight() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rid not in executor.in_flight()
    info = store.get(rid)
    assert info.status == "running" and info.epochs_done == 0  # Ray neither trained nor closed it
    assert store.history(rid).empty


@needs_ray
def test_killed_worker_ends_failed_with_its_epochs(ray_cluster, store):
    from lrviz.config import RunConfig
    from lrviz.jobs.ray_executor import RayExecutor

    ex = RayExecutor("auto", store=store, retries=0, task_hook=kill_worker_at_epoch_1)
    try:
        config = RunConfig.create("constant", {"lr": 0.02}, seed=11, epochs=3, train_size=500)
        rid = ex.submit(config).run_id
        assert ex.wait([rid], timeout=90)
    finally:
        ex.shutdown()
    info = store.get(rid)
    assert info.status == "failed"
    assert "died during epoch 2" in info.error and "Ray worker" in info.error
    assert info.epochs_done == 1 and len(store.history(rid)) == 1


@needs_ray
def test_killed_worker_is_retried_when_allowed(ray_cluster, store, tmp_path):
    from lrviz.config import RunConfig
    from lrviz.jobs.ray_executor import RayExecutor

    ex = RayExecutor("auto", store=store, retries=1, task_hook=kill_first_attempt(str(tmp_path)))
    try:
        config = RunConfig.create("constant", {"lr": 0.03}, seed=12, epochs=2, train_size=500)
        rid = ex.submit(config).run_id
        assert ex.wait([rid], timeout=90)
    finally:
        ex.shutdown()
    info = store.get(rid)
    assert (tmp_path / rid).exists()  # the first attempt really was killed
    assert info.status == "finished", info.error
    assert list(store.history(rid)["epoch"]) == [1, 2]


@needs_ray
@pytest.mark.parametrize("address, ok", [("auto", True), ("ray://head:10001", True), ("10.0.0.1:6379", True),
                                         ("", False), (None, False), ("yes", False), ("head:port", False)])
def test_address_is_checked(address, ok):
    from lrviz.jobs.ray_executor import check_address

    if ok:
        assert check_address(address) == address
    else:
        with pytest.raises(ValueError, match="LRVIZ_RAY_ADDRESS must be `auto`"):
            check_address(address)
