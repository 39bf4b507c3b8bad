"""Run cards and the live view of the Runs page.

The live part is a fragment that re-runs about once a second while anything is queued
or running and not at all otherwise. It reads only the store (never a worker): the
workers write each epoch there as it ends.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from lrviz import charts, summary
from lrviz.store import StoreError
from lrviz.ui import state, tracking

ACTIVE = ("queued", "running")
RECENT = 8  # finished/failed/cancelled runs listed under the active ones
REFRESH_SECONDS = 1.0
IDLE_REFRESH_SECONDS = 5.0  # nothing active: how often to look for runs started elsewhere
BADGE_COLORS = {
    "queued": "gray", "running": "blue", "finished": "green", "diverged": "orange",
    "cancelled": "violet", "failed": "red", "interrupted": "orange",
}
LIVE_CHARTS = (("Loss", ("loss", "val_loss")), ("Accuracy", ("accuracy", "val_accuracy")),
               ("Learning rate", ("learning_rate",)))

def visible_runs(runs: Sequence[Any], recent: int = RECENT) -> list[Any]:
    """Running, then queued (oldest first), then the most recent others."""
    active = sorted((r for r in runs if r.status in ACTIVE),
                    key=lambda r: (r.status != "running", r.created_at or 0.0))
    done = sorted((r for r in runs if r.status not in ACTIVE),
                  key=lambda r: r.finished_at or r.created_at or 0.0, reverse=True)
    return active + done[:recent]


def eta_seconds(info: Any, history: pd.DataFrame) -> float | None:
    """Seconds left: mean wall seconds per finished epoch x epochs still to go."""
    if info.status != "running" or history.empty or "seconds" not in history:
        return None
    secs = history["seconds"].to_numpy(dtype=float)
    secs = secs[[math.isfinite(s) for s in secs]]
    if not secs.size:
        return None
    left = max(0, int(info.epochs_total or 0) - int(info.epochs_done or 0))
    return float(secs.mean()) * left


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1m 15s``; ``3700`` -> ``1h 01m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _cancel(run_id: str) -> None:
    state.executor().cancel(run_id)
    st.session_state["runs.notice"] = f"Cancel requested for {run_id}; it stops within one epoch."


def _latest_metrics(history: pd.DataFrame) -> str:
    if history.empty:
        return ""
    last = history.sort_values("epoch").iloc[-1]
    parts = []
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        if name in last and pd.notna(last[name]):
            parts.append(f"{name} **{float(last[name]):.4g}**")
        elif name in last:
            parts.append(f"{name} **nan**")
    return f"epoch {int(last['epoch'])}: " + " · ".join(parts)


def run_card(info: Any, history: pd.DataFrame, label: str | None = None) -> None:
    """One run: label (``summary.run_labels`` of the runs shown), status badge, progress
    epoch k/N with ETA, latest metrics, a cancel button while it is queued or running, and a failure's error text."""
    with st.container(border=True):
        head = st.columns([3, 1.3], vertical_alignment="center")  # room for "Cancel" in a half-width card
        color = BADGE_COLORS.get(info.status, "gray")
        with head[0]:
            st.markdown(f"**{label or summary.run_labels([info])[info.id]}** &nbsp; "
                        f":{color}-badge[{info.status}]")
            # a renamed run's label is its name: the caption says what it trains
            st.caption(" · ".join(p for p in (summary.config_label(info) if info.name else None,
                                               f"id `{info.id}`") if p))
            where = tracking.mirrored(info.tracking)
            if where:
                st.caption(where)
        if info.status in ACTIVE:
            if info.cancel_requested:
                head[1].caption("cancelling…")
            else:
                head[1].button("Cancel", key=f"runs.cancel.{info.id}", on_click=_cancel,
                               args=(info.id,), icon=":material/stop_circle:")
        total = max(1, int(info.epochs_total or 0))
        done = min(total, int(info.epochs_done or 0))
        text = f"epoch {done}/{total}"
        eta = eta_seconds(info, history)
        if eta is not None:
            text += f" · ETA {format_seconds(eta)}"
        elif info.status == "queued":
            text += " · waiting for a worker"
        st.progress(done / total, text=text)
        latest = _latest_metrics(history)
        if latest:
            st.markdown(latest)
        if info.status == "failed":
            st.error(f"Failed: {info.error or 'no error text was recorded'}",
                     icon=":material/error:")
        elif info.status == "diverged":
            st.warning(f"Diverged: the loss became NaN or inf at epoch {done}; the epochs "
                       "before it are kept. " + (info.error or ""), icon=":material/warning:")
        elif info.status == "interrupted":
            st.warning("Interrupted: its worker stopped without finishing (server "
                       f"restart?). {info.error or ''}", icon=":material/warning:")


