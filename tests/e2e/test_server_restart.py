"""Issue 6 fault: the Streamlit server killed (SIGKILL) and restarted mid-training.

Each test runs its own servers on its own cache folder (not the session ``server``), so
it can kill one with ``SIGKILL`` to its whole process group and start another on the
same cache. The run is real Keras training queued through a ``LocalExecutor`` on the
server's cache (what the page's Train calls; the pages' flow has its own journeys).
Workers run in their own session, so the kill leaves them be:

* worker kept: the run keeps training while no server exists, and the new server's Runs
  page, opened first (before any other page of that server), is under the router (page
  titles in the menu, not file names), shows the run and watches it finish, live.
* worker killed too: the new server's Runs page shows the run ``failed`` with the
  reason, its finished epochs kept, and no exception box.

Screenshots go under artifacts/e2e (``restart.*``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    SERVER_ENV,
    TRAIN_TIMEOUT,
    Server,
    _alive,
    _need_browser,
    card_state,
    goto,
    new_page,
    step,
    wait_until,
)

NAV_TITLES = ["Schedules", "Runs", "Compare", "LR finder"]
# 1,000 images in batches of 16: 63 steps an epoch, long enough that 8 epochs outlast
# the restart on a busy 2-core machine, short enough for the time box.
RUN = dict(epochs=8, train_size=1000, batch_size=16)


@pytest.fixture
def cache(tmp_path_factory):
    _need_browser()
    return tmp_path_factory.mktemp("restart-cache")


def _kill_server(srv: Server) -> None:
    """SIGKILL the server's whole process group (its session), as an OOM kill or a
    `kill -9` of the terminal's job would; nothing gets to clean up."""
    if srv.proc and srv.proc.poll() is None:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)


def _kill_workers(cache: Path) -> None:
    """SIGKILL the workers of this cache only (by pid, from its store)."""
    if not (cache / "lrviz.db").exists():
        return
    from lrviz.store import RunStore

    for worker in RunStore(cache / "lrviz.db").workers():
        if worker.pid and _alive(worker.pid):
            os.kill(worker.pid, signal.SIGKILL)


