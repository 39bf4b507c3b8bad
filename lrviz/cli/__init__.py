"""``python -m lrviz``: the same operations as the app, without a browser.

Each subcommand lives in its own module under ``lrviz.cli`` with ``add_parser(sub)``
and ``run(args) -> int``; this module only routes. Bad input exits 2 with one line on
stderr (``CliError``, ``ParamError``, or an argparse error); nothing is half-written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from lrviz.params import ParamError, parse_cli_value

# subcommand -> module under lrviz.cli (imported lazily so `curve` never imports TensorFlow)
COMMANDS = {
    "schedules": "schedules_cmd",
    "curve": "curve_cmd",
    "train": "train_cmd",
    "runs": "runs_cmd",
    "sweep": "sweep_cmd",
    "find-lr": "find_lr_cmd",
}


class CliError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def parse_pairs(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` flags as a dict (a later KEY wins), values read as JSON where they
    parse (numbers, true, lists), else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CliError(f"Argument `{flag}` must look like KEY=VALUE. Received: {flag} {item!r}")
        out[key.strip()] = parse_cli_value(value)
    return out


def fmt_number(x: float | None, spec: str) -> str:
    """A metric for a text table: ``nan`` for a missing (JSON null) value."""
    return "nan" if x is None else format(x, spec)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as the CLI contract says
        raise CliError(f"{self.prog}: {message}")


def build_parser(commands=COMMANDS) -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lrviz", description="lrviz: learning-rate schedule lab")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module in commands.items():
        try:
            mod = importlib.import_module(f"lrviz.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lrviz.cli.{module}":
                raise
            continue  # not built yet
        mod.add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except (CliError, ParamError) as exc:
        print(f"error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except Exception as exc:
        # A read-only cache or a full disk (StoreError): not bad input, but one line too.
        # Looked up lazily so that `schedules` and `curve` never import the store (pandas).
        schema = sys.modules.get("lrviz.store.schema")
        if schema is None or not isinstance(exc, schema.StoreError):
            raise
        print(f"error: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
