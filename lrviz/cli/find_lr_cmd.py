"""``python -m lrviz find-lr``: the learning-rate range test without a browser.

Prints the LR, loss and smoothed loss of each recorded step, then the suggestions with
their rules. The test is kept in the run cache: the same settings are answered from it
instead of being run twice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from lrviz.cli import CliError, parse_pairs
from lrviz.lr_finder import MODES, RangeTestConfig, RangeTestResult, load_result
from lrviz.optimizers import OPTIMIZERS


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="learning-rate range test (Smith / fastai lr_find)",
                       description="Ramp the LR up over a short run and suggest learning rates.")
    p.add_argument("--optimizer", default="sgd", help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--opt", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="an optimizer setting, e.g. --opt momentum=0.9 (as in `train`)")
    p.add_argument("--train-size", default=None, help="training images drawn (default 20000)")
    p.add_argument("--batch-size", default=None, help="images per step (default 64)")
    p.add_argument("--seed", default=None, help="seed of the weights and batch order")
    p.add_argument("--start-lr", default=None, help="first LR (default 1e-6)")
    p.add_argument("--end-lr", default=None, help="last LR (default 10)")
    p.add_argument("--steps", default=None, help="steps of the ramp (default one epoch)")
    p.add_argument("--mode", default="exp", help=f"one of {', '.join(MODES)}")
    p.add_argument("--stop-factor", default=None, help="stop once smoothed > this x best (4)")
    p.add_argument("--validation", action="store_true",
                   help="Smith's variant: watch the loss on a fixed held-out batch set")
    p.add_argument("--retrain", action="store_true", help="run again even if cached")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> dict:
    given = {"train_size": args.train_size, "batch_size": args.batch_size, "seed": args.seed,
             "start_lr": args.start_lr, "end_lr": args.end_lr, "steps": args.steps,
             "mode": args.mode, "stop_factor": args.stop_factor,
             "use_validation": args.validation}
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    cfg = RangeTestConfig.create(args.optimizer, parse_pairs(args.sets, "--opt"), **_settings(args))
    result, run_id, cached = _result(cfg, retrain=args.retrain)
    if args.format == "json":
        data = result.to_dict()
        # the columns as arrays too: what a script plotting the curve wants
        columns = {k: [p[k] for p in data["points"]] for k in ("step", "lr", "loss", "smoothed")}
        json.dump({"run_id": run_id, "cached": cached, **data,
                   "lrs": columns["lr"], "losses": columns["loss"],
                   "smoothed": columns["smoothed"]}, sys.stdout)
        print()
    else:
        print(_text(result, run_id, cached))
    return 0


def _result(cfg: RangeTestConfig, *, retrain: bool) -> tuple[RangeTestResult, str | None, bool]:
    """From the cache when the same test finished before, else run it here and store it."""
    from lrviz.data import DataError
    from lrviz.store import RunStore

    store = RunStore()
    found = None if retrain else store.find_reusable(cfg.config_hash(), kind="lr_find")
    if found is not None and found.status in ("finished", "diverged"):
        return load_result(store, found.id), found.id, True
    try:
        if found is not None:
            # queued or running elsewhere: do not race its worker; run unstored here
            from lrviz.training.range_test import run_range_test

            return run_range_test(cfg), None, False
        # created as running so no worker claims it while this process runs it
        run_id = store.create_run(cfg, kind="lr_find", status="running", name=cfg.label())
        from lrviz.training.range_test import run_lr_find

        result = run_lr_find(run_id, store)
    except DataError as exc:
        raise CliError(str(exc)) from None
    if result is None:
        raise CliError(f"the range test failed: {store.get(run_id).error}")
    return result, run_id, False


def _num(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def _text(result: RangeTestResult, run_id: str | None, cached: bool) -> str:
    cfg = result.config
    lines = [f"# {cfg.label()}", f"# run {run_id or '(not stored)'}"
             f"{' (from the cache)' if cached else ''}, status {result.status}, "
             f"{len(result.lrs)} points", "step\tlr\tloss\tsmoothed"]
    lines += [f"{i}\t{lr:.6g}\t{_num(loss)}\t{_num(sm)}"
              for i, lr, loss, sm in zip(result.idx, result.lrs, result.losses, result.smoothed)]
    if result.divergence_index is not None:
        lines.append(f"# diverged at step {result.idx[-1]}, lr {result.lrs[-1]:.6g}")
    for name, s in result.suggestions().items():
        lines.append(f"# suggestion {name}: lr={s.lr:.6g}  ({s.rule})")
    return "\n".join(lines)
