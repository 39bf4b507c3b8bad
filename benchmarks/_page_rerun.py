"""The Schedules page's rerun time after one widget change, measured with AppTest.

``benchmarks/preview.py`` calls :func:`time_page_rerun` and prints the figures against its
250 ms target. The figure covers the whole script run a person waits for: widgets, the
curve of every chosen schedule, the Plotly figure and its serialisation, the formulas,
the Keras snippets and the lesson; not the browser's drawing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

APP = str(Path(__file__).resolve().parents[1] / "app.py")
ALL = "all"  # choose every catalogue schedule: the worst case


def _rerun_times(at, key: str, values: tuple[float, float], repeats: int) -> list[float]:
    times = []
    for i in range(repeats):
        at.number_input(key=key).set_value(values[i % 2])
        start = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - start) * 1000.0)
        if at.exception:
            raise RuntimeError(f"the Schedules page failed: {at.exception}")
    return times


def time_page_rerun(repeats: int = 7, schedules: tuple[str, ...] | str | None = None) -> dict:
    """Rerun the Schedules page after changing one number (``step``'s ``drop_rate``).

    ``schedules``: the chosen set (None keeps the page's default; ``"all"`` the whole
    catalogue). Returns ``{"rerun_ms" (best), "median_ms", "first_run_ms", "schedules"}``.
    """
    from streamlit.testing.v1 import AppTest

    from lrviz.schedules import catalogue

    with tempfile.TemporaryDirectory() as cache:  # never the person's own run cache
        old = os.environ.get("LRVIZ_CACHE_DIR")
        os.environ["LRVIZ_CACHE_DIR"] = cache
        try:
            at = AppTest.from_file(APP, default_timeout=120)
            start = time.perf_counter()
            at.run()
            first = (time.perf_counter() - start) * 1000.0
            chosen = list(catalogue()) if schedules == ALL else schedules
            if chosen is not None:
                at.multiselect(key="lab.chosen").set_value(list(chosen)).run()
            names = at.multiselect(key="lab.chosen").value
            if "step" not in names:
                at.multiselect(key="lab.chosen").set_value([*names, "step"]).run()
                names = at.multiselect(key="lab.chosen").value
            _rerun_times(at, "lab.step.p.drop_rate", (0.7, 0.8), 1)  # warm-up
            times = _rerun_times(at, "lab.step.p.drop_rate", (0.7, 0.8), repeats)
        finally:
            if old is None:
                os.environ.pop("LRVIZ_CACHE_DIR", None)
            else:
                os.environ["LRVIZ_CACHE_DIR"] = old
        baseline = time_baseline_rerun(repeats)
    return {"rerun_ms": min(times), "median_ms": statistics.median(times),
            "first_run_ms": first, "schedules": list(names),
            "baseline_ms": min(baseline), "ratio": min(times) / min(baseline)}


BASELINE_PAGE = """
import streamlit as st
st.set_page_config(layout="wide")
x = st.number_input("drop_rate", key="x", value=0.8)
st.plotly_chart({"data": [{"y": [x, x / 2]}]}, key="chart")
"""


def time_baseline_rerun(repeats: int = 7) -> list[float]:
    """The same widget change on a one-widget, one-chart page: what any Streamlit rerun
    costs in AppTest on this machine right now. The page's figure is read against it."""
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "baseline.py"
        script.write_text(BASELINE_PAGE)
        at = AppTest.from_file(str(script), default_timeout=60).run()
        _rerun_times(at, "x", (0.7, 0.8), 1)
        return _rerun_times(at, "x", (0.7, 0.8), repeats)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(APP).parent))  # run from a checkout
    for which in (None, ALL):
        r = time_page_rerun(schedules=which)
        print(f"page rerun, {len(r['schedules'])} schedules: best {r['rerun_ms']:.0f} ms, "
              f"median {r['median_ms']:.0f} ms (first run {r['first_run_ms']:.0f} ms)")
