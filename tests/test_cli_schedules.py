"""``python -m lrviz schedules`` and ``curve``, run as a person would (subprocess)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lrviz.schedules import build, catalogue, lr_curve


def lrviz(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "lrviz", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_schedules_json_lists_the_catalogue():
    out = lrviz("schedules", "--format", "json")
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)
    assert [e["name"] for e in entries] == list(catalogue())
    step = next(e for e in entries if e["name"] == "step")
    drop = next(p for p in step["params"] if p["name"] == "drop_rate")
    assert (drop["default"], drop["low"], drop["high"], drop["low_open"]) == (0.8, 0.0, 1.0, True)
    assert step["default_granularity"] == "epoch" and "\\lfloor" in step["formula"]
    multistep = next(e for e in entries if e["name"] == "multistep")
    assert multistep["params"][1]["default"] == [30, 60, 90]
    cyclic = next(e for e in entries if e["name"] == "cyclic")
    assert cyclic["params"][3]["choices"] == ["triangular", "triangular2", "exp_range"]


def test_schedules_table():
    out = lrviz("schedules")
    assert out.returncode == 0
    for name in catalogue():
        assert name in out.stdout
    assert "drop_rate=0.8 (in (0, 1])" in out.stdout
    assert "(adaptive)" in out.stdout


def test_curve_csv_is_lr_curve():
    out = lrviz("curve", "keras_legacy_decay", "--set", "initial_lr=0.1", "--set", "decay=0.01",
                "--epochs", "3", "--steps-per-epoch", "250")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 750 and list(rows[0]) == ["step", "epoch", "lr"]
    assert [int(r["step"]) for r in rows] == list(range(750))
    assert [int(r["epoch"]) for r in rows] == [s // 250 for s in range(750)]
    lrs = np.array([float(r["lr"]) for r in rows])
    expected = lr_curve(build("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.01}), 3, 250)
    np.testing.assert_array_equal(lrs, expected)  # every digit survives the CSV
    assert round(lrs[250], 4) == 0.0286


def test_curve_json_with_list_and_granularity():
    out = lrviz("curve", "multistep", "--set", "milestones=[1, 2]", "--set", "gamma=0.5",
                "--epochs", "3", "--steps-per-epoch", "2", "--granularity", "batch",
                "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["granularity"] == "batch" and doc["params"]["milestones"] == [1, 2]
    assert [r["lr"] for r in doc["rows"]] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert [r["epoch"] for r in doc["rows"]] == [0, 0, 1, 1, 2, 2]


def test_curve_custom_text_value():
    out = lrviz("curve", "custom", "--set", "expression=0.1 / (1 + t)", "--epochs", "2",
                "--steps-per-epoch", "2")
    assert out.returncode == 0, out.stderr
    lrs = [float(line.split(",")[2]) for line in out.stdout.splitlines()[1:]]
    assert lrs == pytest.approx([0.1, 0.1 / 1.5, 0.05, 0.1 / 2.5])


@pytest.mark.parametrize("args,fragment", [
    (["curve", "step", "--set", "drop_rate=1.5", "--epochs", "3", "--steps-per-epoch", "2"], "drop_rate=1.5"),
    (["curve", "constant", "--epochs", str(10**9), "--steps-per-epoch", "313"], "`epochs`"),
    (["curve", "constant", "--epochs", "ten", "--steps-per-epoch", "3"], "epochs='ten'"),
    (["curve", "constant", "--epochs", "3", "--steps-per-epoch", "0"], "steps_per_epoch"),
    (["curve", "nope", "--epochs", "3", "--steps-per-epoch", "2"], "schedule='nope'"),
    (["curve", "constant", "--set", "lr", "--epochs", "3", "--steps-per-epoch", "2"], "KEY=VALUE"),
    (["curve", "constant", "--set", "lr=nan", "--epochs", "3", "--steps-per-epoch", "2"], "lr"),
    (["curve", "custom", "--set", "expression=__import__('os')", "--epochs", "3",
      "--steps-per-epoch", "2"], "__import__"),
    (["curve", "custom", "--set", "expression=1 - t", "--epochs", "3", "--steps-per-epoch", "2"],
     "`expression`"),
    (["curve", "constant", "--epochs", "3", "--steps-per-epoch", "2", "--granularity", "hour"],
     "granularity"),
    (["curve", "constant", "--steps-per-epoch", "2"], "--epochs"),
    (["schedules", "--format", "xml"], "format"),
])
def test_bad_input_exits_2_with_one_line(args, fragment):
    out = lrviz(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and fragment in out.stderr, out.stderr
