"""Journey 4 in a real browser: the LR finder page runs a small range test.

Kept tiny through the page's own settings (30 steps on 1,000 images); the test runs in
a worker process and its chart is drawn from the store, live, then with suggestions.
"""

from __future__ import annotations

import math

from tests.e2e.conftest import TRAIN_TIMEOUT, goto, key, plotly_traces, set_number, step, wait_until

STEPS = 30


def test_lr_finder_runs_a_small_test_and_draws_it(server, page):
    with step(page, "j4.1-open-lr-finder"):
        goto(page, server, "lr_finder", "LR finder")
        page.get_by_text("No test with these settings yet").wait_for()

    with step(page, "j4.2-tiny-settings"):
        set_number(page, "lrf.steps", STEPS)
        wait_until(lambda: page.get_by_text(f"{STEPS} steps from").count() > 0,
                   f"the caption to say {STEPS} steps")
        page.get_by_text("Sample, model and stop rule").click()
        set_number(page, "lrf.train_size", 1000)
        wait_until(lambda: page.locator(f"{key('lrf.train_size')} input").input_value() == "1000",
                   "train_size 1000")

    with step(page, "j4.3-run-range-test"):
        page.locator(key("lrf_button.run")).get_by_role("button").click()
        chart = key("lrf.chart")
        wait_until(lambda: page.get_by_text("Finished:").count() or page.get_by_text("Stopped at divergence").count(),
                   "the range test to end", timeout=TRAIN_TIMEOUT)
        traces = wait_until(lambda: [t for t in plotly_traces(page, chart) if len(t["x"]) >= 5],
                            "the range-test chart with points")
        xs = traces[0]["x"]
        assert 5 <= len(xs) <= STEPS, len(xs)
        assert all(b > a for a, b in zip(xs, xs[1:])), "the LR should rise step by step"
        assert all(math.isfinite(float(v)) for v in traces[0]["y"])
        runs = server.store().list_runs(kind="lr_find")
        assert len(runs) == 1 and runs[0].status in ("finished", "diverged"), runs
        assert len(server.store().points(runs[0].id)) == len(xs)
