"""Summary table maths: best/final accuracy, lowest loss, gap at the last finite epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from lrviz import summary


@dataclass
class Run:  # the fields of store.RunInfo the summary reads
    id: str
    config: dict
    status: str = "finished"
    name: str | None = None
    tags: list = field(default_factory=list)
    epochs_done: int = 0
    epochs_total: int | None = None
    created_at: float = 0.0


def _config(schedule="step", validation="test", **extra):
    return {"schedule": schedule, "schedule_params": {"initial_lr": 0.5}, "optimizer": "sgd",
            "epochs": 5, "train_size": 1000, "validation": validation, "validation_split": 0.2, **extra}


def _history(rid, val_acc, val_loss, loss, seconds=None):
    n = len(val_acc)
    return pd.DataFrame({"run_id": rid, "epoch": np.arange(1, n + 1), "loss": loss,
                         "accuracy": np.linspace(0.5, 0.9, n), "val_loss": val_loss,
                         "val_accuracy": val_acc, "learning_rate": 0.1,
                         "seconds": seconds if seconds is not None else np.full(n, 2.0)})


def test_summary_row_maths():
    hist = pd.concat([
        _history("a", [0.5, 0.8, 0.8, 0.7, 0.75], [1.0, 0.6, 0.5, 0.55, 0.7],
                 [1.2, 0.7, 0.4, 0.3, 0.2], seconds=[3.0, 1.0, 2.0, 2.0, 2.0]),
        # diverged at the end: NaN and inf are skipped for best/lowest/gap
        _history("b", [0.4, 0.6, np.nan, np.nan], [1.1, 0.9, np.inf, np.nan], [1.0, 0.8, 5.0, np.nan]),
    ])
    runs = [Run("a", _config(), epochs_done=5, epochs_total=5),
            Run("b", _config("exponential"), status="diverged", epochs_done=4, epochs_total=5)]
    table = summary.summarise(runs, hist).set_index("run_id")
    a, b = table.loc["a"], table.loc["b"]
    assert a.best_val_accuracy == pytest.approx(0.8) and a.best_epoch == 2  # first epoch reaching it
    assert a.final_val_accuracy == pytest.approx(0.75)
    assert a.lowest_val_loss == pytest.approx(0.5)
    assert a.overfit_gap == pytest.approx(0.7 - 0.2)
    assert a.sec_per_epoch == pytest.approx(2.0)
    assert b.best_val_accuracy == pytest.approx(0.6) and b.best_epoch == 2
    assert np.isnan(b.final_val_accuracy)
    assert b.lowest_val_loss == pytest.approx(0.9)
    assert b.overfit_gap == pytest.approx(0.9 - 0.8)  # epoch 2: the last with both finite
    assert b.status == "diverged" and b.epochs_done == 4
    assert list(table.reset_index().columns) == list(summary.COLUMNS)


def test_run_without_history_and_queued():
    table = summary.summarise([Run("q", _config(), status="queued")], pd.DataFrame(
        columns=["run_id", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"]))
    row = table.iloc[0]
    assert row.status == "queued" and row.epochs_done == 0 and np.isnan(row.best_val_accuracy)
    assert pd.isna(row.best_epoch)


def test_labels_unique_and_names_win():
    runs = [Run("aaaaaa1", _config(seed=1)), Run("bbbbbb2", _config(seed=2)), Run("c", _config(), name="mine")]
    labels = summary.run_labels(runs)
    assert labels["c"] == "mine"
    assert labels["aaaaaa1"].endswith(" · seed=1") and labels["bbbbbb2"].endswith(" · seed=2")


def test_labels_append_only_the_settings_that_differ():
    runs = [Run("a", _config(epochs=3)), Run("b", _config(epochs=4)),
            Run("c", _config(epochs=4, train_size=500)),
            Run("d", _config(epochs=4, optimizer_params={"momentum": 0.9})),
            Run("e", _config("exponential", epochs=9))]
    labels = summary.run_labels(runs)
    assert len(set(labels.values())) == len(runs)
    base = labels["e"]  # alone with its schedule: nothing appended
    assert "epochs" not in base and "·" in base
    assert labels["a"].endswith("epochs=3, train_size=1000, momentum=-")
    assert labels["c"].endswith("epochs=4, train_size=500, momentum=-")
    assert labels["d"].endswith("epochs=4, train_size=1000, momentum=0.9")
    # seed, batch size, granularity are the same in all: never mentioned
    assert not any(word in text for text in labels.values() for word in ("seed", "batch", "granularity"))
    pair = summary.run_labels(runs[:2])
    assert pair["a"].endswith(" · epochs=3") and pair["b"].endswith(" · epochs=4")


def test_labels_of_identical_configs_fall_back_to_the_id():
    labels = summary.run_labels([Run("aaaaaa1", _config()), Run("bbbbbb2", _config())])
    assert labels["aaaaaa1"].endswith("#aaaaaa") and labels["bbbbbb2"].endswith("#bbbbbb")


def test_summarise_uses_the_distinct_labels():
    runs = [Run("a", _config(epochs=3)), Run("b", _config(epochs=4))]
    table = summary.summarise(runs, pd.DataFrame(
        columns=["run_id", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"]))
    assert table["label"].str.endswith("epochs=3").iloc[0] and table["label"].str.endswith("epochs=4").iloc[1]


def test_validation_warning():
    same = [Run("a", _config()), Run("b", _config("exponential"))]
    assert summary.validation_warning(same) is None
    mixed = same + [Run("c", _config(validation="split"))]
    warning = summary.validation_warning(mixed)
    assert "different" in warning and "test set" in warning and "0.2 split" in warning


def test_filter_table():
    hist = _history("a", [0.5], [1.0], [1.0])
    runs = [Run("a", _config(), tags=["article"]), Run("b", _config("exponential"), status="running"),
            Run("c", _config("constant"), status="failed")]
    table = summary.summarise(runs, hist)
    assert list(summary.filter_table(table, statuses=["finished", "running"]).run_id) == ["a", "b"]
    assert list(summary.filter_table(table, schedules=["constant"]).run_id) == ["c"]
    assert list(summary.filter_table(table, text="ARTICLE").run_id) == ["a"]
    assert len(summary.filter_table(table)) == 3
