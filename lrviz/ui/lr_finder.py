"""The LR finder page's parts: test settings, the Run button, the live chart with its
suggestions, exports, and taking a suggested LR into a schedule on the home page.

The test runs in a worker process (``kind='lr_find'`` runs in the store); this module
submits it and reads its points back from the store, never from the worker.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from lrviz import lr_finder
from lrviz.charts_lr_finder import lr_finder_data, lr_finder_figure
from lrviz.lr_finder import FINDER_PARAMS, RangeTestConfig, RangeTestResult
from lrviz.optimizers import OPTIMIZERS
from lrviz.params import ParamError
from lrviz.ui import state
from lrviz.ui.widgets import param_form, param_input

PREFIX = "lrf."  # widget values kept across page switches
BUTTON = "lrf_button."  # never re-asserted: Streamlit refuses to set a button's value
ACTIVE = ("queued", "running")
_P = {p.name: p for p in FINDER_PARAMS}
_MAIN = ("start_lr", "end_lr", "steps", "mode")
_SAMPLE = ("train_size", "batch_size", "seed", "sample_seed", "stop_factor", "beta")
_VALIDATION = ("val_batches", "val_every")


def settings_form() -> RangeTestConfig | None:
    """The test's settings; returns the validated config, or None after showing why not."""
    cols = st.columns(4)
    raw: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    for col, name in zip(cols, _MAIN):
        with col:
            raw[name] = param_input(_P[name], PREFIX + name,
                                    label="steps (0: one epoch)" if name == "steps" else None)
            slots[name] = st.empty()
    left, right = st.columns([1, 3])
    with left:
        state.init(PREFIX + "optimizer", "sgd")
        optimizer = st.selectbox("optimizer", list(OPTIMIZERS), key=PREFIX + "optimizer")
        raw["use_validation"] = param_input(_P["use_validation"], PREFIX + "use_validation",
                                            label="validation-loss variant (Smith)")
    with right:
        with st.expander(f"{optimizer} settings"):
            opt_form = param_form(OPTIMIZERS[optimizer], f"{PREFIX}opt.{optimizer}.", columns=3)
        with st.expander("Sample, model and stop rule"):
            more = param_form([_P[n] for n in _SAMPLE], PREFIX, columns=3)
            raw["hidden"] = param_input(_P["hidden"], PREFIX + "hidden")
            slots["hidden"] = st.empty()
        if raw["use_validation"]:
            with st.expander("Validation variant", expanded=True):
                val = param_form([_P[n] for n in _VALIDATION], PREFIX, columns=2)
                raw.update(val.values)
                slots.update(val.slots)
    raw.update(more.values)
    slots.update(more.slots)
    try:
        return RangeTestConfig.create(optimizer, opt_form.values, **raw)
    except ParamError as err:
        slot = slots.get(err.field) or opt_form.slots.get(err.field)
        (slot or st).error(str(err), icon=":material/error:")
        return None


def run_controls(cfg: RangeTestConfig | None) -> str | None:
    """The Run button (and Run again); returns the run to show: the one just submitted,
    the cached test of these settings, or None."""
    store = state.store()
    cached = None if cfg is None else store.find_reusable(cfg.config_hash(), kind="lr_find")
    # one row at the buttons' own widths, so the caption reads as theirs
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    left = right = info = row
    run = left.button("Run range test", key=BUTTON + "run", type="primary",
                      disabled=cfg is None, icon=":material/play_arrow:")
    again = right.button("Run again", key=BUTTON + "again", disabled=cached is None,
                         help="ignore the cached test of these settings")
    if cfg is not None:
        info.caption(f"{cfg.steps:,} steps from {cfg.start_lr:g} to {cfg.end_lr:g} "
                     f"({cfg.mode}); stops when the smoothed loss passes "
                     f"{cfg.stop_factor:g}x its best.")
    if cfg is not None and (run or again):
        run_id, reused = lr_finder.submit(cfg, store, retrain=again)
        # the executor starts a worker for the queued test (Executor.status refreshes)
        state.executor().status(run_id)
        st.session_state[PREFIX + "run_id"] = run_id
        if reused and not again:
            st.toast("Same settings as a cached test: showing it.", icon=":material/cached:")
        return run_id
    shown = st.session_state.get(PREFIX + "run_id")
    if cached is not None:
        return cached.id
    if shown and store.exists(shown) and cfg is not None \
            and store.get(shown).config_hash == cfg.config_hash():
        return shown
    return None


def result_section(run_id: str) -> None:
    """The test's chart, live while it runs, then its suggestions and exports."""
    active = state.store().get(run_id).status in ACTIVE

    @st.fragment(run_every=1.0 if active else None)
    def live() -> None:
        store = state.store()
        info = store.get(run_id)
        result = lr_finder.load_result(store, run_id)
        if active and info.status not in ACTIVE:
            st.rerun()  # finished: redraw the whole page once, without the timer
        _status_line(info, result)
        if len(result.lrs):
            st.plotly_chart(lr_finder_figure(result), key=PREFIX + "chart",
                            width="stretch")
        if not active:
            suggestions_table(result)
            export_buttons(run_id, result)
            take_into_schedule(result)

    live()


