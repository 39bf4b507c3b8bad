"""``python -m lrviz runs``: list the cached runs, export a chart of some of them.

``runs list [--format json]`` prints id, label, status, epochs and best val_accuracy.
``runs export RUN_ID ... --chart METRIC --format png|svg|html|csv --out PATH`` writes the
chart the Compare page draws; the file appears whole or not at all (temp file + rename).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from lrviz import charts, export, summary
from lrviz.cli import CliError
from lrviz.store.schema import STATUSES

CHARTS = (*charts.METRICS, "lr_steps")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="list cached runs, export their charts",
                       description="The run cache: list runs, export a chart of some of them.")
    actions = p.add_subparsers(dest="runs_command", required=True, metavar="{list,export}")

    ls = actions.add_parser("list", help="the cached training runs, newest first")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.add_argument("--status", action="append", default=None, choices=STATUSES,
                    help="only runs with this status (repeatable)")
    ls.set_defaults(handler=run_list)

    ex = actions.add_parser("export", help="write one chart of some runs to a file")
    ex.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    ex.add_argument("--chart", required=True, metavar="METRIC", help=f"one of {', '.join(CHARTS)}")
    ex.add_argument("--format", dest="fmt", default=None, metavar="FORMAT",
                    help=f"one of {', '.join(export.FORMATS)} (default: from --out's suffix)")
    ex.add_argument("--out", required=True, metavar="PATH", help="file to write")
    ex.add_argument("--smoothing", type=float, default=0.0, help="EMA weight in [0, 1)")
    ex.add_argument("--log-x", action="store_true", help="log scale on the x axis")
    ex.add_argument("--log-y", action="store_true", help="log scale on the y axis")
    ex.add_argument("--epochs", default=None, metavar="FIRST:LAST", help="epoch range, e.g. 1:60")
    ex.set_defaults(handler=run_export)


def _store():
    from lrviz.store import RunStore

    return RunStore()


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy / pandas scalars
        return _json_value(value.item())
    if value is not None and str(value) == "<NA>":
        return None
    return value


def run_list(args: argparse.Namespace) -> int:
    store = _store()
    runs = store.list_runs(kind="train", statuses=args.status)
    table = summary.summarise(runs, store.history([r.id for r in runs]))
    if args.format == "json":
        configs = {r.id: r.config for r in runs}
        rows = [{"id": row.pop("run_id")} | {k: _json_value(v) for k, v in row.items()}
                | {"config": configs[row_id]}
                for row_id, row in zip(table["run_id"], table.to_dict("records"))]
        print(json.dumps(rows, indent=2))
        return 0
    if table.empty:
        print("No runs in the cache yet.")
        return 0
    lines = [("id", "label", "status", "epochs", "best val_acc")]
    for row in table.itertuples():
        total = "?" if row.epochs_total is None or (isinstance(row.epochs_total, float)
                                                    and math.isnan(row.epochs_total)) else int(row.epochs_total)
        best = "-" if math.isnan(row.best_val_accuracy) else f"{row.best_val_accuracy:.4f} (ep {row.best_epoch})"
        lines.append((row.run_id, row.label, row.status, f"{row.epochs_done}/{total}", best))
    widths = [max(len(str(line[i])) for line in lines) for i in range(5)]
    for line in lines:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip())
    return 0


def _epoch_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    first, sep, last = text.partition(":")
    try:
        lo, hi = float(first), float(last)
    except ValueError:
        lo = hi = math.nan
    if not sep or not (lo <= hi):
        raise CliError(f"Argument `--epochs` must look like FIRST:LAST with FIRST <= LAST. Received: --epochs {text!r}")
    return lo, hi


def _format(fmt: str | None, out: Path) -> str:
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in export.FORMATS:
        raise CliError(f"Argument `--format` must be one of {', '.join(export.FORMATS)}. "
                       f"Received: --format {fmt or '(none, and --out has no suffix)'!r}")
    return fmt


def run_export(args: argparse.Namespace) -> int:
    if args.chart not in CHARTS:
        raise CliError(f"Argument `--chart` must be one of {', '.join(CHARTS)}. Received: --chart {args.chart!r}")
    out = Path(args.out)
    fmt = _format(args.fmt, out)
    epoch_range = _epoch_range(args.epochs)
    store = _store()
    ids = list(dict.fromkeys(args.run_ids))
    missing = [rid for rid in ids if not store.exists(rid)]
    if missing:
        raise CliError(f"Argument `RUN_ID` must be a run in the cache (`python -m lrviz runs list` "
                       f"shows them). Received: RUN_ID={', '.join(missing)}")
    metrics = () if args.chart == "lr_steps" else (args.chart,)
    figures = export.run_charts(store, ids, metrics, smoothing=args.smoothing, log_x=args.log_x,
                                log_y=args.log_y, epoch_range=epoch_range,
                                include_steps=args.chart == "lr_steps")
    if args.chart not in figures:
        raise CliError(f"No per-step learning rates are stored for run(s) {', '.join(ids)}.")
    fig, data = figures[args.chart]
    try:
        payload = export.chart_bytes(fig, fmt, data)
    except export.ExportUnavailable as exc:
        raise CliError(str(exc)) from None
    export.write_atomic(out, payload)
    print(f"wrote {out} ({len(payload):,} bytes, {fmt}, {len(ids)} run(s))", file=sys.stderr)
    return 0
