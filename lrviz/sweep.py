"""Sweeps: a grid of schedules x parameter values x seeds, expanded into run configs.

Pure (no Ray, no TensorFlow, no Streamlit). A grid is a small mapping, read from JSON or
YAML or built from CLI flags::

    {"schedules": {"step": {"drop_rate": [0.5, 0.8]}, "exponential": {"k": [0.05, 0.1]}},
     "seeds": [0, 1],
     "optimizer": "sgd", "optimizer_params": {"momentum": 0.8},
     "run": {"epochs": 3, "train_size": 1000}}

A list under a schedule parameter is the values to sweep, a single value is fixed (for a
list-valued parameter such as ``milestones``, a list of lists is swept). ``schedules`` may
also be a list of ``{"name": ..., "params": {...}}`` to sweep one schedule twice with other
fixed values. Optimizer parameters sweep the same way; ``run`` settings are shared.

``seed_bands`` turns a sweep's history into one band per configuration: the mean and
standard deviation over its seeds at every epoch, what the Compare page draws.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lrviz.config import RunConfig
from lrviz.params import ParamError, parse_cli_value

MAX_RUNS = 10_000  # a typo such as seeds: range(10**6) is refused before anything is queued
GRID_KEYS = ("schedules", "seeds", "optimizer", "optimizer_params", "granularity", "run")
BAND_COLUMNS = ("group_key", "epoch", "mean", "std", "n")


@dataclass(frozen=True)
class Sweep:
    """An expanded grid: the configs in grid order and, per config, its seed-group key."""

    configs: tuple[RunConfig, ...]
    group_keys: tuple[str, ...]
    group_id: str = field(default_factory=lambda: new_group_id())

    def __len__(self) -> int:
        return len(self.configs)


def new_group_id() -> str:
    """A sweep's group id: 'g' and the same time-sorted digits as a run id."""
    from lrviz.store.runs import new_run_id  # pure sqlite/numpy module, no heavy imports

    return "g" + new_run_id()[1:]


# -- reading a grid -------------------------------------------------------------------------

