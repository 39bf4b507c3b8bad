"""Journey 1 in a real browser: the Schedules page redraws as you type.

Open the app, narrow the picker to one schedule, change a parameter and see the curve
change (read from the Plotly figure in the DOM), add a second schedule and see two
traces, then type a bad value: the message names the field and the other curve still
draws.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    choose_schedules,
    goto,
    key,
    plotly_traces,
    set_number,
    step,
    wait_until,
)

CHART = key("lab.chart")


def names(page) -> list[str]:
    return [t["name"] for t in plotly_traces(page, CHART)]


def curve(page, name: str) -> list[float]:
    for trace in plotly_traces(page, CHART):
        if trace["name"] == name:
            return trace["y"]
    return []


def test_schedules_chart_follows_the_parameters(server, page):
    with step(page, "j1.1-open-app"):
        goto(page, server, "", "Learning-rate schedules")
        shown = wait_until(lambda: names(page), "the default curves to draw", timeout=60)
        assert shown == ["constant", "keras_legacy_decay", "step", "exponential"], shown

    with step(page, "j1.2-one-schedule"):
        choose_schedules(page, ["step"])
        wait_until(lambda: names(page) == ["step"], "only the step curve", timeout=30)
        before = curve(page, "step")
        assert before and before[0] == pytest.approx(0.5), before[:3]

    with step(page, "j1.3-change-drop_rate"):
        set_number(page, "lab.step.p.drop_rate", 0.5)
        after = wait_until(lambda: (y := curve(page, "step")) != before and y,
                           "the step curve to change after drop_rate=0.5")
        # Same start (initial_lr), a deeper fall: epochs 0-99 see 9 drops, of 0.5 not 0.8.
        assert after[0] == pytest.approx(0.5)
        assert min(after) < min(before) / 10, (min(after), min(before))
        assert min(after) == pytest.approx(0.5 * 0.5 ** 9, rel=1e-6)

    with step(page, "j1.4-add-second-schedule"):
        choose_schedules(page, ["exponential"], clear=False)
        wait_until(lambda: names(page) == ["step", "exponential"], "two traces: step, exponential")
        assert curve(page, "step") == after  # the first curve kept its new value

    with step(page, "j1.5-bad-value"):
        set_number(page, "lab.step.p.drop_rate", -1)
        panel_error = page.locator('[data-testid="stAlert"]', has_text="drop_rate")
        wait_until(lambda: panel_error.count() > 0, "an error naming drop_rate")
        text = panel_error.first.inner_text()
        assert "drop_rate" in text and "-1" in text, text
        wait_until(lambda: names(page) == ["exponential"],
                   "the exponential curve to keep drawing without the bad step curve")
        exp_curve = curve(page, "exponential")
        assert exp_curve[0] == pytest.approx(0.5) and exp_curve[-1] < exp_curve[0]
        train = page.locator(key("train.go")).get_by_role("button", name="Train 1 run")
        wait_until(lambda: train.count() > 0, "the Train button to offer 1 run")
        assert page.get_by_text("1 schedule with errors left out").count() == 1
