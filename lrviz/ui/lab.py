"""The Schedules page's parts: schedule panels, shared run settings, the overlaid
curve chart, formulas and Keras code, and the lesson on Keras's old ``decay=``.

Each function draws one part and returns what the next part needs. Curves come from
``lrviz.schedules.lr_curve`` and are drawn by ``lrviz.charts.lr_figure``; nothing here
is cached because a whole catalogue of curves takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from lrviz import charts
from lrviz.config import RUN_PARAMS, RunConfig
from lrviz.optimizers import OPTIMIZERS, optimizer_params
from lrviz.params import ParamError
from lrviz.schedules import GRANULARITIES, build, catalogue, keras_snippet, lr_curve
from lrviz.ui.state import init
from lrviz.ui.widgets import param_form, param_input, show_error

DEFAULT_SCHEDULES = ("constant", "keras_legacy_decay", "step", "exponential")
_MAIN_SETTINGS = ("epochs", "train_size", "batch_size")
_RUN_PARAMS = {p.name: p for p in RUN_PARAMS}


@dataclass
class RunSettings:
    """The shared run settings as typed, or their validated form and steps per epoch."""

    raw: dict[str, Any]
    values: dict[str, Any] | None = None  # validated; None while a setting is refused
    steps_per_epoch: int | None = None


@dataclass
class ScheduleChoice:
    """One chosen schedule as the person set it, validated."""

    name: str
    params: dict[str, Any]
    granularity: str
    optimizer: str
    optimizer_params: dict[str, Any]
    schedule: Any = None  # lrviz.schedules.Schedule when its params are valid
    errors: list[str] = field(default_factory=list)
    curve: pd.DataFrame | None = None

    @property
    def trainable(self) -> bool:
        return self.schedule is not None and not self.errors


def schedule_picker() -> list[str]:
    """The multiselect of catalogue schedules; returns the chosen names in order."""
    specs = catalogue()
    init("lab.chosen", [n for n in DEFAULT_SCHEDULES if n in specs])
    return st.multiselect(
        "Schedules", list(specs), key="lab.chosen",
        format_func=lambda n: f"{n} · {specs[n].title}",
        placeholder="Choose one or more schedules",
    )


def run_settings() -> RunSettings:
    """Epochs, training-set size and batch size (and the rarer settings folded away);
    shows the steps per epoch they make."""
    cols = st.columns([1, 1, 1, 1])
    raw: dict[str, Any] = {}
    for col, name in zip(cols, _MAIN_SETTINGS):
        with col:
            raw[name] = param_input(_RUN_PARAMS[name], f"lab.run.{name}")
    with st.expander("More run settings (seeds, validation, model)"):
        rest = [p for p in RUN_PARAMS if p.name not in _MAIN_SETTINGS]
        raw.update(param_form(rest, "lab.run.", columns=3).values)
    # Errors go below the whole row: a message wraps word by word in one narrow column.
    settings = RunSettings(raw=raw)
    try:
        # RunConfig.create is the one place run settings are checked (limits and the
        # total-steps cap); the constant schedule stands in for "any schedule".
        config = RunConfig.create("constant", **raw)
    except ParamError as err:
        show_error(err)
        cols[3].metric("Steps per epoch", "—")
        return settings
    settings.values = {p.name: getattr(config, p.name) for p in RUN_PARAMS}
    settings.steps_per_epoch = config.steps_per_epoch
    cols[3].metric("Steps per epoch", f"{config.steps_per_epoch:,}",
                   help="training images / batch size, rounded up (Keras counts the last, "
                        "partial batch)")
    return settings


def schedule_panel(name: str, settings: RunSettings) -> ScheduleChoice:
    """One schedule's widgets, granularity and optimizer, in a bordered box; validates
    the schedule and computes its curve. Errors appear under the field they name."""
    spec = catalogue()[name]
    prefix = f"lab.{name}."
    with st.container(border=True):
        st.markdown(f"**{spec.title}** · `{name}`")
        if spec.description:
            st.caption(spec.description)
        values = param_form(spec.params, prefix + "p.", columns=2).values
        errors = st.container()  # under the fields, above granularity and optimizer
        init(prefix + "granularity", spec.default_granularity)
        granularity = st.radio(
            "granularity", GRANULARITIES, key=prefix + "granularity", horizontal=True,
            help="epoch: the LR is held for a whole epoch (Keras LearningRateScheduler); "
                 "batch: it changes every optimizer step (a LearningRateSchedule).",
        )
        init(prefix + "optimizer", "sgd")
        optimizer = st.selectbox("optimizer", list(OPTIMIZERS), key=prefix + "optimizer")
        with st.expander(f"{optimizer} settings"):
            opt_values = param_form(OPTIMIZERS[optimizer], f"{prefix}opt.{optimizer}.",
                                    columns=2).values
        choice = ScheduleChoice(name, values, granularity, optimizer, opt_values)
        try:
            choice.schedule = build(name, values, granularity)
        except ParamError as err:
            choice.errors.append(str(err))
            with errors:
                show_error(err)
        try:
            optimizer_params(optimizer, opt_values)
        except ParamError as err:  # the curve still draws; only training needs it
            choice.errors.append(str(err))
            show_error(err)
        if choice.schedule is not None and settings.steps_per_epoch:
            try:
                lrs = lr_curve(choice.schedule, settings.values["epochs"], settings.steps_per_epoch)
                choice.curve = charts.curve_frame(lrs, settings.steps_per_epoch)
            except ParamError as err:  # e.g. a custom expression that fails on this range
                choice.errors.append(str(err))
                with errors:
                    show_error(err)
        if spec.adaptive:
            st.caption(":material/info: This schedule reacts to the monitored metric while "
                       "training; the preview holds its initial LR.")
    return choice


def curve_chart(choices: list[ScheduleChoice]) -> None:
    """All valid curves overlaid, with the x-axis unit and log-y switches."""
    curves = {c.name: c.curve for c in choices if c.curve is not None}
    init("lab.x", "epoch")
    init("lab.log_y", False)
    controls = st.columns([2, 1, 5], vertical_alignment="center")
    x = controls[0].radio("x axis", ("epoch", "step"), key="lab.x", horizontal=True,
                          format_func=lambda v: {"epoch": "epochs", "step": "optimizer steps"}[v])
    log_y = controls[1].toggle("log y", key="lab.log_y")
    if not choices:
        st.info("Choose a schedule above to see its learning-rate curve.")
    elif not curves:
        st.warning("No curve to draw: fix the values marked in red below.")
    else:
        st.plotly_chart(charts.lr_figure(curves, x=x, log_y=log_y), key="lab.chart")


def formulas(choices: list[ScheduleChoice], settings: RunSettings) -> None:
    """Per valid schedule: its formula and the Keras code that reproduces it."""
    valid = [c for c in choices if c.schedule is not None]
    if not valid or not settings.steps_per_epoch:
        return
    tabs = st.tabs([c.name for c in valid])
    for tab, choice in zip(tabs, valid):
        with tab:
            st.latex(choice.schedule.spec.formula)
            st.code(keras_snippet(choice.schedule, settings.values["epochs"],
                                  settings.steps_per_epoch), language="python")


def legacy_decay_lesson(steps_per_epoch: int = 250, epochs: int = 10) -> None:
    """The article's lesson: Keras 2's ``decay=`` counts batches, not epochs."""
    legacy = build("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.01}, "batch")
    expected = build("time_based", {"initial_lr": 0.1, "decay": 0.01, "compound": False}, "epoch")
    per_batch = lr_curve(legacy, epochs, steps_per_epoch)
    per_epoch = lr_curve(expected, epochs, steps_per_epoch)
    st.markdown(
        f"Keras 2's `SGD(learning_rate=0.1, decay=0.01)` divided the LR by `1 + decay * "
        f"iterations`, and an iteration is a **batch**. With {steps_per_epoch} batches per "
        "epoch the LR has fallen far more after one epoch than a reader who thinks in "
        "epochs expects. (Keras 3 ignores `decay=`; `keras_legacy_decay` reproduces it.)")
    cols = st.columns(2)
    panels = (
        ("Keras 2 `decay=`: per batch", "keras_legacy_decay (per batch)", per_batch),
        ("What a reader expects: per epoch", "time_based (per epoch)", per_epoch),
    )
    for col, (title, label, lrs) in zip(cols, panels):
        with col:
            st.metric(f"{title}: LR after epoch 1", f"{lrs[steps_per_epoch]:.3g}")
            st.caption(f"from {lrs[0]:.3g} at the first step; {steps_per_epoch} batches "
                       "make one epoch")
            fig = charts.lr_figure({label: charts.curve_frame(lrs, steps_per_epoch)},
                                   x="epoch", title=title.replace("`", ""))
            st.plotly_chart(fig, key=f"lab.lesson.{label}")