def load_grid(path: str | Path) -> dict:
    """Read a grid from a ``.json``, ``.yaml`` or ``.yml`` file (``ParamError`` if bad)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamError("grid", f"Argument `grid` must be a readable file. Received: grid={str(path)!r} "
                                 f"({exc.strerror})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError: one line is enough
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParamError("grid", f"Argument `grid` must be valid {_kind(path)}. "
                                 f"Received: grid={str(path)!r} ({first})") from None
    if not isinstance(data, Mapping):
        raise ParamError("grid", f"Argument `grid` must hold a mapping with a `schedules` key. "
                                 f"Received: grid={str(path)!r}")
    return dict(data)


def _kind(path: Path) -> str:
    return "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"


def grid_from_flags(schedules: Sequence[str], sets: Sequence[str] = (), seeds: Sequence[int] = (0,),
                    optimizer: str = "sgd", optimizer_sets: Sequence[str] = (),
                    run: Mapping[str, Any] | None = None) -> dict:
    """The grid the CLI flags describe.

    ``sets`` are ``SCHEDULE.KEY=VALUES`` (or ``KEY=VALUES`` for every schedule that has
    KEY); VALUES is read like ``--set`` (JSON where it parses): a JSON list is swept.
    """
    if not schedules:
        raise ParamError("schedule", "Argument `schedule` must be given at least once. Received: schedule=[]")
    grid_schedules: dict[str, dict[str, Any]] = {name: {} for name in schedules}
    for item in sets:
        target, key, value = _split_set(item, "set")
        names = [target] if target else [n for n in grid_schedules if _has_param(n, key)]
        if target and target not in grid_schedules:
            raise ParamError("set", f"Argument `set` names a schedule not in the sweep. Received: set={item!r}")
        if not names:
            raise ParamError("set", f"Argument `set` names a parameter no chosen schedule has. Received: set={item!r}")
        for name in names:
            grid_schedules[name][key] = value
    opt_params: dict[str, Any] = {}
    for item in optimizer_sets:
        _, key, value = _split_set(item, "optimizer_set", dotted=False)
        opt_params[key] = value
    return {"schedules": grid_schedules, "seeds": list(seeds), "optimizer": optimizer,
            "optimizer_params": opt_params, "run": dict(run or {})}


def _split_set(item: str, name: str, dotted: bool = True) -> tuple[str | None, str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ParamError(name, f"Argument `{name}` must look like KEY=VALUE. Received: {name}={item!r}")
    target = None
    if dotted and "." in key:
        target, _, key = key.partition(".")
    return target, key.strip(), parse_cli_value(raw)


def _has_param(schedule: str, key: str) -> bool:
    from lrviz.schedules import catalogue

    spec = catalogue().get(schedule)
    return spec is not None and any(p.name == key for p in spec.params)


# -- expanding it ---------------------------------------------------------------------------

def expand_grid(grid: Mapping[str, Any]) -> Sweep:
    """Every combination of the grid as validated ``RunConfig``s, seeds innermost.

    Raises ``ParamError`` naming the field for an unknown key, schedule or parameter,
    a value out of range, or more than ``MAX_RUNS`` runs.
    """
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ParamError("grid", f"Argument `grid` has unknown keys {unknown}; expected some of "
                                 f"{', '.join(GRID_KEYS)}. Received: grid keys={sorted(grid)}")
    entries = _schedule_entries(grid.get("schedules"))
    seeds = _seeds(grid.get("seeds", [0]))
    optimizer = grid.get("optimizer", "sgd")
    if not isinstance(optimizer, str):
        raise ParamError("optimizer", f"Argument `optimizer` must be one optimizer name. Received: optimizer={optimizer!r}")
    opt_grid = grid.get("optimizer_params") or {}
    if not isinstance(opt_grid, Mapping):
        raise ParamError("optimizer_params", "Argument `optimizer_params` must be a mapping. "
                                             f"Received: optimizer_params={opt_grid!r}")
    run = dict(grid.get("run") or {})
    if "seed" in run:
        raise ParamError("run", "Argument `run` must not set `seed`; list them under `seeds`. "
                                f"Received: run.seed={run['seed']!r}")
    granularity = grid.get("granularity")

    combos: list[tuple[str, dict, dict]] = []
    for name, params in entries:
        for sched_values in _product(params, _list_params(name)):
            for opt_values in _product(opt_grid, _list_params(None, optimizer)):
                combos.append((name, sched_values, opt_values))
    total = len(combos) * len(seeds)
    if total > MAX_RUNS:
        raise ParamError("grid", f"Argument `grid` expands to {total:,} runs, more than {MAX_RUNS:,}. "
                                 f"Received: {len(combos)} configurations x {len(seeds)} seeds")
    configs, keys = [], []
    for name, sched_values, opt_values in combos:
        first = RunConfig.create(name, sched_values, granularity, optimizer, opt_values, seed=seeds[0], **run)
        key = group_key(first.to_dict())
        for seed in seeds:
            config = first if seed == seeds[0] else RunConfig.create(
                name, sched_values, granularity, optimizer, opt_values, seed=seed, **run)
            configs.append(config)
            keys.append(key)
    return Sweep(tuple(configs), tuple(keys))


def _schedule_entries(raw: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(raw, Mapping) and raw:
        entries = [(str(name), params or {}) for name, params in raw.items()]
    elif isinstance(raw, Sequence) and not isinstance(raw, str) and raw:
        entries = []
        for item in raw:
            if isinstance(item, str):
                entries.append((item, {}))
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                entries.append((item["name"], item.get("params") or {}))
            else:
                raise ParamError("schedules", "Argument `schedules` entries must be a name or "
                                              f"{{name: ..., params: {{...}}}}. Received: schedules entry={item!r}")
    else:
        raise ParamError("schedules", "Argument `schedules` must map schedule names to parameter "
                                      f"values (at least one). Received: schedules={raw!r}")
    for name, params in entries:
        if not isinstance(params, Mapping):
            raise ParamError("schedules", f"Argument `schedules.{name}` must map parameter names to values. "
                                          f"Received: schedules.{name}={params!r}")
    return entries


def _seeds(raw: Any) -> list[int]:
    values = raw if isinstance(raw, (list, tuple)) else [raw]
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
        raise ParamError("seeds", f"Argument `seeds` must be a list of whole numbers >= 0. Received: seeds={raw!r}")
    if len(set(values)) != len(values):
        raise ParamError("seeds", f"Argument `seeds` must not repeat a seed. Received: seeds={raw!r}")
    return list(values)


def _list_params(schedule: str | None, optimizer: str | None = None) -> set[str]:
    """Parameters whose single value is itself a list (a list of lists sweeps them)."""
    if schedule is not None:
        from lrviz.schedules import catalogue

        spec = catalogue().get(schedule)
        params = spec.params if spec else ()
    else:
        from lrviz.optimizers import OPTIMIZERS

        params = OPTIMIZERS.get(optimizer, ())
    return {p.name for p in params if p.kind == "float_list"}


def _product(grid: Mapping[str, Any], list_params: set[str]) -> list[dict]:
    """Every combination of the swept values (keys in the grid's order)."""
    axes = []
    for key, value in grid.items():
        swept = isinstance(value, (list, tuple)) and (
            key not in list_params or all(isinstance(v, (list, tuple)) for v in value))
        if swept and not value:
            raise ParamError(key, f"Argument `{key}` lists no values to sweep. Received: {key}=[]")
        axes.append([(key, v) for v in value] if swept else [(key, value)])
    return [dict(combo) for combo in itertools.product(*axes)]


# -- grouping over seeds --------------------------------------------------------------------

def group_key(config: Mapping[str, Any]) -> str:
    """What runs differing only in their seed share: the config's label, plus a short hash
    of the rest so that two configs with one label (other epochs, say) never merge."""
    from lrviz.store.runs import config_hash_of

    rest = {k: v for k, v in dict(config).items() if k != "seed"}
    try:
        from dataclasses import fields

        known = {f.name for f in fields(RunConfig)}
        label = RunConfig(**{k: v for k, v in rest.items() if k in known}).label()
    except Exception:  # an old catalogue's config still groups, by schedule name
        label = str(rest.get("schedule", "?"))
    return f"{label} [{config_hash_of(rest)[:6]}]"


def seed_bands(history: pd.DataFrame, runs: Iterable[Any], metric: str = "val_accuracy") -> pd.DataFrame:
    """Mean and spread over seeds: one row per (group_key, epoch).

    ``runs`` are ``RunInfo``s (anything with ``.id`` and ``.config``), ``history`` is
    ``RunStore.history`` of them. ``std`` is the sample standard deviation (ddof=1, NaN
    for one seed); non-finite values (a diverged run) are left out of that epoch and
    ``n`` counts the seeds that contributed.
    """
    if metric not in history.columns and len(history):
        raise ParamError("metric", f"Argument `metric` must be a history column. Received: metric={metric!r}")
    keys = {run.id: group_key(run.config) for run in runs}
    if history.empty or not keys:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "group_key" else float) for c in BAND_COLUMNS})
    part = history[history["run_id"].isin(keys)][["run_id", "epoch", metric]].copy()
    part["group_key"] = part["run_id"].map(keys)
    values = part[metric].astype(float)
    part[metric] = values.where(np.isfinite(values))
    grouped = part.groupby(["group_key", "epoch"], sort=True)[metric]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    out["n"] = out["n"].astype(int)
    out["epoch"] = out["epoch"].astype(int)
    return out[list(BAND_COLUMNS)]


