"""Browser tests: a real `streamlit run app.py` server and Debian's Chromium via Playwright.

One server is started per test session on a free localhost port with its own cache
folder (workers idle out after 5 s; two may train at once); the browser is Debian's
/usr/bin/chromium (Playwright never downloads one). Without a Chromium these tests skip
with one line, except under CI (CI set), where that fails.

Helpers here find widgets by their Streamlit key (``.st-key-<key>``, dots become dashes),
read Plotly figures from the DOM, and wrap each journey step so that a failure names the
step, leaves a screenshot, and no step passes with an exception box on the page.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
# LRVIZ_CHROMIUM, when set, is used as is; else Debian's, else a chromium on PATH.
CHROMIUM = os.environ.get("LRVIZ_CHROMIUM") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
    else shutil.which("chromium") or "/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "e2e"
CHROME_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]
TRAIN_TIMEOUT = 120.0  # a 2-core machine shared with others: training may crawl
SERVER_ENV = {
    "LRVIZ_WORKER_IDLE_SECONDS": "5",  # free the workers soon after the tests
    "LRVIZ_MAX_CONCURRENT": "2",  # the load journey trains two runs at once
}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    why = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need Chromium under CI: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `streamlit run app.py` process on localhost with its own cache."""

    def __init__(self, cache_dir: Path, env: dict | None = None):
        self.cache_dir = cache_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LRVIZ_CACHE_DIR": str(cache_dir),
                    "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = cache_dir / "server.log"
        self._store = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log.read_text()[-2000:]}")
        raise RuntimeError("streamlit did not answer within 60 s")

    def store(self):
        """The server's run store, read from the test (WAL: safe next to the workers)."""
        if self._store is None:
            from lrviz.store import RunStore

            self._store = RunStore(self.cache_dir / "lrviz.db")
        return self._store

    def stop(self, sig=None) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def stop_workers(self, timeout: float = 20.0) -> None:
        """Cancel what is still training and wait for this server's workers to go.

        Workers run in their own session (they outlive a server restart), so stopping the
        server leaves them; they exit after their idle timeout once nothing is queued.
        """
        if not (self.cache_dir / "lrviz.db").exists():
            return
        store = self.store()
        for run in store.list_runs(statuses=("queued", "running")):
            store.request_cancel(run.id)
        deadline = time.time() + timeout
        pids = [w.pid for w in store.workers() if w.pid]
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.3)
        for pid in pids:  # only workers of this server's cache, by pid
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    _need_browser()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this session's screenshots only
    srv = Server(tmp_path_factory.mktemp("e2e-cache"), SERVER_ENV).start()
    yield srv
    srv.stop()
    srv.stop_workers()


@pytest.fixture(autouse=True)
def _server_log_clean(request):
    """No Python traceback in the server's log during a test: an error in a callback or
    a fragment must not pass unseen just because the page did not show it."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    start = srv.log.stat().st_size if srv.log.exists() else 0
    yield
    with open(srv.log, "rb") as f:
        f.seek(start)
        new = f.read().decode("utf-8", "replace")
    if "Traceback (most recent call last)" in new:
        tail = new[new.index("Traceback (most recent call last)"):][:1500]
        pytest.fail(f"{request.node.name}: the server logged a traceback:\n{tail}")


@pytest.fixture(scope="session")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        yield b
        b.close()


def new_page(browser, timeout_ms: int = 30_000):
    """A page in a fresh browser context: a new Streamlit session with its own state."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(timeout_ms)
    return pg


@pytest.fixture
def page(browser, request):
    pg = new_page(browser)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    finally:
        pg.context.close()


# ---------------------------------------------------------------------- finding things
def key(widget_key: str) -> str:
    """CSS selector of the element Streamlit drew for ``widget_key``."""
    return ".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", widget_key)


def goto(page, server: Server, path: str = "", title: str | None = None) -> None:
    """Open a page of the app and wait for its title (the script has run that far)."""
    page.goto(f"{server.url}/{path}")
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    if title:
        page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    wait_app_idle(page)


def set_number(page, widget_key: str, value: Any) -> None:
    """Type ``value`` into a number or text input and commit it (Enter)."""
    box = page.locator(f"{key(widget_key)} input").first
    box.fill(str(value))
    box.press("Enter")


_TRACES_JS = """(el) => (el.data || []).map(t => {
    const arr = (v) => v == null ? [] : (Array.isArray(v) ? v : (v._inputArray !== undefined
        ? Array.from(v._inputArray) : (v.length !== undefined ? Array.from(v) : [])));
    return {name: t.name ?? null, x: arr(t.x), y: arr(t.y), visible: t.visible ?? true};
})"""


