"""The Compare page: a table of run summaries, the selected runs' charts, export.

The selection lives in the ``compare.pick`` multiselect; ticking rows in the table (or
the article-experiment button) writes to it. Charts are drawn by ``lrviz.charts`` inside
a fragment that refreshes every 2 s while a selected run is queued or running. PNG/SVG
cost a Chromium round trip (seconds), so they are made only when asked for.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from lrviz import charts, charts_sweep, export, summary, sweep
from lrviz.store import STATUSES
from lrviz.ui import state

P = "compare."
ACTIVE = ("queued", "running")
REFRESH_SECONDS = 2.0
LAYOUTS = ("Overlay", "Small multiples", "Mean ± std")  # short: one line on the page
DEFAULT_METRICS = ("val_loss", "val_accuracy")
TABLE_COLUMNS = {
    "label": st.column_config.TextColumn("Run", width="large"),
    "status": st.column_config.TextColumn("Status"),
    "optimizer": st.column_config.TextColumn("Optimizer"),
    "epochs": st.column_config.TextColumn("Epochs", help="epochs done / epochs asked for"),
    "best_val_accuracy": st.column_config.NumberColumn("Best val acc"),
    "best_epoch": st.column_config.NumberColumn("at epoch", help="the first epoch reaching the best val accuracy"),
    "final_val_accuracy": st.column_config.NumberColumn("Final val acc"),
    "lowest_val_loss": st.column_config.NumberColumn("Lowest val loss"),
    "overfit_gap": st.column_config.NumberColumn("Gap (val−train loss)",
                                                 help="val_loss − loss at the last epoch where both are finite"),
    "sec_per_epoch": st.column_config.NumberColumn("s / epoch"),
    "validation": st.column_config.TextColumn("Validation"),
    "tags": st.column_config.TextColumn("Tags"),
    "run_id": st.column_config.TextColumn("Id"),
}
# How numbers read in the table. A Styler, not column_config formats: it alone can show
# a missing number (a queued run's best accuracy) as a dash instead of "None", while the
# column keeps its NaN so it still sorts as numbers.
NUMBER_FORMATS = {
    "best_val_accuracy": "{:.4f}", "best_epoch": "{:.0f}", "final_val_accuracy": "{:.4f}",
    "lowest_val_loss": "{:.4f}", "overfit_gap": "{:.4f}", "sec_per_epoch": "{:.2f}",
}
MISSING = "—"


# ------------------------------------------------------------------ data from the store
def _snapshot(kind: str = "train") -> tuple[list[Any], pd.DataFrame]:
    store = state.store()
    runs = store.list_runs(kind=kind)
    history = store.history([r.id for r in runs])
    return runs, history


def _schedules(runs: Sequence[Any]) -> dict[str, str]:
    return {r.id: (r.config or {}).get("schedule", "") for r in runs}


# ------------------------------------------------------------------ table and selection
def _filters(table: pd.DataFrame) -> pd.DataFrame:
    c1, c2, c3 = st.columns([2, 2, 3])
    statuses = c1.multiselect("Status", list(STATUSES), key=P + "f.status", placeholder="any")
    schedules = c2.multiselect("Schedule", sorted(table["schedule"].dropna().unique()),
                               key=P + "f.schedule", placeholder="any")
    text = c3.text_input("Search", key=P + "f.text", placeholder="label, id or tag")
    return summary.filter_table(table, statuses=statuses, schedules=schedules, text=text)


def _on_table_select(view_ids: list[str], table_key: str) -> None:
    rows = st.session_state[table_key].selection.rows
    picked = [view_ids[i] for i in rows if i < len(view_ids)]
    hidden = [rid for rid in st.session_state.get(P + "pick", []) if rid not in view_ids]
    st.session_state[P + "pick"] = hidden + picked  # runs filtered out stay selected


def _bump() -> None:
    """The selection changed outside the table: remount the table to show it."""
    st.session_state[P + "pick_version"] = st.session_state.get(P + "pick_version", 0) + 1


def _table(view: pd.DataFrame) -> None:
    shown = view.assign(epochs=[f"{d}/{t if t is not None and t == t else '?'}"
                                for d, t in zip(view["epochs_done"], view["epochs_total"])])
    shown = shown[[c for c in TABLE_COLUMNS if c in shown.columns]]
    shown["tags"] = shown["tags"].fillna("")
    styled = shown.style.format({c: f for c, f in NUMBER_FORMATS.items() if c in shown.columns},
                                na_rep=MISSING)
    ids = list(view["run_id"])
    # A new key when the rows or the outside selection change, so a row selection never
    # points at other runs and the table's ticks match the picker.
    version = st.session_state.get(P + "pick_version", 0)
    table_key = P + "table." + hashlib.sha1(f"{version}|{'|'.join(ids)}".encode()).hexdigest()[:10]
    picked = set(st.session_state.get(P + "pick", []))
    # the Run column as wide as its longest label (within reason): the settings that set
    # runs apart are at the end of the label, where a narrow column would cut them off
    longest = int(view["label"].astype(str).str.len().max()) if len(view) else 0
    columns = dict(TABLE_COLUMNS, label=st.column_config.TextColumn(
        "Run", width=min(560, max(240, 7 * longest))))
    st.dataframe(styled, key=table_key, hide_index=True, column_config=columns,
                 on_select=functools.partial(_on_table_select, ids, table_key),
                 selection_mode="multi-row", width="stretch",
                 selection_default={"selection": {"rows": [i for i, rid in enumerate(ids) if rid in picked]}})


def _picker(runs: Sequence[Any], labels: dict[str, str]) -> list[str]:
    ids = {r.id for r in runs}
    st.session_state[P + "pick"] = [rid for rid in st.session_state[P + "pick"] if rid in ids]
    return st.multiselect("Selected runs (tick rows in the table, or pick here)", [r.id for r in runs],
                          key=P + "pick", format_func=lambda rid: f"{labels.get(rid, rid)} [{rid}]",
                          on_change=_bump)


# ------------------------------------------------------------------ chart controls
def _controls(max_epoch: int) -> dict[str, Any]:
    c1, c2, c3 = st.columns([3, 3, 2])  # the three layouts fit on one line
    metrics = c1.multiselect("Metrics", list(charts.METRICS), key=P + "metrics", format_func=lambda m: charts.METRIC_TITLES[m])
    layout = c2.radio("Layout", LAYOUTS, key=P + "layout", horizontal=True,
                      help="Mean ± std: the seeds of one configuration (a sweep's) as their "
                           "mean with a ±1 standard deviation band.")
    lr_x = c3.radio("Learning-rate x axis", ("epochs", "steps"), key=P + "lr_x", horizontal=True)
    c4, c5, c6, c7 = st.columns([3, 1, 1, 3], vertical_alignment="center")
    smoothing = c4.slider("Smoothing (EMA weight)", 0.0, 0.99, step=0.01, key=P + "smoothing",
                          help="Exponential moving average; the raw curve stays faint behind it.")
    log_x = c5.checkbox("log x", key=P + "log_x")
    log_y = c6.checkbox("log y", key=P + "log_y")
    epoch_range = None
    if max_epoch > 1:
        key = P + f"epochs.{max_epoch}"  # a new slider when the longest run changes
        state.init(key, (1, max_epoch))
        lo, hi = c7.slider("Epochs", 1, max_epoch, key=key,
                           help="The article zoomed to the first 60 epochs.")
        if (lo, hi) != (1, max_epoch):
            epoch_range = (lo, hi)
    return {"metrics": metrics, "layout": layout, "lr_x": lr_x, "smoothing": smoothing,
            "log_x": log_x, "log_y": log_y, "epoch_range": epoch_range}


def _figures(store: Any, runs: Sequence[Any], history: pd.DataFrame, opts: dict[str, Any]) -> dict[str, tuple]:
    """chart name -> (figure, data) for the selected runs and the chosen controls."""
    labels = summary.run_labels(runs)
    colours = charts.run_colors(labels, _schedules(runs))
    common = dict(smoothing=opts["smoothing"], log_x=opts["log_x"], log_y=opts["log_y"],
                  epoch_range=opts["epoch_range"], colors=colours)
    draw = charts.small_multiples if opts["layout"] == LAYOUTS[1] else charts.metric_figure
    out = {}
    for metric in opts["metrics"]:
        if opts["layout"] == LAYOUTS[2] and metric != "learning_rate":
            # a sweep's seeds of one configuration: their mean with a +/- 1 std band
            bands = sweep.seed_bands(history, runs, metric)
            out[metric] = (charts_sweep.band_figure(bands, metric, log_y=opts["log_y"]), bands)
            continue
        if metric == "learning_rate" and opts["lr_x"] == "steps":
            step_lrs = {r.id: store.step_lr(r.id) for r in runs}
            step_lrs = {rid: lrs for rid, lrs in step_lrs.items() if len(lrs)}
            spe = {r.id: export.config_steps_per_epoch(r.config) for r in runs}
            fig = charts.lr_steps_figure(step_lrs, labels, steps_per_epoch=spe, log_y=opts["log_y"],
                                         colors=colours)
            out["lr_steps"] = (fig, charts.lr_steps_data(step_lrs, labels))
            continue
        fig = draw(history, metric, labels, **common)
        data = charts.metric_data(history, metric, labels, smoothing=opts["smoothing"],
                                  epoch_range=opts["epoch_range"])
        out[metric] = (fig, data)
    return out


# ------------------------------------------------------------------ downloads
def _signature(fig: Any) -> str:
    return hashlib.sha1(fig.to_json().encode()).hexdigest()


def _prepare(name: str, fig: Any) -> None:
    files: dict[str, Any] = {"sig": _signature(fig), "html": export.figure_html(fig)}
    try:
        with export.image_session():
            for fmt in export.IMAGE_FORMATS:
                files[fmt] = export.figure_image(fig, fmt)
    except export.ExportUnavailable as exc:
        files["error"] = str(exc)
    st.session_state[P + "files." + name] = files


def _downloads(name: str, fig: Any, data: pd.DataFrame) -> None:
    """CSV at once; PNG, SVG and HTML after one click on Prepare (Kaleido takes seconds).
    The buttons sit side by side at their own width, one group under the chart."""
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    row.download_button("CSV", export.frame_csv(data), f"{name}.csv", mime=export.MIME["csv"],
                        key=P + f"dl.{name}.csv", icon=":material/table:", on_click="ignore")
    files = st.session_state.get(P + "files." + name)
    if not files or files["sig"] != _signature(fig):
        row.button("Prepare PNG / SVG / HTML", key=P + f"prep.{name}", on_click=_prepare,
                   args=(name, fig), icon=":material/image:")
        return
    for fmt in ("png", "svg", "html"):
        if fmt in files:
            row.download_button(fmt.upper(), files[fmt], f"{name}.{fmt}", mime=export.MIME[fmt],
                                key=P + f"dl.{name}.{fmt}", icon=":material/download:", on_click="ignore")
    if "error" in files:
        row.caption(files["error"])


def _report(ids: list[str], opts: dict[str, Any]) -> None:
    def make() -> None:
        metrics = [m for m in opts["metrics"] if m in charts.METRICS] or list(charts.METRICS)
        st.session_state[P + "report"] = (tuple(ids), export.report_zip(
            state.store(), ids, metrics, smoothing=opts["smoothing"], log_x=opts["log_x"],
            log_y=opts["log_y"], epoch_range=opts["epoch_range"]))

    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    row.button("Prepare report (zip)", key=P + "report.make", on_click=make, icon=":material/folder_zip:",
              help="Every chart as PNG, SVG and HTML, the data as CSV, and runs.json with the configs.")
    ready = st.session_state.get(P + "report")
    if ready and ready[0] == tuple(ids):
        row.download_button("Download report (zip)", ready[1], "lrviz-report.zip", mime=export.MIME["zip"],
                           key=P + "report.dl", icon=":material/download:", on_click="ignore")


# ------------------------------------------------------------------ charts (live)
def charts_section(ids: list[str], opts: dict[str, Any]) -> None:
    """The selected runs' charts; refreshes while any of them is queued or running."""
    store = state.store()

    def current() -> list[Any]:  # another session may have deleted a run meanwhile
        return [r for r in store.list_runs(kind="train") if r.id in ids]

    active = any(r.status in ACTIVE for r in current())

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def _live() -> None:
        by_id = {r.id: r for r in current()}
        runs = [by_id[rid] for rid in ids if rid in by_id]
        if any(r.status in ACTIVE for r in runs) != active:
            st.rerun()  # something started or ended: redraw the table and reset the timer
        history = store.history([r.id for r in runs])
        if active:
            st.caption(f"Runs still training: refreshing every {REFRESH_SECONDS:g} s.")
        for name, (fig, data) in _figures(store, runs, history, opts).items():
            st.plotly_chart(fig, key=P + "chart." + name, width="stretch")
            _downloads(name, fig, data)
        _report([r.id for r in runs], opts)

    _live()


