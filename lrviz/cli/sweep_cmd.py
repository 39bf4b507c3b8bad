"""``python -m lrviz sweep --preset article``: a whole experiment in the foreground.

The preset's runs go into the run cache; finished (or diverged) configs are reused
unless ``--retrain``. ``--engine batched`` (the default) trains compatible runs together
in one stacked computation (``lrviz.training.batched``); ``sequential`` trains them one
after another with the single-run path. Progress goes to stderr, the summary (one row
per run: status, epochs, final metrics) to stdout, as JSON with ``--format json``.

The parser is built from small helpers so other sources of configs (grids) can be added
next to ``--preset``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from lrviz.cli import CliError
from lrviz.params import parse_cli_value

ENGINES = ("batched", "sequential")
_RUN_FLAGS = ("epochs", "train_size")  # shared run settings a flag may override


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train a preset experiment in the foreground (cached)",
                       description="Train every run of a preset, batched where possible.")
    add_source_args(p)
    p.add_argument("--engine", default="batched", help="batched (default) or sequential")
    p.add_argument("--epochs", default=None, help="training epochs (default: the preset's, 100)")
    p.add_argument("--train-size", default=None, help="training images drawn (default 20000)")
    p.add_argument("--retrain", action="store_true", help="train again even if cached")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def add_source_args(p: argparse.ArgumentParser) -> None:
    """Where the configs come from (one place to add grids later)."""
    p.add_argument("--preset", default=None, help="a preset experiment, e.g. article")


def build_configs(args: argparse.Namespace) -> list:
    """The validated configs the flags describe (``ParamError``/``CliError`` on bad input)."""
    from lrviz.presets import preset_configs

    if args.engine not in ENGINES:
        raise CliError(f"Argument `--engine` must be one of {', '.join(ENGINES)}. "
                       f"Received: engine={args.engine!r}")
    if args.preset is None:
        raise CliError("Argument `--preset` is required (e.g. --preset article). Received: nothing")
    # RunConfig.create validates them and names the field on bad input
    run = {k: parse_cli_value(getattr(args, k)) for k in _RUN_FLAGS if getattr(args, k) is not None}
    return preset_configs(args.preset, **run)


def run(args: argparse.Namespace) -> int:
    from lrviz.data import DataError, load_sample
    from lrviz.store import RunStore

    configs = build_configs(args)
    first = configs[0]
    try:  # the data must be there before run rows exist (nothing half-written)
        load_sample(first.train_size, first.sample_seed, first.validation, first.validation_split)
    except DataError as exc:
        raise CliError(str(exc)) from None
    store = RunStore()
    infos = [store.create_or_reuse(c, retrain=args.retrain) for c in configs]
    todo = [info.id for info, _ in infos if info.status == "queued"]
    started = time.monotonic()
    if todo:
        _train(store, todo, args.engine)
    summary = {"preset": args.preset, "engine": args.engine,
               "seconds": round(time.monotonic() - started, 3),
               "runs": [_row(store, info.id, info.id not in todo) for info, _ in infos]}
    if args.format == "json":
        json.dump(summary, sys.stdout, allow_nan=False)
        print()
    else:
        print(_text(summary))
    return 0 if all(r["status"] not in ("failed", "interrupted") for r in summary["runs"]) else 1


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
    lines = [f"preset {summary['preset']}, engine {summary['engine']}: "
             f"{len(summary['runs'])} runs in {summary['seconds']:.1f} s",
             f"{'run':<14} {'status':<10} {'epochs':>7} {'val_loss':>9} {'val_acc':>8}  label"]

    def f(x: float | None, spec: str) -> str:
        return "nan" if x is None else format(x, spec)

    for r in summary["runs"]:
        lines.append(f"{r['run_id']:<14} {r['status'] + ('*' if r['reused'] else ''):<10} "
                     f"{r['epochs_done']:>3}/{r['epochs_total']:<3} {f(r['val_loss'], '9.4f')} "
                     f"{f(r['val_accuracy'], '8.4f')}  {r['label']}")
    if any(r["reused"] for r in summary["runs"]):
        lines.append("* reused from the cache (--retrain to train again)")
    return "\n".join(lines)
