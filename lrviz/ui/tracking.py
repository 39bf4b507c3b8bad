"""Tracking on the Runs page: the switches for Neptune and TensorBoard, and where each
run was mirrored (or why it was not)."""

from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from lrviz import settings
from lrviz.tracking import tracking_settings

NAMES = {"neptune": "Neptune", "tensorboard": "TensorBoard"}


def _switch(name: str) -> None:
    settings.set_app_switch(name, bool(st.session_state[f"tracking.{name}"]))


def controls() -> None:
    """Two toggles (kept in the cache folder, read by every worker at its next run) and
    what is in force; an environment variable, when set, wins and the toggle says so."""
    current = tracking_settings()
    switches = settings.app_switches()
    with st.expander("Tracking: mirror runs to Neptune or TensorBoard", icon=":material/sync:"):
        cols = st.columns(2)
        for col, name in zip(cols, NAMES):
            info = current[name]
            from_env = info["from_env"]
            col.toggle(NAMES[name], value=info["enabled"] if from_env else switches[name],
                       key=f"tracking.{name}", on_change=_switch, args=(name,), disabled=from_env,
                       help="new runs only; set by an environment variable" if from_env else "new runs only")
            col.caption(info["why"])
            if name == "neptune" and info["enabled"]:
                col.caption(f"mode {info['mode']}" + (f", project {info['project']}" if info["project"] else "")
                            + (f", offline files in `{info['data_directory']}`" if info["mode"] == "offline" else ""))
            if name == "tensorboard" and info["enabled"]:
                col.caption(f"`tensorboard --logdir {info['logdir']}`")


def mirrored(tracking: Mapping[str, Any] | None) -> str | None:
    """One line for a run card: where the run was mirrored, or the tracker's error."""
    parts = []
    for name, label in NAMES.items():
        entry = (tracking or {}).get(name)
        if not entry:
            continue
        if entry.get("error"):
            parts.append(f"{label} failed: {entry['error']}")
        elif entry.get("url"):
            parts.append(f"{label}: {entry['url']}")
        elif entry.get("path"):
            parts.append(f"{label}: `{entry['path']}`")
    return " · ".join(parts) or None
