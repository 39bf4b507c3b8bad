"""``python -m lrviz train``: foreground training into the cache, reuse, retrain, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lrviz.cli import main
from lrviz.data import find_data_dir
from lrviz.settings import REPO_ROOT
from lrviz.store import RunStore

TINY = ["constant", "--set", "lr=0.05", "--epochs", "1", "--train-size", "500"]
needs_data = pytest.mark.skipif(find_data_dir() is None, reason="real Fashion-MNIST not installed")


def run_json(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
@needs_data
def test_train_json_subprocess(tmp_cache):
    env = {**os.environ, "LRVIZ_CACHE_DIR": str(tmp_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "lrviz", "train", *TINY, "--optimizer", "adam",
                           "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "finished" and out["reused"] is False
    assert out["epochs_done"] == 1 and len(out["history"]) == 1
    epoch = out["history"][0]
    assert epoch["epoch"] == 1 and epoch["learning_rate"] == pytest.approx(0.05)
    assert 0 < epoch["val_accuracy"] <= 1 and epoch["loss"] > 0 and epoch["seconds"] > 0
    assert "epoch 1/1" in proc.stderr  # the progress line
    info = RunStore(tmp_cache / "lrviz.db").get(out["run_id"])
    assert info.status == "finished" and info.config["optimizer"] == "adam"


@pytest.mark.slow
@needs_data
def test_cached_run_is_reused_unless_retrain(capsys):
    first = run_json(capsys, *TINY, "--opt", "momentum=0.8", "--batch-size", "100")
    assert first["reused"] is False and first["config"]["optimizer_params"]["momentum"] == 0.8
    again = run_json(capsys, *TINY, "--opt", "momentum=0.8", "--batch-size", "100")
    assert again["reused"] is True and again["run_id"] == first["run_id"]
    assert again["history"] == first["history"]
    fresh = run_json(capsys, *TINY, "--opt", "momentum=0.8", "--batch-size", "100", "--retrain")
    assert fresh["reused"] is False and fresh["run_id"] != first["run_id"]
    # same seed, same config: the retrained run learns exactly the same
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in first["history"]]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in fresh["history"]] == strip
    assert len(RunStore().list_runs()) == 2


@pytest.mark.slow
@needs_data
def test_diverged_run_reports_null_metrics(capsys):
    out = run_json(capsys, "custom", "--set", "expression=100 + 0 * t", "--epochs", "2",
                   "--train-size", "1000")
    assert out["status"] == "diverged"
    assert out["history"][-1]["loss"] is None  # NaN as strict-JSON null


@pytest.mark.parametrize("argv, field", [
    (["nosuch"], "schedule"),
    (["constant", "--set", "lr=-1"], "lr"),
    (["constant", "--set", "lr"], "--set"),
    (["constant", "--optimizer", "lion"], "optimizer"),
    (["constant", "--opt", "momentum=2"], "momentum"),
    (["constant", "--epochs", "0"], "epochs"),
    (["constant", "--validation", "holdout"], "validation"),
    (["constant", "--granularity", "hourly"], "granularity"),
])
def test_bad_input_exits_2_and_writes_nothing(capsys, argv, field):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err
    assert RunStore().list_runs() == []


def test_missing_data_exits_2_before_any_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
    assert main(["train", *TINY]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "dataset-fashion-mnist" in err and err.count("\n") == 1
    assert RunStore().list_runs() == []
