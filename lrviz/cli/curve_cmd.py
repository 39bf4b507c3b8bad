"""``python -m lrviz curve NAME``: the LR each optimizer step applies, as CSV or JSON.

One row per optimizer step: ``step`` (global, from 0), ``epoch`` (``step //
steps_per_epoch``, counting from 0) and ``lr``. The output is built whole and written at
the end, so bad input prints one line on stderr and nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from lrviz.cli import parse_pairs
from lrviz.schedules import GRANULARITIES, build, horizon, lr_curve


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="print a schedule's LR for every optimizer step",
                       description="Print the LR each optimizer step applies: columns step, "
                                   "epoch (from 0) and lr.")
    p.add_argument("name", help="schedule name (see `python -m lrviz schedules`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="schedule parameter; value read as JSON where it parses, else text")
    # Kept as text: lr_curve checks them and names the field in its message.
    p.add_argument("--epochs", required=True, help="training epochs")
    p.add_argument("--steps-per-epoch", required=True, help="optimizer steps per epoch")
    p.add_argument("--granularity", choices=GRANULARITIES, default=None,
                   help="epoch or batch (default: the schedule's own)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    schedule = build(args.name, parse_pairs(args.set), args.granularity)
    lrs = lr_curve(schedule, args.epochs, args.steps_per_epoch)
    h = horizon(args.epochs, args.steps_per_epoch)  # the validated whole numbers
    spe = h.spe
    steps = np.arange(len(lrs))
    epochs = steps // spe
    if args.format == "json":
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in schedule.params.items()}
        doc = {"schedule": schedule.name, "params": params, "granularity": schedule.granularity,
               "epochs": h.epochs, "steps_per_epoch": spe,
               "rows": [{"step": int(s), "epoch": int(e), "lr": float(v)}
                        for s, e, v in zip(steps, epochs, lrs)]}
        text = json.dumps(doc) + "\n"
    else:
        # repr keeps every digit of the float64 the optimizer would be given.
        text = "step,epoch,lr\n" + "".join(
            f"{s},{e},{v!r}\n" for s, e, v in zip(steps.tolist(), epochs.tolist(), lrs.tolist()))
    sys.stdout.write(text)
    return 0