def _log_from(srv: Server, offset: int) -> str:
    with open(srv.log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def _nav_titles(page) -> list[str]:
    """The menu's labels, without the Material icon names drawn as ligature text."""
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    return [links.nth(i).inner_text().strip().splitlines()[-1].strip()
            for i in range(links.count())]


def _wait_menu(page) -> None:
    """The router's menu: page titles, not the file names of the old pages/ layout."""
    try:
        wait_until(lambda: _nav_titles(page) == NAV_TITLES, "the menu", timeout=10)
    except AssertionError:
        raise AssertionError(f"the menu shows {_nav_titles(page)}, wanted the router's "
                             f"{NAV_TITLES}") from None


def _first_epoch_then_kill(browser, srv: Server, monkeypatch,
                           shot_name: str) -> tuple[str, int, int]:
    """Queue a real training on the server's cache (as the page's Train does, through a
    ``LocalExecutor``), start the server, watch it on the server's Runs page until an epoch is stored, then
    SIGKILL the server. Returns (run id, worker pid, epochs done at the kill)."""
    from lrviz.config import RunConfig
    from lrviz.jobs import LocalExecutor

    monkeypatch.setenv("LRVIZ_CACHE_DIR", str(srv.cache_dir))  # the worker's cache too
    store = srv.store()
    config = RunConfig.create("constant", {"lr": 0.01}, None, "sgd", None, **RUN)
    run_id = LocalExecutor(store, max_concurrent=1, idle_timeout=5.0).submit(config).run_id
    srv.start()  # while the worker imports TensorFlow
    page = new_page(browser)
    try:
        with step(page, shot_name):
            goto(page, srv, "runs", "Runs")
            wait_until(lambda: (s := card_state(page, run_id)) and s[0] == "running"
                       and s[1] >= 1, f"run {run_id} running with an epoch on the page",
                       timeout=TRAIN_TIMEOUT)
    finally:
        page.context.close()
    info = store.get(run_id)
    assert info.status == "running" and info.pid, f"run {run_id} after one epoch: {info}"
    worker = info.pid
    assert os.getpgid(worker) not in (os.getpgid(srv.proc.pid), os.getpgid(0)), \
        "the worker shares a process group with the server or the test: killing it would kill the worker"
    _kill_server(srv)
    return run_id, worker, store.get(run_id).epochs_done


def test_worker_outlives_server_kill_and_new_server_shows_run_finishing(cache, browser,
                                                                       monkeypatch):
    env = {**SERVER_ENV, "LRVIZ_MAX_CONCURRENT": "1"}
    old = Server(cache, env)  # started once the run is queued
    new = None
    try:
        run_id, worker, done_at_kill = _first_epoch_then_kill(
            browser, old, monkeypatch, "restart.1-running-before-the-kill")
        store = old.store()
        assert _alive(worker), f"worker {worker} died with the server (SIGKILL to its group)"
        assert done_at_kill < RUN["epochs"], \
            f"run {run_id} finished before the kill ({done_at_kill} epochs): nothing tested"

        new = Server(cache, env).start()  # same cache, a new port: a restarted app
        offset = new.log.stat().st_size
        page = new_page(browser)
        try:
            with step(page, "restart.2-runs-first-after-restart"):
                goto(page, new, "runs", "Runs")
                # /runs first after a restart: the router, not the old pages/ layout
                _wait_menu(page)
                first = wait_until(lambda: card_state(page, run_id), f"the card of run {run_id}")
                assert first[0] in ("running", "finished") and first[2] == RUN["epochs"], first
                assert store.get(run_id).status != "failed", store.get(run_id).error
                page.evaluate("() => { window.__e2e_no_reload = 1; }")

            with step(page, "restart.3-run-finishes-live"):
                last = wait_until(lambda: (s := card_state(page, run_id)) and s[0] not in
                                  ("queued", "running") and s,
                                  f"run {run_id} to end on the page (store: "
                                  f"{store.get(run_id).status} {store.get(run_id).epochs_done})",
                                  timeout=TRAIN_TIMEOUT)
                assert last == ("finished", RUN["epochs"], RUN["epochs"]), last
                assert page.evaluate("() => window.__e2e_no_reload === 1"), "the page reloaded"
                info = store.get(run_id)
                assert (info.status, info.epochs_done, info.pid) == \
                    ("finished", RUN["epochs"], worker), info
                assert store.history(run_id)["epoch"].tolist() == list(range(1, RUN["epochs"] + 1))
        finally:
            page.context.close()
        log = _log_from(new, offset)
        assert "Traceback (most recent call last)" not in log, log[-1500:]
        # the worker idles out (5 s) by itself once the queue is empty
        wait_until(lambda: not _alive(worker), f"worker {worker} to idle out", timeout=20)
    finally:
        for srv in (old, new):
            if srv:
                _kill_server(srv)
        _kill_workers(cache)


def test_server_and_worker_killed_run_shows_failed_with_epochs_kept(cache, browser,
                                                                    monkeypatch):
    env = {**SERVER_ENV, "LRVIZ_MAX_CONCURRENT": "1"}
    old = Server(cache, env)  # started once the run is queued
    new = None
    try:
        run_id, worker, _ = _first_epoch_then_kill(
            browser, old, monkeypatch, "restart.4-running-before-the-kills")
        os.kill(worker, signal.SIGKILL)  # the worker dies too: nobody marks the run
        wait_until(lambda: not _alive(worker), f"worker {worker} to die")
        store = old.store()
        kept = store.get(run_id).epochs_done
        assert store.get(run_id).status == "running" and kept >= 1, store.get(run_id)

        new = Server(cache, env).start()
        offset = new.log.stat().st_size
        page = new_page(browser)
        try:
            with step(page, "restart.5-runs-after-server-and-worker-killed"):
                goto(page, new, "runs", "Runs")
                _wait_menu(page)
                state = wait_until(lambda: (s := card_state(page, run_id)) and s[0] not in
                                   ("queued", "running") and s,
                                   f"run {run_id} to leave 'running' on the page", timeout=20)
                assert state[0] in ("failed", "interrupted") and state[1] == kept, state
                card_text = page.get_by_text(f"worker process {worker} died").first
                card_text.wait_for(timeout=10_000)
                info = store.get(run_id)
                assert info.status in ("failed", "interrupted"), info
                assert f"worker process {worker} died" in info.error
                assert f"during epoch {kept + 1}" in info.error, info.error
                assert info.epochs_done == kept
                assert store.history(run_id)["epoch"].tolist() == list(range(1, kept + 1))
            time.sleep(1.5)  # a refresh or two later: still not back to running
            assert store.get(run_id).status == info.status
        finally:
            page.context.close()
        log = _log_from(new, offset)
        assert "Traceback (most recent call last)" not in log, log[-1500:]
    finally:
        for srv in (old, new):
            if srv:
                _kill_server(srv)
        _kill_workers(cache)
