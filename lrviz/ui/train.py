"""The Train flow: build a RunConfig per chosen schedule, submit each to the executor,
and say per run what happened.

A config that already finished is reused at once (the page says so and offers "Train
again"); a config that is queued or running is not started twice. Submitting only
writes to the store and wakes a worker, so pressing Train never blocks the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import streamlit as st

from lrviz.config import RunConfig
from lrviz.params import ParamError
from lrviz.ui import state

RESULTS_KEY = "train.results"
ACTIVE = ("queued", "running")


@dataclass
class TrainResult:
    """What pressing Train did for one config."""

    label: str
    config: RunConfig
    run_id: str | None = None
    outcome: str = "queued"  # queued | cached | active | error
    name: str = ""
    status: str = ""
    detail: str = ""


def build_configs(choices: Sequence[Any], settings: Any) -> list[tuple[str, RunConfig]]:
    """A validated RunConfig per trainable choice (``lab.ScheduleChoice``)."""
    if settings.values is None:
        return []
    configs = []
    for choice in choices:
        if not choice.trainable:
            continue
        config = RunConfig.create(choice.name, choice.params, choice.granularity,
                                  choice.optimizer, choice.optimizer_params, **settings.values)
        configs.append((config.label(), config))
    return configs


def classify(reused: bool, status: str) -> str:
    """queued (new run), cached (a finished/diverged run reused) or active (not twice)."""
    if not reused:
        return "queued"
    return "active" if status in ACTIVE else "cached"


def submit(label: str, config: RunConfig, *, retrain: bool = False) -> TrainResult:
    """Submit one config and describe the outcome; never raises for a bad config."""
    result = TrainResult(label, config)
    try:
        sub = state.executor().submit(config, retrain=retrain)
    except (ParamError, OSError, RuntimeError) as err:
        result.outcome, result.detail = "error", str(err)
        return result
    return _describe(result, sub)


def _describe(result: TrainResult, sub) -> TrainResult:
    info = state.store().get(sub.run_id)
    result.run_id, result.status = sub.run_id, info.status
    result.name = info.name or sub.run_id
    result.outcome = classify(sub.reused, info.status)
    return result


def _submit_all(configs: list[tuple[str, RunConfig]]) -> None:
    """Several runs go in as one group, so a worker trains the compatible ones together
    in one batched computation (lrviz.training.batched); one run goes in alone."""
    if len(configs) > 1:
        try:
            subs = state.executor().submit_many([config for _, config in configs])
        except (ParamError, OSError, RuntimeError, AttributeError):  # StoreError is a RuntimeError
            subs = None  # per-run submission below names the run that failed
        if subs is not None:
            st.session_state[RESULTS_KEY] = [_describe(TrainResult(label, config), sub)
                                             for (label, config), sub in zip(configs, subs)]
            return
    st.session_state[RESULTS_KEY] = [submit(label, config) for label, config in configs]


def _retrain(index: int) -> None:
    results = st.session_state.get(RESULTS_KEY, [])
    if 0 <= index < len(results):
        old = results[index]
        results[index] = submit(old.label, old.config, retrain=True)


def train_section(configs: list[tuple[str, RunConfig]], skipped: int = 0) -> None:
    """The Train button and, after a press, one line per run with what happened."""
    n = len(configs)
    cols = st.columns([1, 3])
    cols[0].button(
        f"Train {n} run{'s' if n != 1 else ''}" if n else "Train", key="train.go",
        type="primary", disabled=not n, on_click=_submit_all, args=(configs,),
        icon=":material/model_training:",
        help="Trains each valid schedule on Fashion-MNIST in the background. A config "
             "that already finished is reused; nothing is trained twice.",
    )
    note = "Each run trains the article's MLP on Fashion-MNIST in a background worker."
    if skipped:
        note += f" {skipped} schedule{'s' if skipped != 1 else ''} with errors left out."
    cols[1].caption(note)
    results: list[TrainResult] = st.session_state.get(RESULTS_KEY, [])
    for i, res in enumerate(results):
        _show_result(i, res)
    if results:
        st.page_link("pages/runs.py", label="Watch them on the Runs page",
                     icon=":material/monitoring:")


def _show_result(index: int, res: TrainResult) -> None:
    if res.outcome == "error":
        st.error(f"{res.label}: not submitted. {res.detail}", icon=":material/error:")
    elif res.outcome == "queued":
        st.success(f"{res.label}: queued as **{res.name}**.", icon=":material/schedule:")
    elif res.outcome == "active":
        st.warning(f"{res.label}: already {res.status} as **{res.name}**, not started twice.",
                   icon=":material/sync:")
    else:
        row = st.columns([4, 1], vertical_alignment="center")
        row[0].info(f"{res.label}: reused cached run **{res.name}** ({res.status}); "
                    "its results are ready on the Runs and Compare pages.",
                    icon=":material/cached:")
        row[1].button("Train again", key=f"train.again.{index}", on_click=_retrain,
                      args=(index,), icon=":material/replay:",
                      help="Train this config once more as a new run.")