def _status_line(info: Any, result: RangeTestResult) -> None:
    n, total = len(result.lrs), len(result.config.recorded_steps())
    if info.status in ACTIVE:
        st.progress(n / total if total else 0.0,
                    text=f"{info.status}: {n:,} of {total:,} points")
    elif info.status == "diverged":
        st.caption(f"Stopped at divergence after {n:,} points, at lr {result.lrs[-1]:.3g}.")
    elif info.status == "failed":
        st.error(f"The range test failed: {info.error}", icon=":material/error:")
    elif info.status in ("cancelled", "interrupted"):
        st.warning(f"The range test was {info.status} after {n:,} points.")
    else:
        st.caption(f"Finished: {n:,} points up to lr {result.lrs[-1]:.3g}." if n else "No points.")


def suggestions_table(result: RangeTestResult) -> None:
    suggestions = result.suggestions()
    if not suggestions:
        st.info("Too few points for suggestions.")
        return
    st.dataframe(pd.DataFrame([{"suggestion": s.name, "lr": s.lr, "smoothed loss": s.loss,
                                "rule": s.rule} for s in suggestions.values()]),
                 hide_index=True, width="stretch",
                 column_config={"lr": st.column_config.NumberColumn(format="%.3e")})


def export_buttons(run_id: str, result: RangeTestResult) -> None:
    """HTML and CSV always; PNG and SVG when a Chromium is there (made on request)."""
    from lrviz import export

    fig = lr_finder_figure(result)
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    cols = [row] * 4  # one group of buttons, each at its own width
    cols[0].download_button("HTML", export.figure_html(fig), f"lr_finder_{run_id}.html",
                            mime="text/html", key=BUTTON + "html", icon=":material/download:")
    cols[1].download_button("CSV", export.frame_csv(lr_finder_data(result)),
                            f"lr_finder_{run_id}.csv", mime="text/csv", key=BUTTON + "csv",
                            icon=":material/download:")
    if not export.images_available():
        cols[2].caption(export.NO_BROWSER)
        return
    images = st.session_state.get(PREFIX + "images")
    if not images or images[0] != (run_id, len(result.lrs)):
        # Kaleido takes seconds: only when asked, then kept for this test
        if cols[2].button("PNG / SVG", key=BUTTON + "make_images", icon=":material/image:"):
            try:
                with export.image_session():
                    images = ((run_id, len(result.lrs)), export.figure_image(fig, "png"),
                              export.figure_image(fig, "svg"))
                st.session_state[PREFIX + "images"] = images
            except export.ExportUnavailable as exc:
                cols[2].caption(str(exc))
                return
        else:
            return
    cols[2].download_button("PNG", images[1], f"lr_finder_{run_id}.png", mime="image/png",
                            key=BUTTON + "png", icon=":material/download:")
    cols[3].download_button("SVG", images[2], f"lr_finder_{run_id}.svg", mime="image/svg+xml",
                            key=BUTTON + "svg", icon=":material/download:")


def home_page_state(schedule: str, lr: float, cfg: RangeTestConfig) -> dict[str, Any]:
    """The home page's session-state entries that put ``lr`` into ``schedule``.

    Keys follow ``lrviz.ui.lab``: ``lab.chosen`` (the picked schedules),
    ``lab.<schedule>.p.<param>``, ``lab.<schedule>.optimizer`` and
    ``lab.<schedule>.opt.<optimizer>.<param>``. The optimizer is the one the test used:
    the suggestion is only valid for it.
    """
    chosen = list(st.session_state.get("lab.chosen") or [])
    if schedule not in chosen:
        chosen.append(schedule)
    values: dict[str, Any] = {"lab.chosen": chosen,
                              f"lab.{schedule}.optimizer": cfg.optimizer}
    for name, value in lr_finder.schedule_params_for(schedule, lr).items():
        values[f"lab.{schedule}.p.{name}"] = float(value)
    for name, value in cfg.optimizer_params.items():
        values[f"lab.{schedule}.opt.{cfg.optimizer}.{name}"] = value
    return values


def take_into_schedule(result: RangeTestResult) -> None:
    """Pick a suggestion and a schedule; one click sets it on the home page and goes there."""
    suggestions = result.suggestions()
    if not suggestions:
        return
    st.subheader("Use a suggestion")
    targets = lr_finder.schedule_targets()
    a, b, c = st.columns([2, 2, 1])
    pick = a.radio("suggested LR", list(suggestions), key=PREFIX + "pick", horizontal=True,
                   format_func=lambda n: f"{n} ({suggestions[n].lr:.3g})")
    state.init(PREFIX + "target", "one_cycle" if "one_cycle" in targets else targets[0])
    schedule = b.selectbox("into schedule", targets, key=PREFIX + "target",
                           help="initial_lr for most schedules; max_lr for one_cycle and "
                                "cyclic (cyclic: base_lr = max_lr / 10)")
    lr = suggestions[pick].lr
    params = lr_finder.schedule_params_for(schedule, lr)
    b.caption(", ".join(f"{k} = {v:.3g}" for k, v in params.items()))
    if c.button("Use in schedule", key=BUTTON + "use", type="primary",
                icon=":material/arrow_forward:"):
        for key, value in home_page_state(schedule, lr, result.config).items():
            st.session_state[key] = value
        st.switch_page("pages/schedules.py")
