"""The Compare page's run summary table: one row per run, computed from its history.

Pure pandas/numpy. ``summarise(runs, history)`` gives the best and final validation
accuracy, lowest validation loss, the overfitting gap at the end, seconds per epoch and
the validation setup; ``validation_warning`` says when selected runs are not comparable.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lrviz.config import format_value

COLUMNS: tuple[str, ...] = (
    "run_id", "label", "schedule", "optimizer", "status", "epochs_done", "epochs_total",
    "best_val_accuracy", "best_epoch", "final_val_accuracy", "lowest_val_loss",
    "overfit_gap", "sec_per_epoch", "validation", "tags", "created_at",
)


def _config(run: Any) -> dict:
    return dict(getattr(run, "config", None) or {})


def _base_label(run: Any) -> str:
    name = getattr(run, "name", None)
    return str(name) if name else config_label(run)


def config_label(run: Any) -> str:
    """The run's schedule, its parameters and the optimizer (``RunConfig.label``), whatever
    its name; a config from an older catalogue still gets a readable one."""
    config = _config(run)
    try:
        from dataclasses import fields

        from lrviz.config import RunConfig

        # the stored config is already validated; build it as is, only for its label
        known = {f.name for f in fields(RunConfig)}
        return RunConfig(**{k: v for k, v in config.items() if k in known}).label()
    except Exception:  # a config from an older catalogue still gets a readable label
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in sorted((config.get("schedule_params") or {}).items()))
        return f"{config.get('schedule', '?')}({params}) · {config.get('optimizer', '?')}"


# Settings that tell apart runs of one schedule, in the order they are appended, and
# their defaults (a run from an older config without the key is taken to use them).
_DISTINGUISHING: tuple[tuple[str, Any], ...] = (
    ("epochs", None), ("train_size", None), ("batch_size", None), ("seed", 0),
    ("sample_seed", 0), ("granularity", "epoch"), ("validation", "test"),
    ("validation_split", None), ("hidden", None),
)


def _settings(run: Any) -> dict[str, str]:
    """The run's settings outside its base label, as short ``key=value`` texts."""
    config = _config(run)
    out = {key: format_value(config.get(key, default)) for key, default in _DISTINGUISHING}
    for key, value in sorted((config.get("optimizer_params") or {}).items()):
        out[key] = format_value(value)
    return out


def run_labels(runs: Sequence[Any]) -> dict[str, str]:
    """run id -> short legend label, distinct among ``runs``.

    A renamed run is labelled by its name; the others by schedule, its parameters and
    the optimizer, followed by only those settings (epochs, train_size, seed, optimizer
    parameters, granularity...) that differ among the runs sharing that label, e.g.
    ``step(...) · sgd · epochs=4``. Labels that still repeat (the same config stored
    twice, two runs given one name) get the start of the run id.
    """
    base = {run.id: _base_label(run) for run in runs}
    groups: dict[str, list[Any]] = {}
    for run in runs:
        if not getattr(run, "name", None):
            groups.setdefault(base[run.id], []).append(run)
    labels = dict(base)
    for label, members in groups.items():
        if len(members) < 2:
            continue
        settings = {run.id: _settings(run) for run in members}
        keys = list(dict.fromkeys(k for s in settings.values() for k in s))
        differ = [k for k in keys if len({s.get(k, "") for s in settings.values()}) > 1]
        for run in members:
            extra = ", ".join(f"{k}={settings[run.id].get(k, '-')}" for k in differ)
            labels[run.id] = f"{label} · {extra}" if extra else label
    counts = pd.Series(list(labels.values()), dtype=object).value_counts()
    return {rid: (f"{label} #{str(rid)[:6]}" if counts[label] > 1 else label) for rid, label in labels.items()}


def validation_setup(config: Mapping[str, Any]) -> str:
    """A short description of what the val_ metrics were measured on."""
    if config.get("validation", "test") == "split":
        split = float(config.get("validation_split") or 0.2)
        return (f"{split:g} split of the {config.get('train_size', '?')}-image sample "
                f"(seed {config.get('sample_seed', 0)})")
    return "test set (10,000 images)"


