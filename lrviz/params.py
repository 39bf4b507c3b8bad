"""Typed parameters with limits, shared by schedules, optimizers and run settings.

A ``Param`` describes one knob: its type, default, limits and help text. ``coerce``
turns what a person typed (a widget value, a CLI ``--set`` string, JSON) into the
typed value or raises ``ParamError`` naming the parameter and the value received,
in Keras's style: "Argument `drop_rate` must be in (0, 1]. Received: drop_rate=1.5".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


class ParamError(ValueError):
    """A parameter value was refused. ``field`` names the parameter."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


def shown(value: Any) -> str:
    """A received value as error messages show it: text quoted, at most 60 characters
    (a pasted 100,000-character value must not become a 100,000-character message)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_show = shown


@dataclass(frozen=True)
class Param:
    """One typed parameter.

    kind: "float", "int", "bool", "choice", "float_list" or "text".
    low/high: limits; low_open/high_open make the bound exclusive.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = 1000
    sorted_strict: bool = False  # float_list: strictly increasing
    extra: dict = field(default_factory=dict)

    def range_text(self) -> str:
        if self.low is None and self.high is None:
            return ""
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        if self.high is None:
            return f"> {lo}" if self.low_open else f">= {lo}"
        if self.low is None:
            return f"< {hi}" if self.high_open else f"<= {hi}"
        return f"in {left}{lo}, {hi}{right}"

    def _fail(self, what: str, value: Any) -> ParamError:
        return ParamError(
            self.name, f"Argument `{self.name}` {what}. Received: {self.name}={_show(value)}"
        )

    def _check_number(self, x: float, original: Any) -> None:
        if math.isnan(x) or math.isinf(x):
            raise self._fail("must be a finite number", original)
        bad_low = self.low is not None and (x <= self.low if self.low_open else x < self.low)
        bad_high = self.high is not None and (x >= self.high if self.high_open else x > self.high)
        if bad_low or bad_high:
            raise self._fail(f"must be {self.range_text()}", original)

    def coerce(self, value: Any) -> Any:
        """Return ``value`` as this parameter's type, or raise ``ParamError``."""
        if self.kind in ("float", "int"):
            return self._coerce_number(value)
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
                return value.strip().lower() in ("true", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise self._fail("must be true or false", value)
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise self._fail(f"must be one of {', '.join(self.choices)}", value)
        if self.kind == "float_list":
            return self._coerce_list(value)
        if self.kind == "text":
            if not isinstance(value, str):
                raise self._fail("must be text", value)
            if not value.strip():
                raise self._fail("must not be empty", value)
            if len(value) > self.max_len:
                raise self._fail(f"must be at most {self.max_len} characters", value)
            return value
        raise AssertionError(f"unknown parameter kind {self.kind}")

    def _coerce_number(self, value: Any) -> float | int:
        original = value
        if isinstance(value, bool):
            raise self._fail("must be a number", value)
        if isinstance(value, str):
            text = value.strip()
            if not text or len(text) > 64:
                raise self._fail("must be a number", value)
            try:
                value = float(text)
            except ValueError:
                raise self._fail("must be a number", original) from None
        if not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars
            except (TypeError, ValueError):
                raise self._fail("must be a number", original) from None
        try:
            x = float(value)
        except OverflowError:  # an int beyond float range (e.g. JSON 1 followed by 400 zeros)
            raise self._fail("must be a finite number", original) from None
        self._check_number(x, original)
        if self.kind == "int":
            if not float(x).is_integer():
                raise self._fail("must be a whole number", original)
            return int(x)
        return x

    def _coerce_list(self, value: Any) -> tuple[float, ...]:
        original = value
        if isinstance(value, str):
            text = value.strip()
            if len(text) > self.max_len:
                raise self._fail(f"must be at most {self.max_len} characters", value)
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    raise self._fail("must be a list of numbers such as 30, 60, 90", original) from None
            else:
                value = [p for p in text.replace(";", ",").split(",") if p.strip()]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise self._fail("must be a list of numbers such as 30, 60, 90", original)
        if len(value) > 1000:
            raise self._fail("must have at most 1000 entries", original)
        items = []
        for item in value:
            if isinstance(item, bool):
                raise self._fail("must be a list of numbers such as 30, 60, 90", original)
            try:
                x = float(item.strip() if isinstance(item, str) else item)
            except (TypeError, ValueError):
                raise self._fail("must be a list of numbers such as 30, 60, 90", original) from None
            except OverflowError:
                raise self._fail("must be a list of finite numbers", original) from None
            self._check_number(x, original)
            items.append(x)
        if self.sorted_strict and any(b <= a for a, b in zip(items, items[1:])):
            raise self._fail("must be strictly increasing", original)
        return tuple(items)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def coerce_all(params: Sequence[Param], given: Mapping[str, Any] | None, owner: str) -> dict:
    """Complete ``given`` with defaults and coerce every value; refuse unknown names."""
    given = dict(given or {})
    known = {p.name: p for p in params}
    for name in given:
        if name not in known:
            names = ", ".join(known) or "none"
            shown = str(name) if len(str(name)) <= 60 else str(name)[:57] + "..."
            raise ParamError(
                str(name), f"{owner} has no parameter `{shown}`. Its parameters: {names}."
            )
    return {p.name: p.coerce(given.get(p.name, p.default)) for p in params}


def parse_cli_value(text: str) -> Any:
    """A ``--set KEY=VALUE`` value: JSON where it parses (numbers, true, lists), else text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, or an int over 4300 digits
        return text
