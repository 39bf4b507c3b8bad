"""How fast the Schedules page can preview: the curves, and (later) the page rerun.

Run: ``python benchmarks/preview.py [--curves-only]``. Targets (issue 2): all catalogue curves together
under 20 ms at 100 epochs x 313 steps (31,300 points each); the page rerun under 250 ms.
Each figure is the best of several repeats, shown beside a baseline measured in the same
process (one ``np.exp`` pass over the same number of points per schedule) so a slow or busy
machine can be told apart from slow code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _page_rerun.py beside this file

from lrviz.schedules import GRANULARITIES, build, catalogue, lr_curve  # noqa: E402

EPOCHS, STEPS_PER_EPOCH = 100, 313
CURVES_TARGET_MS = 20.0
PAGE_TARGET_MS = 250.0


def best_ms(fn: Callable[[], object], repeats: int = 7) -> float:
    """The fastest of ``repeats`` runs, in milliseconds (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000.0


def time_curves(epochs: int = EPOCHS, steps_per_epoch: int = STEPS_PER_EPOCH) -> dict:
    """Time ``lr_curve`` for every catalogue schedule (defaults, default granularity).

    Returns ``{"total_ms", "baseline_ms", "ratio", "per_schedule_ms", "batch_total_ms"}``;
    ``batch_total_ms`` is the same with every schedule at batch granularity (the worst case).
    """
    schedules = [build(name) for name in catalogue()]
    per_batch = [build(name, None, "batch") for name in catalogue()]
    n = epochs * steps_per_epoch

    def all_curves(items=schedules):
        for s in items:
            lr_curve(s, epochs, steps_per_epoch)

    x = np.linspace(0.0, 1.0, n)

    def baseline():
        for _ in schedules:
            np.exp(-x)

    per = {s.name: best_ms(lambda s=s: lr_curve(s, epochs, steps_per_epoch)) for s in schedules}
    total, base = best_ms(all_curves), best_ms(baseline)
    return {"total_ms": total, "baseline_ms": base, "ratio": total / base if base else float("inf"),
            "per_schedule_ms": per, "batch_total_ms": best_ms(lambda: all_curves(per_batch)),
            "granularities": GRANULARITIES}


# --- page rerun (AppTest): measured by benchmarks/_page_rerun.py (the UI side) -------------

def page_rerun() -> dict | None:
    """The Schedules page's rerun figures, or None when the page or Streamlit is missing."""
    try:
        from _page_rerun import time_page_rerun  # benchmarks/ is on sys.path as the script dir
    except ImportError:
        return None
    return time_page_rerun()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = EPOCHS * STEPS_PER_EPOCH
    curves = time_curves()
    print(f"curves: {len(curves['per_schedule_ms'])} schedules x {n:,} points "
          f"({EPOCHS} epochs x {STEPS_PER_EPOCH} steps), best of 7")
    for name, ms in sorted(curves["per_schedule_ms"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {ms:7.3f} ms")
    ok = curves["total_ms"] < CURVES_TARGET_MS
    print(f"all curves, default granularity: {curves['total_ms']:.2f} ms "
          f"(target < {CURVES_TARGET_MS:g} ms: {'met' if ok else 'MISSED'})")
    print(f"all curves, batch granularity:   {curves['batch_total_ms']:.2f} ms")
    print(f"baseline (one np.exp pass per schedule): {curves['baseline_ms']:.2f} ms; "
          f"ratio {curves['ratio']:.1f}x")
    if "--curves-only" in argv:
        return 0 if ok else 1
    try:
        page = page_rerun()
    except Exception as exc:  # the page is someone else's work in progress: report, don't hide curves
        print(f"page rerun: failed ({type(exc).__name__}: {exc})")
        return 1
    if page is None:
        print("page rerun: skipped (benchmarks/_page_rerun.py or streamlit not available)")
        return 0 if ok else 1
    page_ok = page["rerun_ms"] < PAGE_TARGET_MS
    print(f"page rerun after one widget change: {page['rerun_ms']:.0f} ms best, "
          f"{page['median_ms']:.0f} ms median, first run {page['first_run_ms']:.0f} ms, "
          f"{len(page['schedules'])} schedules (target < {PAGE_TARGET_MS:g} ms: "
          f"{'met' if page_ok else 'MISSED'})")
    print(f"baseline (a one-widget, one-chart page, same change): {page['baseline_ms']:.0f} ms; "
          f"ratio {page['ratio']:.1f}x")
    return 0 if ok and page_ok else 1


if __name__ == "__main__":
    sys.exit(main())