def validation_warning(runs: Iterable[Any]) -> str | None:
    """One sentence when the runs were validated on different data, else None."""
    setups = sorted({validation_setup(_config(run)) for run in runs})
    if len(setups) <= 1:
        return None
    return ("The selected runs were validated on different data (" + "; ".join(setups)
            + "), so their validation metrics are not directly comparable.")


def _finite(values: pd.Series) -> pd.Series:
    return values[np.isfinite(values.to_numpy(dtype=float))]


def run_summary(run: Any, history: pd.DataFrame) -> dict[str, Any]:
    """The summary row of one run; ``history`` holds that run's rows only (any order)."""
    config = _config(run)
    h = history.sort_values("epoch")
    val_acc = _finite(h.set_index("epoch")["val_accuracy"].astype(float)) if len(h) else pd.Series(dtype=float)
    val_loss = _finite(h["val_loss"].astype(float)) if len(h) else pd.Series(dtype=float)
    best = val_acc.max() if len(val_acc) else np.nan
    best_epoch = int(val_acc.idxmax()) if len(val_acc) else None  # first epoch reaching it
    both = h[np.isfinite(h["loss"].to_numpy(dtype=float)) & np.isfinite(h["val_loss"].to_numpy(dtype=float))]
    gap = float(both["val_loss"].iloc[-1] - both["loss"].iloc[-1]) if len(both) else np.nan
    seconds = _finite(h["seconds"].astype(float)) if len(h) else pd.Series(dtype=float)
    done = getattr(run, "epochs_done", None)
    return {
        "run_id": run.id,
        "label": _base_label(run),
        "schedule": config.get("schedule"),
        "optimizer": config.get("optimizer"),
        "status": getattr(run, "status", None),
        "epochs_done": int(done) if done is not None else int(h["epoch"].max() if len(h) else 0),
        "epochs_total": getattr(run, "epochs_total", None) or config.get("epochs"),
        "best_val_accuracy": float(best),
        "best_epoch": best_epoch,
        # the last epoch as logged: NaN when the run ended diverged, which is the truth
        "final_val_accuracy": float(h["val_accuracy"].iloc[-1]) if len(h) else np.nan,
        "lowest_val_loss": float(val_loss.min()) if len(val_loss) else np.nan,
        "overfit_gap": gap,
        "sec_per_epoch": float(seconds.mean()) if len(seconds) else np.nan,
        "validation": validation_setup(config),
        "tags": ", ".join(getattr(run, "tags", None) or []),
        "created_at": getattr(run, "created_at", None),
    }


def summarise(runs: Sequence[Any], history: pd.DataFrame) -> pd.DataFrame:
    """One row per run (in ``runs`` order) with the columns in ``COLUMNS``; labels are
    made unique as in :func:`run_labels`."""
    if not runs:
        return pd.DataFrame(columns=list(COLUMNS))
    by_run = dict(tuple(history.groupby("run_id", sort=False))) if len(history) else {}
    empty = history.iloc[0:0] if len(history.columns) else pd.DataFrame(
        columns=["run_id", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"])
    rows = [run_summary(run, by_run.get(run.id, empty)) for run in runs]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    labels = run_labels(runs)
    table["label"] = [labels[r] for r in table["run_id"]]
    table["best_epoch"] = table["best_epoch"].astype("Int64")
    return table


def filter_table(table: pd.DataFrame, *, statuses: Iterable[str] | None = None,
                 schedules: Iterable[str] | None = None, text: str = "") -> pd.DataFrame:
    """Rows whose status and schedule are among those given (None: any) and whose
    label, id or tags contain ``text`` (case-insensitive)."""
    keep = pd.Series(True, index=table.index)
    if statuses:
        keep &= table["status"].isin(list(statuses))
    if schedules:
        keep &= table["schedule"].isin(list(schedules))
    needle = text.strip().lower()
    if needle:
        hay = (table["label"].astype(str) + " " + table["run_id"].astype(str) + " "
               + table["tags"].astype(str)).str.lower()
        keep &= hay.str.contains(needle, regex=False)
    return table[keep]
