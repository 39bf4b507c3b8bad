"""Widgets generated from ``lrviz.params.Param`` specs.

Every widget lets a bad value through to validation (number inputs carry no
min/max, lists and expressions are text), so the one message of ``ParamError`` is what
a person sees, the same as on the command line. Limits are shown in the help tooltip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import streamlit as st

from lrviz.params import Param, ParamError
from lrviz.ui.state import init


def _list_text(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def initial_value(param: Param) -> Any:
    """The session-state value a fresh widget for ``param`` starts from."""
    if param.kind == "float":
        return float(param.default)
    if param.kind == "int":
        return int(param.default)
    if param.kind == "float_list":
        return _list_text(param.default)
    return param.default


def _float_step(default: float) -> float:
    # One click moves the leading digit: 0.5 -> 0.6, 0.01 -> 0.02, 10000 -> 20000.
    if not default or not math.isfinite(default):
        return 0.01
    return 10.0 ** math.floor(math.log10(abs(default)))


def help_text(param: Param) -> str:
    """The tooltip: what the parameter does and its limits."""
    parts = [param.help] if param.help else []
    if param.range_text():
        parts.append(f"`{param.name}` must be {param.range_text()}.")
    if param.kind == "float_list":
        parts.append("Comma-separated numbers, e.g. 30, 60, 90.")
    return " ".join(parts)


def param_input(param: Param, key: str, *, label: str | None = None) -> Any:
    """Draw one widget for ``param`` under session-state ``key``; return its raw value."""
    init(key, initial_value(param))
    label = label or param.name
    tip = help_text(param)
    if param.kind == "float":
        # No min/max: an out-of-range value reaches ParamError instead of being clamped.
        return st.number_input(label, key=key, help=tip, format="%g",
                               step=_float_step(float(param.default)))
    if param.kind == "int":
        return st.number_input(label, key=key, help=tip, step=1, format="%d")
    if param.kind == "bool":
        return st.checkbox(label, key=key, help=tip)
    if param.kind == "choice":
        return st.selectbox(label, param.choices, key=key, help=tip)
    return st.text_input(label, key=key, help=tip)


@dataclass
class ParamForm:
    """The raw values of a group of widgets and a slot under each for its error."""

    values: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, Any] = field(default_factory=dict)

    def show_error(self, error: ParamError) -> bool:
        """Put ``error`` under the field it names; False when no field here has that name."""
        slot = self.slots.get(getattr(error, "field", None))
        if slot is None:
            return False
        with slot:
            show_error(error)
        return True


def param_form(params: Sequence[Param], prefix: str, *, columns: int = 2) -> ParamForm:
    """Widgets for ``params`` in ``columns`` columns, keys ``<prefix><name>``."""
    form = ParamForm()
    if not params:
        return form
    cols = st.columns(min(columns, len(params)))
    for i, param in enumerate(params):
        with cols[i % len(cols)]:
            form.values[param.name] = param_input(param, f"{prefix}{param.name}")
            form.slots[param.name] = st.empty()
    return form


def show_error(error: Exception) -> None:
    """One refused value, in the page's error style (the message names the field)."""
    st.error(str(error), icon=":material/error:")