def sweep_summary(history: pd.DataFrame, runs: Sequence[Any], metric: str = "val_accuracy") -> pd.DataFrame:
    """Per group: seeds, the final epoch's mean and std of ``metric``, best mean; best first."""
    bands = seed_bands(history, runs, metric)
    rows = []
    counts: dict[str, int] = {}
    for run in runs:
        key = group_key(run.config)
        counts[key] = counts.get(key, 0) + 1
    for key, part in bands.groupby("group_key", sort=False):
        last = part.loc[part["epoch"].idxmax()]
        rows.append({"group_key": key, "runs": counts.get(key, 0), "epochs": int(last["epoch"]),
                     f"final_{metric}_mean": float(last["mean"]),
                     f"final_{metric}_std": float(last["std"]),
                     f"best_{metric}_mean": float(part["mean"].max())})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ascending = "loss" in metric
    sort_col = f"final_{metric}_mean"
    table["_k"] = table[sort_col].map(lambda v: math.inf if not np.isfinite(v) else (v if ascending else -v))
    return table.sort_values("_k").drop(columns="_k").reset_index(drop=True)


# -- submitting (any executor: local workers or Ray) ----------------------------------------

def submit_sweep(executor: Any, sweep: Sweep, *, retrain: bool = False) -> list[Any]:
    """Submit every config of ``sweep`` to ``executor`` as one group; ``Submission``s back.

    Executors with ``submit_many`` get the whole group (the batched engine stacks what
    it can; the Ray executor keeps the sweep's ``group_id``); others get one ``submit`` each.
    """
    many = getattr(executor, "submit_many", None)
    if many is None:
        return [executor.submit(c, retrain=retrain) for c in sweep.configs]
    try:
        return many(list(sweep.configs), retrain=retrain, group_id=sweep.group_id)
    except TypeError:  # an executor whose submit_many makes its own group id
        return many(list(sweep.configs), retrain=retrain)


def wait_for_runs(executor: Any, run_ids: Sequence[str], *, timeout: float | None = None,
                  poll: float = 0.5, on_progress: Any = None) -> bool:
    """Block until every run has a final status (True) or ``timeout`` seconds pass (False).

    Asks ``executor.status`` (so a local executor keeps its workers going and reconciles
    dead ones); ``on_progress(done, total)`` is called when the count of finished runs changes.
    """
    import time

    from lrviz.store import TERMINAL

    deadline = None if timeout is None else time.monotonic() + timeout
    last = -1
    while True:
        done = sum(executor.status(rid) in TERMINAL for rid in dict.fromkeys(run_ids))
        if done != last and on_progress is not None:
            on_progress(done, len(dict.fromkeys(run_ids)))
        last = done
        if done == len(dict.fromkeys(run_ids)):
            waiter = getattr(executor, "wait", None)  # Ray: also let its drain thread settle
            return True if waiter is None else bool(waiter(list(run_ids), timeout=30))
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll)