def live_charts(runs: Sequence[Any], history: pd.DataFrame, labels: dict[str, str] | None = None) -> None:
    """Loss, accuracy and learning-rate charts of ``runs`` (one colour per run)."""
    shown = [r for r in runs if not history.empty and (history["run_id"] == r.id).any()]
    if not shown:
        return
    every = labels or summary.run_labels(runs)
    labels = {r.id: every[r.id] for r in shown}
    colors = charts.run_colors(labels, schedules={r.id: r.config.get("schedule", "") for r in shown})
    for tab, (_, metrics) in zip(st.tabs([t for t, _ in LIVE_CHARTS]), LIVE_CHARTS):
        with tab:
            # One chart per row: run labels are long and the legend needs the width.
            for metric in metrics:
                fig = charts.metric_figure(history, metric, labels, colors=colors)
                st.plotly_chart(fig, key=f"runs.chart.{metric}")


def _active_ids(runs: Sequence[Any]) -> tuple[str, ...]:
    return tuple(sorted(r.id for r in runs if r.status in ACTIVE))


def _snapshot() -> tuple[list[Any], pd.DataFrame]:
    store = state.store()
    # reconcile (a dead worker's run turns failed/interrupted) and start workers for runs
    # left queued, e.g. behind a worker that died or a server that restarted
    state.executor().refresh()
    runs = visible_runs(store.list_runs(kind="train"))
    history = store.history([r.id for r in runs]) if runs else pd.DataFrame()
    return runs, history


def _watch_for_new_runs(shown: tuple[str, ...]) -> None:
    """While nothing is active: a light check that draws nothing and reruns the page when
    a run is queued elsewhere (another tab, the CLI) or one is deleted. Without it a Runs
    page opened before pressing Train in another tab never showed that run."""

    @st.fragment(run_every=IDLE_REFRESH_SECONDS)
    def _watch() -> None:
        try:
            now = tuple(r.id for r in visible_runs(state.store().list_runs(kind="train")))
        except (StoreError, OSError):
            return  # the page already says why it cannot show runs
        if now != shown:
            st.rerun()

    _watch()


def live_view() -> None:
    """The Runs page body: cards and charts, refreshed while anything is active."""
    try:
        runs, _ = _snapshot()
    except (StoreError, OSError) as err:  # a read-only cache folder or a full disk
        st.error(f"The runs cannot be shown. {err}", icon=":material/error:")
        return
    tracking.controls()
    if not runs:
        st.info("No runs yet. Choose schedules on the Schedules page and press Train.",
                icon=":material/info:")
        st.page_link("pages/schedules.py", label="Go to Schedules", icon=":material/show_chart:")
        _watch_for_new_runs(())
        return
    active = _active_ids(runs)
    if not active:
        _watch_for_new_runs(tuple(r.id for r in runs))

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def _live() -> None:
        now, history = _snapshot()
        if _active_ids(now) != active:
            # Something started or ended: a full rerun resets the refresh rate.
            st.rerun()
        notice = st.session_state.pop("runs.notice", None)
        if notice:
            st.toast(notice)
        n_active = len(active)
        st.caption(f"{n_active} queued or running · refreshing every {REFRESH_SECONDS:g}s"
                   if n_active else "Nothing is running.")
        # one label set for cards and charts: runs of one schedule differ by their settings
        labels = summary.run_labels(now)
        cols = st.columns(2)  # cards first: progress is what a person comes here for
        for i, info in enumerate(now):
            with cols[i % 2]:
                run_card(info, history[history["run_id"] == info.id] if not history.empty
                         else history, labels[info.id])
        live_charts(now, history, labels)

    _live()
