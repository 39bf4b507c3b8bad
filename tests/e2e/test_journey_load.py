"""Journey 5 in a real browser: load.

Two runs train (two workers) while 8 browser sessions (contexts) open at once on the
four pages: every page answers with its content and no exception, a Schedules session
still redraws on input, and the Runs page's live view keeps counting epochs in at least
one session without a reload. Bounded loops; localhost only.
"""

from __future__ import annotations

import time

from tests.e2e.conftest import (
    ARTIFACTS,
    TRAIN_TIMEOUT,
    assert_no_exception,
    card_state,
    key,
    new_page,
    plotly_traces,
    set_number,
    step,
    train_from_schedules,
    wait_until,
)

SESSIONS = 8
PAGES = (("", "Learning-rate schedules"), ("runs", "Runs"), ("compare", "Compare"),
         ("lr_finder", "LR finder"))
EPOCHS = 15


def test_eight_sessions_while_two_runs_train(server, browser, page):
    with step(page, "j5.1-start-two-runs"):
        run_ids = train_from_schedules(page, server, ["time_based", "cosine"],
                                       epochs=EPOCHS, train_size=1000)

    sessions = []
    seen: dict[str, list[int]] = {}  # Runs session -> epoch totals it showed, in order
    try:
        with step(page, "j5.2-open-8-sessions-at-once"):
            t0 = time.time()
            for i in range(SESSIONS):
                path, title = PAGES[i % len(PAGES)]
                pg = new_page(browser, timeout_ms=90_000)
                pg.goto(f"{server.url}/{path}", wait_until="commit")  # all loading together
                sessions.append((f"s{i}-{path or 'schedules'}", pg, title))
            # One bounded loop: note when each page answers and, meanwhile, what the Runs
            # sessions show, so a run that ends early is still seen counting.
            answered: dict[str, float] = {}
            deadline = time.time() + TRAIN_TIMEOUT
            while time.time() < deadline:
                for name, pg, title in sessions:
                    if name not in answered and pg.get_by_role("heading", name=title).count():
                        answered[name] = round(time.time() - t0, 1)
                        if name.endswith("runs"):
                            pg.evaluate("() => { window.__e2e_no_reload = 1; }")
                    if name in answered and name.endswith("runs"):
                        states = [card_state(pg, r) for r in run_ids]
                        if all(states):
                            done = sum(s[1] for s in states)
                            if not seen.setdefault(name, []) or seen[name][-1] != done:
                                seen[name].append(done)
                ended = all(server.store().get(r).status not in ("queued", "running") for r in run_ids)
                if len(answered) == SESSIONS and (ended or any(v[-1] > v[0] for v in seen.values())):
                    break
                time.sleep(0.3)
            (ARTIFACTS / "load-answer-seconds.txt").write_text(
                "\n".join(f"{k}\t{v}" for k, v in answered.items()) + "\n")
            missing = [n for n, _, _ in sessions if n not in answered]
            assert not missing, f"sessions that never showed their page: {missing}"
            for name, pg, _ in sessions:
                assert_no_exception(pg, name)

        for name, pg, _ in sessions:
            with step(pg, f"j5.3-{name}-content"):
                if name.endswith("schedules"):
                    wait_until(lambda p=pg: plotly_traces(p, key("lab.chart")), f"{name}: the LR chart")
                elif name.endswith("runs"):
                    wait_until(lambda p=pg: all(card_state(p, r) for r in run_ids), f"{name}: both run cards")
                elif name.endswith("compare"):
                    pg.locator('[data-testid="stDataFrame"]').first.wait_for()
                else:
                    pg.locator(key("lrf_button.run")).wait_for()

        runs_pages = [(n, p) for n, p, _ in sessions if n.endswith("runs")]
        with step(page, "j5.4-live-view-keeps-updating"):
            deadline = time.time() + TRAIN_TIMEOUT
            while time.time() < deadline:
                for n, p in runs_pages:
                    states = [card_state(p, r) for r in run_ids]
                    if all(states):
                        done = sum(s[1] for s in states)
                        if not seen.setdefault(n, []) or seen[n][-1] != done:
                            seen[n].append(done)
                if all(server.store().get(r).status not in ("queued", "running") for r in run_ids) \
                        and all(v and v[-1] == 2 * EPOCHS for v in seen.values()):
                    break
                time.sleep(0.5)
            grew = [n for n, v in seen.items() if len(v) >= 2 and v[-1] > v[0]]
            assert grew, f"no Runs session saw the epoch count grow; totals seen: {seen}"
            for n, p in runs_pages:
                assert p.evaluate("() => window.__e2e_no_reload === 1"), f"{n} reloaded"
                assert seen[n][-1] == 2 * EPOCHS, f"{n} ended showing {seen[n][-1]} of {2 * EPOCHS} epochs"

        schedules = next(p for n, p, _ in sessions if n.endswith("schedules"))
        with step(schedules, "j5.5-schedules-still-answers"):
            before = plotly_traces(schedules, key("lab.chart"))
            set_number(schedules, "lab.constant.p.lr", 0.05)
            wait_until(lambda: plotly_traces(schedules, key("lab.chart")) != before,
                       "the Schedules chart to redraw under load")

        for name, pg, _ in sessions:
            with step(pg, f"j5.6-{name}-end"):
                pass
        with step(page, "j5.7-both-runs-finished"):
            for r in run_ids:
                info = server.store().get(r)
                assert info.status == "finished" and info.epochs_done == EPOCHS, \
                    (r, info.status, info.epochs_done)
    finally:
        for _, pg, _ in sessions:
            pg.context.close()