# ------------------------------------------------------------------ manage runs
def _rename(rid: str) -> None:
    state.store().rename(rid, st.session_state[P + f"m.name.{rid}"])
    st.session_state[P + "notice"] = "Renamed."


def _tag(ids: list[str], key: str) -> None:
    tags = [t.strip() for t in st.session_state[key].split(",")]
    for rid in ids:
        state.store().set_tags(rid, tags)
    st.session_state[P + "notice"] = f"Tags set on {len(ids)} run(s)."


def _delete(ids: list[str]) -> None:
    for rid in ids:
        if state.store().exists(rid):
            state.store().delete(rid)
    st.session_state[P + "pick"] = [r for r in st.session_state.get(P + "pick", []) if r not in ids]
    _bump()
    st.session_state[P + "m.confirm"] = False
    st.session_state[P + "notice"] = f"Deleted {len(ids)} run(s)."


def manage(runs: Sequence[Any]) -> None:
    """Rename the selected run, tag the selection, delete it (after a confirmation)."""
    ids = [r.id for r in runs]
    with st.expander(f"Rename, tag or delete the {len(ids)} selected run(s)"):
        c1, c2 = st.columns(2)
        if len(runs) == 1:
            state.init(P + f"m.name.{ids[0]}", runs[0].name or "")
            c1.text_input("Name", key=P + f"m.name.{ids[0]}")
            c1.button("Rename", key=P + "m.rename", on_click=_rename, args=(ids[0],))
        else:
            c1.caption("Select a single run to rename it.")
        tags_key = P + "m.tags." + hashlib.sha1("|".join(ids).encode()).hexdigest()[:10]
        state.init(tags_key, ", ".join(runs[0].tags or []) if len(runs) == 1 else "")
        c2.text_input("Tags (comma-separated, replaces the current ones)", key=tags_key)
        c2.button("Set tags", key=P + "m.tag", on_click=_tag, args=(ids, tags_key))
        confirm = st.checkbox(f"Yes, delete {len(ids)} run(s) with all their metrics", key=P + "m.confirm")
        st.button("Delete", key=P + "m.delete", type="primary", disabled=not confirm,
                  on_click=_delete, args=(ids,), icon=":material/delete:")


