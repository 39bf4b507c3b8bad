"""Experiment tracking: Neptune offline files, a failing Neptune, TensorBoard event files.

The Neptune tests use the real ``neptune`` client with no network: ``offline`` mode
writes operation logs (``data-*.log``, one JSON operation per line) that a later
``neptune sync`` uploads; we read those files back. TensorBoard files are read with
tensorboard's own ``EventAccumulator``.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest

from lrviz.config import RunConfig
from lrviz.tracking import TrackedSink, flatten_config, tracked, tracking_settings
from lrviz.tracking.neptune_sink import render_images, run_figures, scrub_secrets

FAKE_KEY = "lrviz-FAKE-key-0123456789-do-not-leak"
# A Neptune-shaped token (base64 JSON) naming a server nobody listens on.
FAKE_TOKEN = base64.b64encode(json.dumps(
    {"api_address": "http://127.0.0.1:9", "api_url": "http://127.0.0.1:9", "api_key": FAKE_KEY}
).encode()).decode()
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


class MemorySink:
    """The inner sink: what the local cache would receive."""

    def __init__(self) -> None:
        self.epochs: list[tuple[int, dict, float]] = []
        self.step_lrs: list[tuple[int, np.ndarray]] = []

    def on_epoch(self, epoch, metrics, seconds):
        self.epochs.append((epoch, dict(metrics), seconds))

    def on_step_lr(self, first_step, lrs):
        self.step_lrs.append((first_step, np.asarray(lrs)))

    def should_stop(self):
        return False


class RecordingStore:
    """Just ``set_tracking``, as ``RunStore`` has it (it replaces the whole dict)."""

    def __init__(self) -> None:
        self.tracking: dict[str, dict] = {}

    def set_tracking(self, run_id, tracking):
        self.tracking[run_id] = json.loads(json.dumps(tracking))


def small_config(epochs: int = 2) -> RunConfig:
    """The article's model, made tiny: 500 images, batches of 100, one hidden layer."""
    return RunConfig.create("step", {"initial_lr": 0.1, "drop_rate": 0.5, "epochs_drop": 1},
                            optimizer="sgd", epochs=epochs, batch_size=100, train_size=500,
                            hidden=[32])


def synthetic_run(sink, epochs: int = 3, spe: int = 5) -> None:
    for epoch in range(1, epochs + 1):
        sink.on_step_lr((epoch - 1) * spe, np.full(spe, 0.1 / epoch))
        sink.on_epoch(epoch, {"loss": 1.0 / epoch, "accuracy": 0.5 + epoch / 10,
                              "val_loss": 1.2 / epoch, "val_accuracy": 0.4 + epoch / 10,
                              "learning_rate": 0.1 / epoch}, 0.25)


def neptune_ops(folder: Path) -> list[dict]:
    """Every operation Neptune queued in an offline run folder, in order."""
    ops = []
    for log in sorted(folder.glob("data-*.log")):
        ops += [json.loads(line)["obj"] for line in log.read_text().splitlines() if line.strip()]
    return ops


def logged_series(ops: list[dict], *path: str) -> dict[int, float]:
    return {p["step"]: p["value"] for op in ops if op["type"] == "LogFloats" and op["path"] == list(path)
            for p in op["values"]}


def tensorboard_scalars(logdir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


@pytest.fixture
def neptune_offline(tmp_path, monkeypatch):
    data_dir = tmp_path / "neptune"
    monkeypatch.setenv("LRVIZ_NEPTUNE", "1")
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(data_dir))
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    # A token in the environment must not leak anywhere, even when offline ignores it.
    monkeypatch.setenv("NEPTUNE_API_TOKEN", FAKE_TOKEN)
    return data_dir


