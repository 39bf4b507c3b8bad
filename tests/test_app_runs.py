"""AppTest of the Runs page with runs put straight into the store."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from lrviz.config import RunConfig
from lrviz.store import RunStore
from lrviz.ui.runs import eta_seconds, format_seconds, visible_runs

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _runs_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    return at


def _config(lr: float = 0.01, epochs: int = 5) -> RunConfig:
    return RunConfig.create("constant", {"lr": lr}, None, "sgd", None, epochs=epochs, train_size=100)


def _running_run(store: RunStore, epochs_logged: int = 2) -> str:
    run_id = store.create_run(_config(), name="live-one")
    claimed = store.claim_next("test-worker", pid=os.getpid())
    assert claimed is not None and claimed.id == run_id
    for epoch in range(1, epochs_logged + 1):
        store.log_epoch(run_id, epoch, {"loss": 1.0 / epoch, "accuracy": 0.5 + epoch / 10,
                                        "val_loss": 1.2 / epoch, "val_accuracy": 0.4 + epoch / 10,
                                        "learning_rate": 0.01}, seconds=3.0)
    store.heartbeat(run_id, os.getpid())
    return run_id


def _values(array) -> list[float]:
    """A Plotly data array as a list, whether plain or a base64 typed array."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_empty_state_points_to_schedules():
    at = _runs_page()
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_running_run_shows_progress_eta_metrics_and_charts():
    store = RunStore()
    run_id = _running_run(store)
    at = _runs_page()
    texts = _progress_texts(at)
    assert any(t.startswith("epoch 2/5") and "ETA 9s" in t for t in texts), texts
    assert any(f"`{run_id}`" in c.value for c in at.caption)
    assert any("val_accuracy **0.6**" in m.value for m in at.markdown)
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # loss, val_loss, accuracy, val_accuracy, learning_rate
    spec = json.loads(charts[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["live-one"]  # a renamed run goes by its name
    assert any(_config().label() in c.value for c in at.caption)  # ... and says what it trains
    assert _values(spec["data"][0]["y"]) == [1.0, 0.5]  # the loss of epochs 1 and 2
    assert at.button(key=f"runs.cancel.{run_id}")


def test_failed_run_shows_its_error():
    store = RunStore()
    run_id = store.create_run(_config(0.02), name="broken")
    store.set_status(run_id, "failed", error="worker process 4242 died (ended by SIGKILL)")
    at = _runs_page()
    errors = [e.value for e in at.error]
    assert any("SIGKILL" in e and e.startswith("Failed") for e in errors), errors


def test_cancel_button_cancels_a_queued_run():
    store = RunStore()
    run_id = store.create_run(_config(0.03), name="waiting")
    at = _runs_page()
    assert any("waiting for a worker" in t for t in _progress_texts(at))
    at.button(key=f"runs.cancel.{run_id}").click().run()
    assert not at.exception
    info = store.get(run_id)
    assert info.status == "cancelled" or info.cancel_requested


def test_visible_runs_puts_active_first():
    class R:
        def __init__(self, id, status, created):
            self.id, self.status, self.created_at, self.finished_at = id, status, created, None

    runs = [R("a", "finished", 3), R("b", "queued", 1), R("c", "running", 2), R("d", "failed", 4)]
    assert [r.id for r in visible_runs(runs)] == ["c", "b", "d", "a"]
    assert [r.id for r in visible_runs(runs, recent=1)] == ["c", "b", "d"]


def test_eta_is_mean_epoch_seconds_times_epochs_left():
    class Info:
        status, epochs_total, epochs_done = "running", 10, 4

    history = pd.DataFrame({"seconds": [2.0, 4.0, math.nan, 3.0]})
    assert eta_seconds(Info(), history) == 3.0 * 6
    Info.status = "queued"
    assert eta_seconds(Info(), history) is None
    assert format_seconds(75) == "1m 15s" and format_seconds(3700) == "1h 01m"


def test_opening_the_runs_page_starts_a_worker_for_a_run_left_queued(monkeypatch):
    """A run queued with no worker alive (its worker died, the server restarted) is picked
    up when the Runs page refreshes, not left 'waiting for a worker' forever."""
    import time

    import pytest

    monkeypatch.setenv("LRVIZ_WORKER_IDLE_SECONDS", "0")
    store = RunStore()
    run_id = store.create_run(_config(epochs=1))  # queued; nobody was asked to start a worker
    _runs_page()
    deadline = time.time() + 60  # a worker's TensorFlow import takes ~10 s here
    while store.get(run_id).status == "queued" and time.time() < deadline:
        time.sleep(0.5)
    status = store.get(run_id).status
    if status == "running":  # claimed: that is the point; don't wait for training
        store.request_cancel(run_id)
    assert status in ("running", "finished"), f"the queued run was never picked up: {status}"
    deadline = time.time() + 120
    while store.get(run_id).status in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    if store.get(run_id).status in ("queued", "running"):
        pytest.fail("the worker did not end the run within 120 s")


def test_tracking_switches_reach_workers_and_cards_say_where_runs_went(monkeypatch):
    from lrviz import settings
    from lrviz.tracking import tracking_settings

    monkeypatch.delenv("LRVIZ_TENSORBOARD", raising=False)
    monkeypatch.delenv("LRVIZ_NEPTUNE", raising=False)
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    store = RunStore()
    run_id = store.create_run(_config(), status="finished")
    store.set_tracking(run_id, {"tensorboard": {"path": "/tmp/tb/run1"},
                                "neptune": {"error": "invalid API token"}})
    at = _runs_page()
    assert not tracking_settings()["tensorboard"]["enabled"]
    at.toggle(key="tracking.tensorboard").set_value(True).run()
    assert not at.exception, at.exception
    # kept in the cache folder, where a worker reads it at its next run
    assert settings.app_switches() == {"neptune": False, "tensorboard": True}
    assert tracking_settings()["tensorboard"]["enabled"]
    captions = [c.value for c in at.caption]
    assert any("TensorBoard: `/tmp/tb/run1`" in c and "Neptune failed: invalid API token" in c
               for c in captions), captions
    # an environment variable wins over the app's switch, and the toggle says so
    monkeypatch.setenv("LRVIZ_TENSORBOARD", "0")
    at = _runs_page()
    assert not tracking_settings()["tensorboard"]["enabled"]
    assert at.toggle(key="tracking.tensorboard").disabled
