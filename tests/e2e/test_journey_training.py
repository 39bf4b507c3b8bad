"""Journey 2 in a real browser: train, watch, reload, cancel.

Real training on a tiny sample (1,000 images) in the app's own worker processes. The
Runs page is watched without reloading (a marker set on ``window`` must survive: the
live fragment does the updating), then reloaded mid-training; a Runs tab opened before
Train is pressed in another tab shows the new run by itself, and cancels it from its card. The server's store is read from the test to check what the
page says.
"""

from __future__ import annotations

import time

from tests.e2e.conftest import (
    TRAIN_TIMEOUT,
    card_state,
    goto,
    key,
    new_page,
    run_card,
    step,
    train_from_schedules,
    wait_until,
)

MARK = "() => { window.__e2e_no_reload = 1; }"
MARKED = "() => window.__e2e_no_reload === 1"


def test_epochs_appear_live_without_reload(server, page):
    with step(page, "j2.1-train-2-epochs"):
        (run_id,) = train_from_schedules(page, server, ["constant"], epochs=2, train_size=1000)

    with step(page, "j2.2-runs-page"):
        page.evaluate(MARK)
        page.get_by_role("link", name="Watch them on the Runs page").click()
        page.get_by_role("heading", name="Runs").wait_for()
        first = wait_until(lambda: card_state(page, run_id), f"the card of run {run_id}")
        assert first[2] == 2, first

    seen: list[tuple[str, int, int]] = [first]
    with step(page, "j2.3-epochs-appear-live"):
        deadline = time.time() + TRAIN_TIMEOUT
        while time.time() < deadline and seen[-1][0] not in ("finished", "failed", "diverged"):
            now = card_state(page, run_id)
            if now and now != seen[-1]:
                seen.append(now)
            time.sleep(0.2)
        assert page.evaluate(MARKED), "the page was reloaded: the marker on window is gone"
        assert seen[-1] == ("finished", 2, 2), f"card states seen without reloading: {seen}"
        assert seen[0][1] < 2 and seen[0][0] in ("queued", "running"), \
            f"the run was already done when the page opened, nothing seen live: {seen}"
        dones = [s[1] for s in seen]
        assert dones == sorted(dones), f"epochs went backwards on the page: {seen}"
        info = server.store().get(run_id)
        assert (info.status, info.epochs_done) == ("finished", 2)
        assert list(server.store().history(run_id)["epoch"]) == [1, 2]


def test_reload_mid_training_run_continues(server, page):
    with step(page, "j2.4-train-15-epochs"):
        (run_id,) = train_from_schedules(page, server, ["constant"], epochs=15, train_size=1000)
        page.get_by_role("link", name="Watch them on the Runs page").click()
        page.get_by_role("heading", name="Runs").wait_for()
        before = wait_until(lambda: (i := server.store().get(run_id)).status == "running"
                            and i.epochs_done >= 1 and i, "the run to finish its first epoch",
                            timeout=TRAIN_TIMEOUT)

    with step(page, "j2.5-reload-mid-training"):
        page.reload()
        page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
        after = wait_until(lambda: card_state(page, run_id), "the card after the reload")
        assert after[0] in ("running", "finished") and after[1] >= before.epochs_done, \
            f"after reload the card shows {after}; the store said {before.status} " \
            f"{before.epochs_done} epochs before it"
        page.evaluate(MARK)

    with step(page, "j2.6-run-continues-and-finishes"):
        wait_until(lambda: server.store().get(run_id).epochs_done > before.epochs_done,
                   "more epochs in the store after the reload", timeout=TRAIN_TIMEOUT)
        wait_until(lambda: card_state(page, run_id) == ("finished", 15, 15),
                   "the card to show finished 15/15", timeout=TRAIN_TIMEOUT)
        assert page.evaluate(MARKED), "the page reloaded again by itself"
        assert len(server.store().history(run_id)) == 15


def test_runs_tab_open_before_train_shows_the_run_and_cancels_it(server, browser, page):
    with step(page, "j2.7-runs-tab-open-first"):
        goto(page, server, "runs", "Runs")
        page.evaluate(MARK)

    other = new_page(browser)  # a second tab (its own session) presses Train
    try:
        with step(other, "j2.8-train-long-run-in-other-tab"):
            (run_id,) = train_from_schedules(other, server, ["constant"], epochs=300,
                                             train_size=1000)
    finally:
        other.context.close()

    with step(page, "j2.9-run-appears-without-reload"):
        wait_until(lambda: card_state(page, run_id), f"run {run_id} on the Runs tab opened "
                   "before Train (within the idle refresh)", timeout=30)
        assert page.evaluate(MARKED), "the Runs tab was reloaded"
        wait_until(lambda: server.store().get(run_id).status == "running",
                   "the long run to start", timeout=TRAIN_TIMEOUT)

    with step(page, "j2.10-press-cancel"):
        button = page.locator(f"{key('runs.cancel.' + run_id)} button")
        wait_until(lambda: button.count() > 0, "the card's Cancel button")
        button.first.click()
        wait_until(lambda: (s := card_state(page, run_id)) and s[0] == "cancelled",
                   "the card to say cancelled", timeout=60)
        assert run_card(page, run_id).get_by_role("button", name="Cancel").count() == 0
        info = server.store().get(run_id)
        assert info.status == "cancelled" and info.epochs_done < 300, (info.status, info.epochs_done)
        assert len(server.store().history(run_id)) == info.epochs_done  # finished epochs kept