@pytest.mark.slow
def test_real_run_mirrors_to_neptune_offline_and_tensorboard(neptune_offline, tmp_cache, monkeypatch):
    from lrviz.store import RunStore, StoreSink
    from lrviz.training import run_training

    monkeypatch.setenv("LRVIZ_TENSORBOARD", "1")
    config = small_config(epochs=2)
    store = RunStore()
    run_id = store.create_run(config, status="running")
    inner = MemorySink()

    class Both(StoreSink):  # the real cache sink, plus a copy of what it was sent
        def on_epoch(self, *args):
            super().on_epoch(*args)
            inner.on_epoch(*args)

        def on_step_lr(self, *args):
            super().on_step_lr(*args)
            inner.on_step_lr(*args)

    with tracked(Both(store, run_id), config, run_id, store) as sink:
        outcome = run_training(config, sink)
        sink.finish(outcome.status)
    store.set_status(run_id, outcome.status)

    assert outcome.status == "finished" and len(inner.epochs) == 2  # training untouched
    info = store.get(run_id)
    assert info.status == "finished" and info.epochs_done == 2
    assert list(store.history([run_id])["epoch"]) == [1, 2]  # the local cache is complete
    tracking = info.tracking
    assert "error" not in tracking["neptune"] and "error" not in tracking["tensorboard"]
    assert tracking["neptune"]["mode"] == "offline"
    folder = Path(tracking["neptune"]["path"])
    assert folder.is_dir() and neptune_offline.resolve() in folder.parents

    ops = neptune_ops(folder)
    for name in EPOCH_METRICS:
        expected = {epoch: metrics[name] for epoch, metrics, _ in inner.epochs}
        got = logged_series(ops, "metrics", name)
        assert got.keys() == expected.keys(), name
        np.testing.assert_allclose([got[e] for e in expected], list(expected.values()), rtol=1e-6)
    assigned = {"/".join(op["path"]): op.get("value") for op in ops if op["type"].startswith("Assign")}
    assert assigned["parameters/schedule"] == "step"
    assert assigned["parameters/schedule_params/drop_rate"] == 0.5
    assert assigned["parameters/train_size"] == 500
    assert assigned["lrviz/status"] == "finished"
    tags = {t for op in ops if op["type"] == "AddStrings" and op["path"] == ["sys", "tags"]
            for t in op["values"]}
    assert tags == {"step", "sgd"}
    uploads = {op["path"][1]: op for op in ops if op["type"] == "UploadFile" and op["path"][0] == "charts"}
    assert uploads.keys() == {"learning_rate", "loss", "accuracy"}
    kind = tracking["neptune"]["images"]
    assert kind in ("png", "html")
    for op in uploads.values():
        content = (folder / "upload_path" / op["tmp_file_name"]).read_bytes()
        assert op["ext"] == kind
        assert content.startswith(b"\x89PNG") if kind == "png" else b"plotly" in content

    # TensorBoard: the epochs' values per epoch, and one LR point per optimizer step.
    scalars = tensorboard_scalars(Path(tracking["tensorboard"]["path"]))
    for name in EPOCH_METRICS:
        expected = {epoch: metrics[name] for epoch, metrics, _ in inner.epochs}
        assert scalars[f"metrics/{name}"].keys() == expected.keys()
        np.testing.assert_allclose([scalars[f"metrics/{name}"][e] for e in expected],
                                   list(expected.values()), rtol=1e-6)
    step_lrs = np.concatenate([lrs for _, lrs in inner.step_lrs])
    assert sorted(scalars["lr/step"]) == list(range(2 * config.steps_per_epoch))
    np.testing.assert_allclose([scalars["lr/step"][s] for s in range(len(step_lrs))], step_lrs, rtol=1e-6)

    # The token (and the key inside it) is nowhere: tracking info, the store, Neptune's files.
    assert FAKE_KEY not in json.dumps(tracking) and FAKE_TOKEN not in json.dumps(tracking)
    store_files = list(store.path.parent.glob(store.path.name + "*"))
    assert store.path in store_files
    for path in [*store_files, *folder.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert FAKE_KEY.encode() not in data and FAKE_TOKEN.encode() not in data, path


def test_unreachable_neptune_is_recorded_and_training_goes_on(monkeypatch, tmp_cache):
    monkeypatch.setenv("NEPTUNE_PROJECT", "lrviz/unreachable")
    monkeypatch.setenv("NEPTUNE_MODE", "async")
    monkeypatch.setenv("NEPTUNE_API_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("LRVIZ_NEPTUNE_TIMEOUT", "3")
    monkeypatch.delenv("LRVIZ_NEPTUNE", raising=False)
    monkeypatch.delenv("LRVIZ_TENSORBOARD", raising=False)
    store, inner = RecordingStore(), MemorySink()
    import neptune  # noqa: F401 - a one-off import cost, slow on a busy machine: not timed

    started = time.monotonic()
    with tracked(inner, small_config(), "run-down", store) as sink:
        synthetic_run(sink, epochs=3)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"a dead Neptune held the run for {elapsed:.1f} s"
    assert [e for e, _, _ in inner.epochs] == [1, 2, 3] and len(inner.step_lrs) == 3
    error = store.tracking["run-down"]["neptune"]["error"]
    assert "Neptune" in error or "neptune" in error.lower()
    assert FAKE_KEY not in json.dumps(store.tracking) and FAKE_TOKEN not in json.dumps(store.tracking)


@pytest.mark.parametrize("env, fragment", [
    ({"NEPTUNE_MODE": "turbo"},
     "NEPTUNE_MODE must be one of async, sync, offline. Received: NEPTUNE_MODE='turbo'"),
    ({"LRVIZ_NEPTUNE_TIMEOUT": "soon"}, "LRVIZ_NEPTUNE_TIMEOUT must be a number of seconds"),
])
def test_bad_neptune_settings_are_recorded_not_raised(monkeypatch, env, fragment):
    monkeypatch.setenv("LRVIZ_NEPTUNE", "1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store, inner = RecordingStore(), MemorySink()
    with tracked(inner, small_config(), "run-bad", store) as sink:
        synthetic_run(sink, epochs=2)
    assert len(inner.epochs) == 2
    assert fragment in store.tracking["run-bad"]["neptune"]["error"]


class QuietTracker:
    """Accepts everything: makes the wrapper keep the run for end-of-run charts."""

    name = "quiet"

    def start(self):
        return {}

    def log_epoch(self, epoch, metrics, seconds):
        pass

    def log_step_lr(self, first_step, lrs):
        pass

    def finish(self, status, sink):
        return {}

    def abort(self):
        pass


class ExplodingTracker:
    """Fails on its second epoch; counts what reached it afterwards."""

    name = "neptune"

    def __init__(self) -> None:
        self.epochs, self.aborted = [], False

    def start(self):
        return {"mode": "test"}

    def log_epoch(self, epoch, metrics, seconds):
        self.epochs.append(epoch)
        if epoch == 2:
            raise RuntimeError(f"server said no to token {FAKE_TOKEN}")

    def log_step_lr(self, first_step, lrs):
        pass

    def finish(self, status, sink):
        raise AssertionError("a disabled tracker must not be finished")

    def abort(self):
        self.aborted = True


def test_first_tracker_error_disables_it_and_is_recorded(monkeypatch):
    monkeypatch.setenv("NEPTUNE_API_TOKEN", FAKE_TOKEN)
    store, inner, tracker = RecordingStore(), MemorySink(), ExplodingTracker()
    sink = TrackedSink(inner, small_config(), "run-x", store, [tracker])
    synthetic_run(sink, epochs=4)
    sink.finish("finished")
    sink.finish("finished")  # a second finish is harmless

    assert tracker.epochs == [1, 2] and tracker.aborted
    assert [e for e, _, _ in inner.epochs] == [1, 2, 3, 4]
    recorded = store.tracking["run-x"]["neptune"]
    assert recorded["mode"] == "test"
    assert recorded["error"].startswith("log_epoch: RuntimeError: server said no")
    assert FAKE_TOKEN not in recorded["error"] and "***" in recorded["error"]


def test_exception_in_training_still_closes_trackers_and_propagates(tmp_cache, monkeypatch):
    monkeypatch.setenv("LRVIZ_TENSORBOARD", "1")
    monkeypatch.setenv("LRVIZ_NEPTUNE", "0")
    inner = MemorySink()
    with pytest.raises(ZeroDivisionError):
        with tracked(inner, small_config(), "run-crash") as sink:
            synthetic_run(sink, epochs=1)
            1 / 0
    scalars = tensorboard_scalars(tmp_cache / "tensorboard" / "run-crash")
    assert scalars["metrics/loss"] == {1: pytest.approx(1.0)}
    logdir = (tmp_cache / "tensorboard" / "run-crash").resolve()
    assert sink.tracking == {"tensorboard": {"path": str(logdir)}}


def test_nothing_enabled_is_a_plain_pass_through(monkeypatch):
    for name in ("NEPTUNE_PROJECT", "LRVIZ_NEPTUNE", "LRVIZ_TENSORBOARD"):
        monkeypatch.delenv(name, raising=False)
    store, inner = RecordingStore(), MemorySink()
    with tracked(inner, small_config(), "run-plain", store) as sink:
        synthetic_run(sink, epochs=2)
    assert len(inner.epochs) == 2 and store.tracking == {} and sink.tracking == {}


def test_settings_say_which_trackers_are_on_and_why(monkeypatch):
    for name in ("NEPTUNE_PROJECT", "LRVIZ_NEPTUNE", "LRVIZ_TENSORBOARD", "NEPTUNE_MODE",
                 "NEPTUNE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    off = tracking_settings()
    assert not off["neptune"]["enabled"] and "NEPTUNE_PROJECT" in off["neptune"]["why"]
    assert not off["tensorboard"]["enabled"] and "LRVIZ_TENSORBOARD" in off["tensorboard"]["why"]

    monkeypatch.setenv("NEPTUNE_PROJECT", "team/lrviz")
    monkeypatch.setenv("NEPTUNE_API_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("LRVIZ_TENSORBOARD", "1")
    on = tracking_settings()
    assert on["neptune"]["enabled"] and "NEPTUNE_PROJECT" in on["neptune"]["why"]
    assert on["neptune"]["mode"] == "async" and on["neptune"]["token_set"]
    assert on["tensorboard"]["enabled"] and on["tensorboard"]["logdir"].endswith("tensorboard")
    assert FAKE_TOKEN not in json.dumps(on) and FAKE_KEY not in json.dumps(on)

    monkeypatch.setenv("LRVIZ_NEPTUNE", "0")
    assert not tracking_settings()["neptune"]["enabled"]
    monkeypatch.delenv("NEPTUNE_API_TOKEN")
    monkeypatch.setenv("LRVIZ_NEPTUNE", "1")
    assert tracking_settings()["neptune"]["mode"] == "offline"  # no token: files, not network


def test_charts_show_training_against_validation_and_the_applied_lr():
    sink = TrackedSink(MemorySink(), small_config(), "run-charts", trackers=[QuietTracker()])
    synthetic_run(sink, epochs=3, spe=5)
    figures = run_figures(sink)
    assert figures.keys() == {"learning_rate", "loss", "accuracy"}
    loss = {trace.name.rsplit(" · ", 1)[1]: list(trace.y) for trace in figures["loss"].data}
    np.testing.assert_allclose(loss["training"], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(loss["validation"], [1.2, 0.6, 0.4])
    lr_trace = figures["learning_rate"].data[0]
    np.testing.assert_allclose(lr_trace.y[[0, -1]], [0.1, 0.1 / 3])


def test_charts_fall_back_to_html_when_png_export_fails(monkeypatch):
    import plotly.graph_objects as go

    from lrviz import export

    monkeypatch.setattr(export, "chromium_path", lambda: None)  # as on a box without Chromium
    images, kind, why = render_images({"loss": go.Figure(go.Scatter(y=[3.0, 2.5]))})
    assert kind == "html" and "Chromium" in why
    assert b"<html" in images["loss"] and b"2.5" in images["loss"]


def test_flatten_config_gives_scalar_parameters():
    flat = flatten_config(small_config())
    assert flat["schedule_params/drop_rate"] == 0.5
    assert flat["hidden"] == "[32]"
    assert flat["validation_split"] == "None"
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def test_scrub_secrets_hides_the_token_and_its_key(monkeypatch):
    monkeypatch.setenv("NEPTUNE_API_TOKEN", FAKE_TOKEN)
    assert scrub_secrets(f"a {FAKE_TOKEN} b {FAKE_KEY}") == "a *** b ***"


def test_importing_tracking_loads_neither_tensorflow_nor_neptune():
    import subprocess
    import sys

    code = ("import sys, lrviz.tracking; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'neptune', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"
