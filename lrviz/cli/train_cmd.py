"""``python -m lrviz train NAME ...``: train one schedule in the foreground, into the run cache.

Everything is validated (config, data) before a run row is written, so bad input exits 2
with one line and leaves nothing behind. A config that already finished (or diverged) is
reused from the cache without training unless ``--retrain``. Progress goes to stderr,
one line per epoch; the summary (``--format json``: run id, status, reused, per-epoch
history with ``learning_rate``) goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from typing import Any, Mapping

import numpy as np

from lrviz.cli import CliError, fmt_number, parse_pairs
from lrviz.optimizers import OPTIMIZERS

# CLI flag -> RunConfig setting; None means "not given, use the config's default"
_RUN_FLAGS = ("epochs", "train_size", "batch_size", "seed", "validation")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train one schedule in the foreground (cached)",
                       description="Train the article's MLP on Fashion-MNIST with one schedule.")
    p.add_argument("schedule", metavar="NAME", help="a schedule from `python -m lrviz schedules`")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a schedule parameter, e.g. --set initial_lr=0.1")
    p.add_argument("--optimizer", default="sgd", help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--opt", dest="opts", action="append", default=[], metavar="KEY=VALUE",
                   help="an optimizer setting, e.g. --opt momentum=0.8")
    p.add_argument("--epochs", default=None, help="training epochs (default 100)")
    p.add_argument("--train-size", default=None, help="training images drawn (default 20000)")
    p.add_argument("--batch-size", default=None, help="images per step (default 64)")
    p.add_argument("--seed", default=None, help="seed of the weights and batch order (default 0)")
    p.add_argument("--granularity", default=None, help="epoch or batch (default: the schedule's)")
    p.add_argument("--validation", default=None, help="test (10,000 test images) or split")
    p.add_argument("--retrain", action="store_true", help="train again even if cached")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace):
    """The validated ``RunConfig`` the flags describe (``ParamError`` names the field)."""
    from lrviz.config import RunConfig

    run = {k: getattr(args, k) for k in _RUN_FLAGS if getattr(args, k) is not None}
    return RunConfig.create(args.schedule, parse_pairs(args.sets, "--set"), args.granularity,
                            args.optimizer, parse_pairs(args.opts, "--opt"), **run)


class ProgressSink:
    """Passes everything to ``inner`` and prints one progress line per epoch on stderr."""

    def __init__(self, inner: Any, epochs: int, stream=None):
        self.inner, self.epochs, self.stream = inner, epochs, stream or sys.stderr
        self._start = time.monotonic()

    def on_epoch(self, epoch: int, metrics: Mapping[str, float], seconds: float) -> None:
        self.inner.on_epoch(epoch, metrics, seconds)
        done = int(20 * epoch / self.epochs)
        shown = "  ".join(f"{k}={metrics[k]:.4g}" for k in ("loss", "val_loss", "val_accuracy",
                                                             "learning_rate") if k in metrics)
        eta = (time.monotonic() - self._start) / epoch * (self.epochs - epoch)
        print(f"[{'#' * done}{'.' * (20 - done)}] epoch {epoch}/{self.epochs}  {shown}  "
              f"{seconds:.1f}s  eta {eta:.0f}s", file=self.stream, flush=True)

    def on_step_lr(self, first_step: int, lrs: np.ndarray) -> None:
        self.inner.on_step_lr(first_step, lrs)

    def should_stop(self) -> bool:
        return self.inner.should_stop()


def run(args: argparse.Namespace) -> int:
    from lrviz.data import DataError, load_sample
    from lrviz.store import RunStore

    config = build_config(args)
    try:  # the data must be there before a run row exists (nothing half-written)
        load_sample(config.train_size, config.sample_seed, config.validation, config.validation_split)
    except DataError as exc:
        raise CliError(str(exc)) from None
    store = RunStore()
    info, reused = store.create_or_reuse(config, retrain=args.retrain)
    # A reused queued run nobody has started yet is ours to train; compare-and-set so a
    # background worker claiming it at the same moment wins cleanly.
    trained = store.set_status(info.id, "running", only_if="queued")
    if trained:
        _train(store, info.id, config)
    summary = _summary(store, info.id, reused=reused and not trained)
    if args.format == "json":
        json.dump(summary, sys.stdout, allow_nan=False)
        print()
    else:
        print(_text(summary))
    return 0 if summary["status"] not in ("failed", "interrupted") else 1


def _train(store: Any, run_id: str, config: Any) -> None:
    """Train ``run_id`` here and record how it ended (failed with the error text on an exception)."""
    from lrviz.store import StoreSink
    from lrviz.training import run_training

    store.heartbeat(run_id, os.getpid())  # reconcile checks this pid, as for a worker's run
    status, error = "failed", None
    try:
        with _tracked(StoreSink(store, run_id), config, run_id, store) as sink:
            outcome = run_training(config, ProgressSink(sink, config.epochs))
            status, error = outcome.status, outcome.error
            if hasattr(sink, "finish"):
                sink.finish(status)
    except KeyboardInterrupt:
        status = "cancelled"  # Ctrl-C is a person's cancel; the epochs so far are kept
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"error: training failed: {error}".replace("\n", " "), file=sys.stderr)
    finally:
        store.set_status(run_id, status, error=error, only_if="running")


def _tracked(sink: Any, config: Any, run_id: str, store: Any) -> contextlib.AbstractContextManager:
    """Mirror to Neptune/TensorBoard when the environment enables it, as a worker does."""
    try:
        from lrviz.tracking import tracked
    except ImportError:
        return contextlib.nullcontext(sink)
    return tracked(sink, config, run_id, store)


def _finite(x: Any) -> float | None:
    # strict JSON has no NaN/inf: a diverged epoch's metrics become null
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _summary(store: Any, run_id: str, *, reused: bool) -> dict:
    info = store.get(run_id)
    frame = store.history(run_id)
    history = [{"epoch": int(row.epoch),
                **{k: _finite(getattr(row, k)) for k in ("loss", "accuracy", "val_loss",
                                                        "val_accuracy", "learning_rate", "seconds")}}
               for row in frame.itertuples()]
    return {"run_id": info.id, "status": info.status, "reused": reused,
            "epochs_done": info.epochs_done, "epochs_total": info.epochs_total,
            "error": info.error, "config": info.config, "config_hash": info.config_hash,
            "history": history}


def _text(summary: dict) -> str:
    head = (f"run {summary['run_id']}: {summary['status']}"
            f"{' (reused from the cache)' if summary['reused'] else ''}, "
            f"{summary['epochs_done']}/{summary['epochs_total']} epochs")
    lines = [head]
    if summary["error"]:
        lines.append(f"error: {summary['error']}")
    lines.append(f"{'epoch':>5} {'loss':>10} {'accuracy':>9} {'val_loss':>10} {'val_acc':>8} "
                 f"{'lr':>10} {'seconds':>8}")

    for h in summary["history"]:
        lines.append(f"{h['epoch']:>5} {fmt_number(h['loss'], '10.4f')} {fmt_number(h['accuracy'], '9.4f')} "
                     f"{fmt_number(h['val_loss'], '10.4f')} {fmt_number(h['val_accuracy'], '8.4f')} "
                     f"{fmt_number(h['learning_rate'], '10.4g')} {fmt_number(h['seconds'], '8.2f')}")
    return "\n".join(lines)
