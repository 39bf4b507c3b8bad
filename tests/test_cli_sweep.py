"""``python -m lrviz sweep``: the article preset into the store, batched or sequential."""

from __future__ import annotations

import json

import pytest

from lrviz.cli import main

TINY = ["--preset", "article", "--epochs", "1", "--train-size", "200", "--format", "json"]


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "--preset", "nope"], "`preset`"),
    (["sweep", "--preset", "article", "--epochs", "0"], "`epochs`"),
    (["sweep", "--preset", "article", "--engine", "ray"], "`--engine`"),
    (["sweep"], "`--preset`"),
    (["sweep", "--preset", "article", "--train-size", "5"], "`train_size`"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


@pytest.mark.slow
def test_article_sweep_batched_then_cached_then_sequential(capsys):
    from lrviz.store import RunStore

    assert main(["sweep", *TINY]) == 0
    batched = json.loads(capsys.readouterr().out)
    runs = batched["runs"]
    assert len(runs) == 7 and all(r["status"] == "finished" and not r["reused"] for r in runs)
    store = RunStore()
    spe = -(-200 // 64)
    for r in runs:
        history = store.history([r["run_id"]])
        assert list(history["epoch"]) == [1]
        assert history["learning_rate"].notna().all() and history["seconds"].gt(0).all()
        assert len(store.step_lr(r["run_id"])) == spe

    assert main(["sweep", *TINY]) == 0  # cached: nothing trains again
    again = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in again["runs"]] == [r["run_id"] for r in runs]
    assert all(r["reused"] for r in again["runs"])

    assert main(["sweep", *TINY, "--engine", "sequential", "--retrain"]) == 0
    seq = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in seq["runs"]}.isdisjoint(r["run_id"] for r in runs)
    for b, s in zip(runs, seq["runs"]):
        assert s["status"] == "finished" and s["label"] == b["label"]
        # same config, other engine: the same numbers (Adam's drift is tiny after 4 steps)
        assert s["val_loss"] == pytest.approx(b["val_loss"], abs=2e-3)
