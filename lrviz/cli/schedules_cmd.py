"""``python -m lrviz schedules``: the catalogue as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from lrviz.params import Param
from lrviz.schedules import catalogue


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="list the schedule catalogue",
                       description="The schedule catalogue: names, parameters (defaults and "
                                   "limits), formulas and default granularity.")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or json")
    p.set_defaults(handler=run)


def _param_dict(p: Param) -> dict:
    default = list(p.default) if isinstance(p.default, tuple) else p.default
    d = {"name": p.name, "kind": p.kind, "default": default, "help": p.help,
         "low": p.low, "high": p.high, "low_open": p.low_open, "high_open": p.high_open,
         "range": p.range_text()}
    if p.choices:
        d["choices"] = list(p.choices)
    if p.kind == "text":
        d["max_len"] = p.max_len
    return d


def catalogue_json() -> list[dict]:
    """The catalogue as plain data (what ``--format json`` prints)."""
    return [{"name": s.name, "title": s.title, "params": [_param_dict(p) for p in s.params],
             "formula": s.formula, "default_granularity": s.default_granularity,
             "adaptive": s.adaptive, "description": s.description}
            for s in catalogue().values()]


def _param_text(p: dict) -> str:
    default = p["default"]
    if isinstance(default, list):
        default = "[" + ",".join(f"{x:g}" for x in default) + "]"
    elif isinstance(default, float):
        default = f"{default:g}"
    elif isinstance(default, bool):
        default = str(default).lower()
    limits = p["range"] or ("|".join(p["choices"]) if "choices" in p else "")
    return f"{p['name']}={default}" + (f" ({limits})" if limits else "")


def run(args: argparse.Namespace) -> int:
    entries = catalogue_json()
    if args.format == "json":
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return 0
    width = max(len(e["name"]) for e in entries)
    lines = [f"{'name':<{width}}  granularity  title / parameters"]
    for e in entries:
        flag = " (adaptive)" if e["adaptive"] else ""
        lines.append(f"{e['name']:<{width}}  {e['default_granularity']:<11}  {e['title']}{flag}")
        for p in e["params"]:
            lines.append(f"{'':<{width}}  {'':<11}    {_param_text(p)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