# ------------------------------------------------------------------ the article's experiment
def _article(epochs: int, train_size: int) -> None:
    from lrviz.presets import preset_configs

    try:
        configs = preset_configs("article", epochs=epochs, train_size=train_size)
        executor = state.executor()
        subs = (executor.submit_many(configs) if hasattr(executor, "submit_many")
                else [executor.submit(c) for c in configs])
    except Exception as exc:  # shown on the page in one sentence, never a traceback
        st.session_state[P + "error"] = f"The article experiment could not start: {exc}"
        return
    st.session_state[P + "pick"] = [s.run_id for s in subs]
    _bump()
    reused = sum(s.reused for s in subs)
    st.session_state[P + "notice"] = (f"Article experiment: {len(subs)} runs, {reused} from the cache, "
                                      f"{len(subs) - reused} queued; all validated on the same data.")


def article_button() -> None:
    """One click: the article's seven runs (one validation setup), queued and selected."""
    with st.expander("The article's experiment", icon=":material/science:"):
        st.caption("Constant 0.01, Keras legacy decay, linear, time-based, exponential and step decay "
                   "with SGD (momentum 0.8), and Adam at 0.001; 20,000 images, batch 64, 100 epochs in "
                   "the article. Cached runs are reused.")
        c1, c2, c3 = st.columns([1, 1, 2])
        epochs = c1.number_input("Epochs", 1, 10_000, key=P + "a.epochs")
        train_size = c2.number_input("Training images", 10, 60_000, step=1000, key=P + "a.train_size")
        c3.button("Run the article's experiment", key=P + "a.run", type="primary",
                  on_click=_article, args=(int(epochs), int(train_size)), icon=":material/play_arrow:")


