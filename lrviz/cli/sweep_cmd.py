"""``python -m lrviz sweep``: a whole experiment, a preset or a grid, into the run cache.

The configs come from ``--preset article``, a grid file (``--grid sweep.yaml``: schedules x
parameter values x seeds, see ``lrviz.sweep``) or the same grid as flags (``--schedule``,
``--set SCHEDULE.KEY=[v1,v2]``, ``--seeds``). Finished (or diverged) configs are reused
unless ``--retrain``.

Engines: ``batched`` (the default without Ray) trains in this process, compatible runs
together in one stacked computation (``lrviz.training.batched``); ``sequential`` one after
another; ``local`` submits to the background worker processes and ``ray`` to the Ray
cluster at ``LRVIZ_RAY_ADDRESS`` (the default when it is set), then waits, or returns at
once with ``--no-wait`` (local only: a Ray sweep needs this process alive to record it).
Progress goes to stderr, the summary (one row per run: status, epochs, final metrics; for
a grid with several seeds also mean and std per configuration) to stdout, as JSON with
``--format json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from lrviz.cli import CliError, fmt_number
from lrviz.params import parse_cli_value

ENGINES = ("batched", "sequential", "local", "ray")
FOREGROUND = ("batched", "sequential")  # trained in this process; the others go to an executor
_RUN_FLAGS = ("epochs", "train_size")  # shared run settings a flag may override


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train a preset or a grid of runs (cached)",
                       description="Train every run of a preset or a grid, batched where possible, "
                                   "here, on local workers or on a Ray cluster.")
    add_source_args(p)
    p.add_argument("--engine", default=None,
                   help="batched (default), sequential, local (background workers) or ray "
                        "(default when LRVIZ_RAY_ADDRESS is set)")
    p.add_argument("--no-wait", action="store_true",
                   help="with --engine local: print the queued run ids and return at once")
    p.add_argument("--timeout", type=float, default=None,
                   help="with local/ray: give up waiting after this many seconds (exit 1)")
    p.add_argument("--epochs", default=None, help="training epochs (default: the preset's, 100)")
    p.add_argument("--train-size", default=None, help="training images drawn (default 20000)")
    p.add_argument("--retrain", action="store_true", help="train again even if cached")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def add_source_args(p: argparse.ArgumentParser) -> None:
    """Where the configs come from: a preset, a grid file, or a grid as flags."""
    p.add_argument("--preset", default=None, help="a preset experiment, e.g. article")
    p.add_argument("--grid", default=None, help="a JSON or YAML grid file (see docs/ray.md)")
    p.add_argument("--schedule", action="append", default=[],
                   help="a schedule of the grid (repeat for several)")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="[SCHEDULE.]KEY=VALUES",
                   help="a schedule parameter; a JSON list is swept, e.g. step.drop_rate=[0.5,0.8]")
    p.add_argument("--seeds", default=None, help="seeds of the grid, e.g. 0,1,2 (default 0)")
    p.add_argument("--optimizer", default=None, help="the grid's optimizer (default sgd)")
    p.add_argument("--opt", "--optimizer-set", dest="optimizer_set", action="append", default=[], metavar="KEY=VALUES",
                   help="an optimizer parameter; a JSON list is swept")


def engine_of(args: argparse.Namespace) -> str:
    """The engine asked for, or the active one: ray when LRVIZ_RAY_ADDRESS is set."""
    from lrviz import settings

    engine = getattr(args, "engine", None) or ("ray" if settings.ray_address() else "batched")
    if engine not in ENGINES:
        raise CliError(f"Argument `--engine` must be one of {', '.join(ENGINES)}. "
                       f"Received: engine={engine!r}")
    if engine == "ray" and not settings.ray_address():
        raise CliError("Argument `--engine` ray needs LRVIZ_RAY_ADDRESS (auto, or ray://host:10001) "
                       "to name the cluster. Received: engine='ray' with LRVIZ_RAY_ADDRESS unset")
    if getattr(args, "no_wait", False) and engine != "local":
        raise CliError("Argument `--no-wait` works with --engine local only (a Ray sweep is recorded "
                       f"by the process that submitted it). Received: engine={engine!r}")
    return engine


def build_sweep(args: argparse.Namespace) -> Any:
    """The ``lrviz.sweep.Sweep`` the flags describe (``ParamError``/``CliError`` on bad input)."""
    from lrviz.sweep import Sweep, expand_grid, grid_from_flags, group_key, load_grid

    sources = [name for name, given in (("--preset", args.preset), ("--grid", getattr(args, "grid", None)),
                                        ("--schedule", getattr(args, "schedule", None))) if given]
    if len(sources) > 1:
        raise CliError(f"Arguments {', '.join(sources)} are alternatives: give one. Received: all of them")
    # RunConfig.create validates them and names the field on bad input
    run = {k: parse_cli_value(getattr(args, k)) for k in _RUN_FLAGS if getattr(args, k) is not None}
    if args.preset is not None or not sources:
        configs = build_configs(args)
        return Sweep(tuple(configs), tuple(group_key(c.to_dict()) for c in configs))
    if args.grid is not None:
        grid = load_grid(args.grid)
        grid["run"] = {**dict(grid.get("run") or {}), **run}  # flags override the file
    else:
        grid = grid_from_flags(args.schedule, args.sets, _seeds(args.seeds), args.optimizer or "sgd",
                               args.optimizer_set, run)
    return expand_grid(grid)


def _seeds(raw: str | None) -> list[int]:
    if raw is None:
        return [0]
    try:
        return [int(s) for s in str(raw).split(",") if s.strip()]
    except ValueError:
        raise CliError(f"Argument `--seeds` must be whole numbers separated by commas. Received: seeds={raw!r}") from None


def build_configs(args: argparse.Namespace) -> list:
    """The validated configs of ``--preset`` (``ParamError``/``CliError`` on bad input)."""
    from lrviz.presets import preset_configs

    engine_of(args)
    if args.preset is None:
        raise CliError("Argument `--preset`, `--grid` or `--schedule` is required (e.g. --preset article). "
                       "Received: nothing")
    # RunConfig.create validates them and names the field on bad input
    run = {k: parse_cli_value(getattr(args, k)) for k in _RUN_FLAGS if getattr(args, k) is not None}
    return preset_configs(args.preset, **run)


def run(args: argparse.Namespace) -> int:
    from lrviz.data import DataError, load_sample
    from lrviz.store import RunStore

    engine = engine_of(args)
    sweep = build_sweep(args)
    configs = list(sweep.configs)
    first = configs[0]
    try:  # the data must be there before run rows exist (nothing half-written)
        load_sample(first.train_size, first.sample_seed, first.validation, first.validation_split)
    except DataError as exc:
        raise CliError(str(exc)) from None
    store = RunStore()
    started = time.monotonic()
    if engine in FOREGROUND:
        infos = [store.create_or_reuse(c, retrain=args.retrain, group_id=sweep.group_id) for c in configs]
        todo = [info.id for info, _ in infos if info.status == "queued"]
        if todo:
            _train(store, todo, engine)
        ids = [info.id for info, _ in infos]
    else:
        subs, complete = _submit(store, sweep, engine, args)
        if subs is None:
            return 0
        ids, todo = [s.run_id for s in subs], [s.run_id for s in subs if not s.reused]
        if not complete:
            print(f"error: gave up waiting after {args.timeout:g} s; the runs go on", file=sys.stderr)
    summary = {"preset": args.preset, "grid": getattr(args, "grid", None), "group_id": sweep.group_id,
               "engine": engine, "seconds": round(time.monotonic() - started, 3),
               "runs": [_row(store, rid, rid not in todo) for rid in dict.fromkeys(ids)]}
    summary["configurations"] = _bands(store, ids)
    if args.format == "json":
        json.dump(summary, sys.stdout, allow_nan=False)
        print()
    else:
        print(_text(summary))
    return 0 if all(r["status"] not in ("failed", "interrupted") for r in summary["runs"]) else 1


def _submit(store: Any, sweep: Any, engine: str, args: argparse.Namespace) -> tuple[Any, bool]:
    """Hand the sweep to the local workers or the Ray cluster; wait unless --no-wait.

    Returns (submissions, finished in time), or (None, True) when it printed the queued
    ids and should return at once.
    """
    from lrviz.jobs import LocalExecutor
    from lrviz.sweep import submit_sweep, wait_for_runs

    if engine == "local":
        executor = LocalExecutor(store)
    else:
        from lrviz.jobs.ray_executor import RayExecutor

        executor = RayExecutor(store=store)
    try:
        subs = submit_sweep(executor, sweep, retrain=args.retrain)
        if args.no_wait:
            print(json.dumps({"group_id": sweep.group_id, "engine": engine,
                              "run_ids": [s.run_id for s in subs]}) if args.format == "json"
                  else "\n".join([f"queued {len(subs)} runs, group {sweep.group_id}:",
                                   *(s.run_id for s in subs)]))
            return None, True

        def progress(done: int, total: int) -> None:
            print(f"{done}/{total} runs done", file=sys.stderr, flush=True)

        complete = wait_for_runs(executor, [s.run_id for s in subs], timeout=args.timeout,
                                 on_progress=progress)
        return subs, complete
    finally:
        if hasattr(executor, "shutdown"):
            executor.shutdown()


def _bands(store: Any, run_ids: list[str]) -> list[dict]:
    """Mean and std over seeds of the final validation metrics, per configuration."""
    from lrviz.sweep import sweep_summary

    runs = [store.get(rid) for rid in dict.fromkeys(run_ids)]
    table = sweep_summary(store.history([r.id for r in runs]), runs)
    if table.empty or table["runs"].max() < 2:  # one seed each: the run rows say it all
        return []
    return [{k: (_finite(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def _train(store: Any, run_ids: list[str], engine: str) -> None:
    from lrviz.cli.train_cmd import ProgressSink
    from lrviz.training.batched import train_group

    def progress(run_id: str, sink: Any) -> Any:
        config = store.get(run_id).config
        return ProgressSink(_Named(sink, run_id), config["epochs"])

    if engine == "batched":
        train_group(run_ids, store, wrap=progress)
        return
    for run_id in run_ids:  # sequential: each run alone (train_batched falls back to run_training)
        train_group([run_id], store, wrap=progress)


class _Named:
    """A sink whose progress line says which run it is (ProgressSink prints the epoch only)."""

    def __init__(self, inner: Any, run_id: str):
        self.inner, self.run_id = inner, run_id

    def on_epoch(self, epoch: int, metrics: Any, seconds: float) -> None:
        print(f"{self.run_id}:", end=" ", file=sys.stderr)
        self.inner.on_epoch(epoch, metrics, seconds)

    def on_step_lr(self, first_step: int, lrs: Any) -> None:
        self.inner.on_step_lr(first_step, lrs)

    def should_stop(self) -> bool:
        return self.inner.should_stop()


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _row(store: Any, run_id: str, reused: bool) -> dict:
    from lrviz.config import RunConfig

    info = store.get(run_id)
    frame = store.history(run_id)
    last = frame.iloc[-1] if len(frame) else None
    config = RunConfig.from_dict({k: v for k, v in info.config.items() if v is not None})
    return {"run_id": info.id, "label": config.label(), "status": info.status, "reused": reused,
            "epochs_done": info.epochs_done, "epochs_total": info.epochs_total, "error": info.error,
            **{k: (_finite(last[k]) if last is not None else None)
               for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            "seconds_per_epoch": _finite(frame["seconds"].mean()) if len(frame) else None}


def _text(summary: dict) -> str:
    source = (f"preset {summary['preset']}" if summary.get("preset") else
              f"grid {summary['grid']}" if summary.get("grid") else "grid")
    lines = [f"{source}, engine {summary['engine']}: "
             f"{len(summary['runs'])} runs in {summary['seconds']:.1f} s",
             f"{'run':<14} {'status':<10} {'epochs':>7} {'val_loss':>9} {'val_acc':>8}  label"]

    for r in summary["runs"]:
        lines.append(f"{r['run_id']:<14} {r['status'] + ('*' if r['reused'] else ''):<10} "
                     f"{r['epochs_done']:>3}/{r['epochs_total']:<3} {fmt_number(r['val_loss'], '9.4f')} "
                     f"{fmt_number(r['val_accuracy'], '8.4f')}  {r['label']}")
    if any(r["reused"] for r in summary["runs"]):
        lines.append("* reused from the cache (--retrain to train again)")
    if summary.get("configurations"):
        lines.append(f"\n{'val_acc mean':>12} {'std':>7} {'seeds':>5}  configuration")
        for c in summary["configurations"]:
            lines.append(f"{fmt_number(c['final_val_accuracy_mean'], '12.4f')} {fmt_number(c['final_val_accuracy_std'], '7.4f')} "
                         f"{c['runs']:>5}  {c['group_key']}")
    return "\n".join(lines)
