"""``python -m lrviz find-lr``: JSON output, the cache, and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lrviz.cli import main
from lrviz.lr_finder import ramp

SMALL = ["--train-size", "1000", "--batch-size", "64", "--steps", "25",
         "--start-lr", "1e-3", "--end-lr", "10"]


@pytest.mark.slow
def test_json_then_cached(capsys):
    assert main(["find-lr", *SMALL, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["cached"] is False and first["run_id"]
    n = len(first["lrs"])
    assert 5 <= n <= 25 and len(first["losses"]) == len(first["smoothed"]) == n
    np.testing.assert_allclose(first["lrs"], ramp(1e-3, 10.0, 25)[:n], rtol=1e-6)
    assert first["status"] in ("finished", "diverged")
    assert set(first["suggestions"]) == {"steepest", "valley", "min_div_10"}
    for s in first["suggestions"].values():
        assert 1e-3 <= s["lr"] <= 10.0 and s["rule"]

    # the same test again comes from the cache, identical
    assert main(["find-lr", *SMALL, "--format", "json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cached"] is True and second["run_id"] == first["run_id"]
    assert second["lrs"] == first["lrs"] and second["suggestions"] == first["suggestions"]


@pytest.mark.slow
def test_text_output(capsys):
    assert main(["find-lr", *SMALL, "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert "step\tlr\tloss\tsmoothed" in out
    assert "# suggestion valley: lr=" in out and "# suggestion steepest: lr=" in out


@pytest.mark.parametrize("argv, words", [
    (["--start-lr", "1", "--end-lr", "0.1"], "`end_lr`"),
    (["--start-lr", "-1"], "`start_lr`"),
    (["--steps", "2"], "`steps`"),
    (["--steps", "many"], "`steps`"),
    (["--mode", "cubic"], "`mode`"),
    (["--optimizer", "lion"], "`optimizer`"),
    (["--opt", "momentum=2"], "`momentum`"),
    (["--opt", "oops"], "--opt"),
    (["--train-size", "3"], "`train_size`"),
    (["--format", "xml"], "format"),
])
def test_bad_input_exits_2_with_one_line(argv, words, capsys, tmp_cache):
    assert main(["find-lr", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not any(tmp_cache.iterdir())  # refused before anything was written


def test_bad_input_from_a_shell():
    proc = subprocess.run([sys.executable, "-m", "lrviz", "find-lr", "--end-lr", "1e-9"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("error: Argument `end_lr` must be greater than "
                                   "start_lr=1e-06. Received: end_lr=1e-09")