# ------------------------------------------------------------------ the page
# Widgets whose values survive a visit to another page (Streamlit drops the state of
# widgets not drawn in a run, so they are saved under another key and put back).
KEPT: dict[str, Any] = {
    "f.status": [], "f.schedule": [], "f.text": "", "pick": [], "metrics": list(DEFAULT_METRICS),
    "layout": LAYOUTS[0], "lr_x": "epochs", "smoothing": 0.0, "log_x": False, "log_y": False,
    "a.epochs": 100, "a.train_size": 20_000,
}


def _restore_widgets() -> None:
    for key, default in KEPT.items():
        if P + key not in st.session_state:
            st.session_state[P + key] = st.session_state.get(P + "saved." + key, default)


def _save_widgets() -> None:
    for key in KEPT:
        if P + key in st.session_state:
            st.session_state[P + "saved." + key] = st.session_state[P + key]


def page() -> None:
    """The Compare page body."""
    _restore_widgets()
    try:
        _page()
    finally:
        _save_widgets()


def _page() -> None:
    for key, show in (("notice", st.success), ("error", st.error)):
        message = st.session_state.pop(P + key, None)
        if message:
            show(message)
    article_button()
    runs, history = _snapshot()
    if not runs:
        st.info("No runs yet: train some on the Schedules page, or start the article's experiment above.",
                icon=":material/info:")
        return
    table = summary.summarise(runs, history)
    _table(_filters(table))
    labels = dict(zip(table["run_id"], table["label"]))
    ids = _picker(runs, labels)
    if not ids:
        st.caption("Select runs to compare their curves.")
        return
    by_id = {r.id: r for r in runs}
    selected = [by_id[rid] for rid in ids]
    warning = summary.validation_warning(selected)
    if warning:
        st.warning(warning, icon=":material/warning:")
    chosen = history[history["run_id"].isin(ids)]
    max_epoch = max([int(chosen["epoch"].max()) if len(chosen) else 1]
                    + [int(r.epochs_total or 1) for r in selected])
    opts = _controls(max_epoch)
    charts_section(ids, opts)
    manage(selected)