def plotly_traces(page, chart: str) -> list[dict]:
    """The traces (name, x, y) of the Plotly figure inside the element ``chart`` (a CSS
    selector), read from the DOM; [] while it is not drawn."""
    el = page.locator(f"{chart} .js-plotly-plot").first
    if el.count() == 0:
        return []
    return el.evaluate(_TRACES_JS)


def plotly_layout(page, chart: str) -> dict:
    el = page.locator(f"{chart} .js-plotly-plot").first
    return el.evaluate("(el) => JSON.parse(JSON.stringify(el.layout || {}))")


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0,
               every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` and the
    last value (or error) seen."""
    deadline = time.time() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the page redraws under us: retry until the deadline
            last = f"{type(exc).__name__}: {exc}"
        if time.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: "
                                 f"{str(last)[:300]}")
        time.sleep(every)


# ---------------------------------------------------------------------- steps
def shot(page, name: str) -> Path:
    """Save a screenshot under artifacts/e2e and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-zA-Z0-9_.-]', '_', name)}.png"
    # Streamlit scrolls an inner element, so full_page alone shows one screen: grow the
    # viewport to the content for the shot (capped), then put it back.
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate("""() => Math.max(...['stMain', 'stAppViewContainer', 'stSidebar']
        .map(id => document.querySelector(`[data-testid="${id}"]`))
        .filter(Boolean).map(el => el.scrollHeight), 0)""")
    tall = min(max(int(height or 0), size["height"]), 8000)
    try:
        if tall > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": tall})
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall > size["height"]:
            page.set_viewport_size(size)
    return path


def assert_no_exception(page, where: str = "") -> None:
    """No Streamlit exception box or Python traceback on the page."""
    boxes = page.locator('[data-testid="stException"]')
    if boxes.count():
        raise AssertionError(f"{where}: Streamlit exception shown: {boxes.first.inner_text()[:500]}")
    body = page.inner_text("body")
    assert "Traceback (most recent call last)" not in body, f"{where}: Python traceback shown"


def wait_app_idle(page, timeout: float = 30.0) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.2)


@contextmanager
def step(page, name: str) -> Iterator[None]:
    """One journey step: on success a screenshot and no exception on the page; on
    failure an error naming the step and a ``-FAILED`` screenshot."""
    try:
        yield
        wait_app_idle(page)
        assert_no_exception(page, name)
    except Exception as exc:
        try:
            shot(page, f"{name}-FAILED")
        except Exception:
            pass
        raise AssertionError(f"step {name!r} failed: {exc}") from exc
    shot(page, name)


# ---------------------------------------------------------------------- Schedules page
def chosen_schedules(page) -> list[str]:
    """The schedule names shown as tags in the Schedules picker."""
    tags = page.locator(f"{key('lab.chosen')} [data-tag]")
    # a tag can vanish mid-loop (a rerun redraws the picker): read each with a short wait
    names = []
    for i in range(tags.count()):
        try:
            names.append((tags.nth(i).get_attribute("aria-label", timeout=2_000) or "").split(" · ")[0])
        except Exception:
            continue
    return names


def choose_schedules(page, names: list[str], *, clear: bool = True) -> None:
    """Empty the Schedules picker (unless ``clear`` is False), then pick ``names`` in
    order, as a person would: the tags' remove buttons, then typing and clicking."""
    picker = page.locator(key("lab.chosen"))
    picker.locator("input").first.wait_for(state="visible")  # tags render with the input
    for _ in range(20 if clear else 0):  # bounded: one tag per click
        tags = chosen_schedules(page)
        if not tags:
            break
        picker.get_by_role("button", name=re.compile(r"^Remove ")).last.click()
        wait_until(lambda n=len(tags): len(chosen_schedules(page)) < n, "a tag to go")
    if clear:
        assert not chosen_schedules(page), f"could not empty the picker: {chosen_schedules(page)}"
    box = picker.locator("input").first
    want = [] if clear else chosen_schedules(page)
    for name in names:
        want.append(name)
        # The first option is "Select N matches" and a rerun may reshuffle the list under
        # the pointer, so: settle, click the schedule's own option, check, and put right
        # what a stray click added (bounded).
        option = page.get_by_role("option", name=re.compile(rf"^{re.escape(name)} · ")).first
        for attempt in range(4):
            try:
                wait_app_idle(page)
                box.click()
                box.fill(name)
                option.wait_for(timeout=5_000)
                time.sleep(0.3)
                option.click(timeout=5_000)
                wait_until(lambda n=name: n in chosen_schedules(page), f"schedule {name!r} picked",
                           timeout=10)
            except Exception:
                if attempt == 3:
                    raise
                box.press("Escape")
            for extra in [n for n in chosen_schedules(page) if n not in want]:
                picker.get_by_role("button", name=re.compile(rf"^Remove {re.escape(extra)} · ")).click()
                wait_until(lambda e=extra: e not in chosen_schedules(page), f"stray {extra!r} removed")
            if chosen_schedules(page) == want:
                break
        assert chosen_schedules(page) == want, f"picker shows {chosen_schedules(page)}, wanted {want}"
    box.press("Escape")
    wait_app_idle(page)


def set_run_settings(page, **values: Any) -> None:
    """Fill the Schedules page's main run settings (epochs, train_size, batch_size)."""
    for name, value in values.items():
        set_number(page, f"lab.run.{name}", value)
        box = page.locator(f"{key('lab.run.' + name)} input").first
        wait_until(lambda b=box, v=str(value): b.input_value() == v, f"run setting {name}={value}")
        time.sleep(0.3)  # the rerun this value starts shows its status widget shortly after
        # let the rerun this value started finish before typing the next one: a field
        # typed while a rerun is in flight can be redrawn with the value it had before
        wait_app_idle(page)


def train_from_schedules(page, server: Server, schedules: list[str], **settings: Any) -> list[str]:
    """On the Schedules page: pick ``schedules``, set the run settings, press Train and
    return the ids of the runs it queued (new rows in the server's store)."""
    goto(page, server, "", "Learning-rate schedules")
    choose_schedules(page, schedules)
    set_run_settings(page, **settings)
    before = {r.id for r in server.store().list_runs(kind="train")}
    label = f"Train {len(schedules)} run{'s' if len(schedules) != 1 else ''}"
    button = page.locator(key("train.go")).get_by_role("button", name=label)
    wait_until(lambda: button.count() > 0 and button.first.is_enabled(), f"a {label!r} button")
    button.first.click()
    wait_until(lambda: page.get_by_text("queued as").count() >= len(schedules),
               f"{len(schedules)} 'queued as' message(s) after Train")
    new = wait_until(lambda: [r.id for r in server.store().list_runs(kind="train")
                              if r.id not in before],
                     "the new runs in the store")
    assert len(new) == len(schedules), f"Train queued {len(new)} runs for {schedules}"
    store = server.store()
    wrong = {r: {k: store.get(r).config.get(k) for k in settings} for r in new
             if any(store.get(r).config.get(k) != v for k, v in settings.items())}
    assert not wrong, f"Train queued runs without the settings typed ({settings}): {wrong}"
    return new


# ---------------------------------------------------------------------- Runs page
STATUS_WORDS = ("queued", "running", "finished", "diverged", "cancelled", "failed", "interrupted")


def run_card(page, run_id: str):
    """The Runs page card of ``run_id``: the innermost block holding its id and a
    progress bar (ancestors come first in document order, so the last match)."""
    return (page.locator('[data-testid="stVerticalBlock"]')
            .filter(has=page.locator("code", has_text=run_id))
            .filter(has=page.locator('[data-testid="stProgress"]')).last)


def card_state(page, run_id: str) -> tuple[str, int, int] | None:
    """(status, epochs done, epochs total) as the card shows them; None when not shown."""
    card = run_card(page, run_id)
    if card.count() == 0:
        return None
    text = card.inner_text()
    progress = re.search(r"epoch (\d+)/(\d+)", text)
    status = next((w for w in STATUS_WORDS if re.search(rf"\b{w}\b", text)), None)
    if not progress or not status:
        return None
    return status, int(progress.group(1)), int(progress.group(2))


def pick_option(page, widget_key: str, option: str) -> None:
    """Pick ``option`` (its exact text) in the multiselect ``widget_key``."""
    box = page.locator(f"{key(widget_key)} input").first
    choice = page.get_by_role("option", name=option, exact=True).first
    for attempt in range(4):  # a rerun may close the list under us
        try:
            box.click()
            box.fill(option)
            choice.click(timeout=5_000)
            break
        except Exception:
            if attempt == 3:
                raise
            box.press("Escape")
            wait_app_idle(page)
    box.press("Escape")


def ensure_finished_runs(page, server: Server, n: int = 2) -> list[str]:
    """At least ``n`` finished training runs in the server's store (trained through the
    Schedules page when missing, so a journey can run on its own); their ids."""
    def finished() -> list[str]:
        return [r.id for r in server.store().list_runs(kind="train", statuses=("finished",))]
    if len(finished()) < n:
        # epochs=3: not the 2-epoch config journey 2 trains, which must not hit the cache
        new = train_from_schedules(page, server, ["constant", "exponential"][: max(1, n)],
                                   epochs=3, train_size=1000)
        wait_until(lambda: all(server.store().get(r).status == "finished" for r in new),
                   f"runs {new} to finish", timeout=TRAIN_TIMEOUT)
    return finished()
