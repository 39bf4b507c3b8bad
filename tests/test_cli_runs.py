"""``python -m lrviz runs list/export``: table and JSON, files written whole, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from lrviz.cli import main
from lrviz.store import RunStore
from tests.test_export import fill_store, needs_chromium


@pytest.fixture
def run_ids():
    return fill_store(RunStore())


def test_list_text(run_ids, capsys):
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "label", "status", "epochs", "best", "val_acc"]
    body = "\n".join(out[1:])
    for rid in run_ids:
        assert rid in body
    assert "3/4" in body and "running" in body and "4/4" in body and "finished" in body
    assert "0.7370 (ep 3)" in body  # the step run's best val_accuracy, at epoch 3


def test_list_json(run_ids, capsys):
    assert main(["runs", "list", "--format", "json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(run_ids)
    step = rows[run_ids[1]]
    assert step["status"] == "running" and step["epochs_done"] == 3
    assert step["best_val_accuracy"] == pytest.approx(0.6 + 0.0123456789 * 3 + 0.1)
    assert step["config"]["schedule"] == "step"


def test_list_by_status(run_ids, capsys):
    assert main(["runs", "list", "--status", "running", "--format", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run_ids[1]]
    assert main(["runs", "list", "--status", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_list_empty_cache(capsys):
    assert main(["runs", "list"]) == 0
    assert "No runs" in capsys.readouterr().out


def test_export_csv_and_html(run_ids, tmp_path):
    tmp_path = tmp_path / "out"
    out = tmp_path / "val.csv"
    assert main(["runs", "export", *run_ids, "--chart", "val_accuracy", "--format", "csv",
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "run_id,label,epoch,val_accuracy" and len(lines) == 1 + 4 + 3
    html = tmp_path / "lr.html"
    assert main(["runs", "export", run_ids[0], "--chart", "lr_steps", "--out", str(html)]) == 0
    assert "Learning rate per optimizer step" in html.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.html", "val.csv"]  # no temp files


@needs_chromium
def test_export_svg_has_legend(run_ids, tmp_path):
    out = tmp_path / "loss.svg"
    assert main(["runs", "export", *run_ids, "--chart", "loss", "--format", "svg", "--out", str(out),
                 "--epochs", "1:2", "--log-y"]) == 0
    text = " ".join(ET.parse(out).getroot().itertext())
    assert "constant(lr=0.01) · sgd" in text and "Training loss" in text


@pytest.mark.parametrize("argv, words", [
    (["runs", "export", "r-nope", "--chart", "loss", "--format", "csv"], "RUN_ID=r-nope"),
    (["runs", "export", "{id}", "--chart", "nope", "--format", "csv"], "--chart 'nope'"),
    (["runs", "export", "{id}", "--chart", "loss", "--format", "gif"], "--format 'gif'"),
    (["runs", "export", "{id}", "--chart", "loss", "--format", "csv", "--epochs", "9:1"], "--epochs"),
    (["runs", "export", "{id}", "--chart", "loss", "--format", "csv", "--smoothing", "1.5"], "smoothing=1.5"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_ids, tmp_path, capsys, argv, words):
    out = tmp_path / "x.csv"
    argv = [a.replace("{id}", run_ids[0]) for a in argv] + ["--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:") and words in err
    assert not out.exists()


def test_module_entry_point_exit_code(run_ids, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lrviz", "runs", "export", "r-missing", "--chart", "loss",
                           "--format", "csv", "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
