"""AppTest of the Schedules page (the app's home): curves, validation, the lesson, Train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lrviz.config import RunConfig
from lrviz.store import RunStore

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _home() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _main_chart(at: AppTest) -> dict | None:
    """The overlaid LR chart's Plotly spec, or None when it is not drawn."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith("-lab.chart"):
            return json.loads(chart.proto.spec)
    return None


def _traces(at: AppTest) -> dict[str, dict]:
    spec = _main_chart(at)
    assert spec is not None, "the LR chart is missing"
    return {t["name"]: t for t in spec["data"]}


def _values(array) -> list[float]:
    """A Plotly data array as a list, whether plain or a base64 typed array."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _choose(at: AppTest, *names: str) -> AppTest:
    return at.multiselect(key="lab.chosen").set_value(list(names)).run()


def test_home_draws_one_trace_per_chosen_schedule():
    at = _home()
    chosen = at.multiselect(key="lab.chosen").value
    assert len(chosen) >= 2
    assert list(_traces(at)) == chosen
    _choose(at, "cosine", "one_cycle", "custom")
    assert not at.exception
    assert list(_traces(at)) == ["cosine", "one_cycle", "custom"]
    assert not _errors(at)


def test_changing_a_param_changes_the_chart_data():
    at = _choose(_home(), "constant", "step")
    assert set(_values(_traces(at)["constant"]["y"])) == {0.01}
    at.number_input(key="lab.constant.p.lr").set_value(0.02).run()
    assert set(_values(_traces(at)["constant"]["y"])) == {0.02}


def test_x_axis_and_log_y_switches():
    at = _choose(_home(), "step")
    x_epochs = _traces(at)["step"]["x"]
    at.radio(key="lab.x").set_value("step").run()
    at.toggle(key="lab.log_y").set_value(True).run()
    spec = _main_chart(at)
    assert spec["data"][0]["x"] != x_epochs
    assert spec["layout"]["yaxis"]["type"] == "log"


def test_bad_value_shows_error_naming_parameter_and_others_still_draw():
    at = _choose(_home(), "constant", "step", "exponential")
    at.number_input(key="lab.step.p.drop_rate").set_value(1.5).run()
    assert not at.exception
    errors = _errors(at)
    assert any("drop_rate" in e and "1.5" in e for e in errors), errors
    assert list(_traces(at)) == ["constant", "exponential"]
    # Fixing it brings the curve back.
    at.number_input(key="lab.step.p.drop_rate").set_value(0.5).run()
    assert list(_traces(at)) == ["constant", "step", "exponential"]
    assert not _errors(at)


def test_text_where_numbers_belong_is_refused():
    at = _choose(_home(), "constant", "multistep")
    at.text_input(key="lab.multistep.p.milestones").input("30, sixty, 90").run()
    assert not at.exception
    assert any("milestones" in e for e in _errors(at)), _errors(at)
    assert list(_traces(at)) == ["constant"]


def test_custom_expression_cannot_import():
    at = _choose(_home(), "constant", "custom")
    at.text_input(key="lab.custom.p.expression").input("__import__('os')").run()
    assert not at.exception
    errors = _errors(at)
    assert any("expression" in e for e in errors), errors
    assert list(_traces(at)) == ["constant"]


def test_run_setting_out_of_range_names_it():
    at = _home()
    at.number_input(key="lab.run.epochs").set_value(10**9).run()
    assert not at.exception
    assert any("epochs" in e for e in _errors(at)), _errors(at)
    assert _main_chart(at) is None


def test_steps_per_epoch_follow_the_settings():
    at = _home()
    assert at.metric[0].value == "313"  # 20,000 / 64, last partial batch counted
    at.number_input(key="lab.run.batch_size").set_value(100).run()
    assert at.metric[0].value == "200"


def test_legacy_decay_lesson_numbers():
    at = _home()
    values = [m.value for m in at.metric]
    assert "0.0286" in values  # Keras 2's decay= after one epoch of 250 batches
    assert "0.099" in values  # what a reader who counts epochs expects


def test_formula_and_keras_snippet_per_schedule():
    at = _choose(_home(), "step", "cosine")
    assert len(at.get("latex")) >= 2
    assert any("keras" in c.value for c in at.code)


@pytest.fixture
def quick_workers(monkeypatch):
    """Workers the Train tests start exit as soon as the queue is empty."""
    monkeypatch.setenv("LRVIZ_WORKER_IDLE_SECONDS", "0")


def _tiny(at: AppTest) -> AppTest:
    at.number_input(key="lab.run.epochs").set_value(1)
    at.number_input(key="lab.run.train_size").set_value(100)
    return _choose(at, "constant")


def _cancel_all(store: RunStore) -> None:
    from lrviz.jobs import get_executor

    executor = get_executor()
    for run in store.list_runs(statuses=("queued", "running")):
        executor.cancel(run.id)


def test_train_queues_a_run_and_does_not_start_it_twice(quick_workers):
    at = _tiny(_home())
    store = RunStore()
    try:
        at.button(key="train.go").click().run()
        assert not at.exception
        runs = store.list_runs(kind="train")
        assert len(runs) == 1 and runs[0].status in ("queued", "running")
        assert runs[0].config["epochs"] == 1 and runs[0].config["train_size"] == 100
        assert any("queued" in s.value for s in at.success)
        # Pressed again while it waits or trains: the same run, not a second one.
        at.button(key="train.go").click().run()
        run = store.get(runs[0].id)
        if run.status in ("queued", "running"):
            assert len(store.list_runs(kind="train")) == 1
            assert any("not started twice" in w.value for w in at.warning)
    finally:
        _cancel_all(store)


def test_finished_config_is_reused_and_can_be_trained_again(quick_workers):
    config = RunConfig.create("constant", {"lr": 0.01}, None, "sgd", None, epochs=1, train_size=100)
    store = RunStore()
    done = store.create_run(config, status="finished", name="cached-constant")
    at = _tiny(_home())
    try:
        at.button(key="train.go").click().run()
        assert not at.exception
        assert [r.id for r in store.list_runs(kind="train")] == [done]
        infos = [i.value for i in at.info]
        assert any("reused cached run" in v and "cached-constant" in v for v in infos), infos
        at.button(key="train.again.0").click().run()
        assert not at.exception
        runs = store.list_runs(kind="train")
        assert len(runs) == 2 and runs[0].id != done and runs[0].status in ("queued", "running")
    finally:
        _cancel_all(store)


@pytest.mark.parametrize("name", ["keras_legacy_decay", "reduce_on_plateau", "cyclic"])
def test_each_schedule_panel_renders(name):
    at = _choose(_home(), name)
    assert list(_traces(at)) == [name]


def test_train_of_several_schedules_submits_one_group_for_the_batched_engine(quick_workers):
    at = _tiny(_home())
    at = _choose(at, "constant", "step")
    store = RunStore()
    try:
        at.button(key="train.go").click().run()
        assert not at.exception
        runs = store.list_runs(kind="train")
        assert sorted(r.config["schedule"] for r in runs) == ["constant", "step"]
        # one group: a worker claims them together and trains them in one computation
        assert runs[0].group_id is not None and runs[0].group_id == runs[1].group_id
    finally:
        _cancel_all(store)
