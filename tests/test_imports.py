"""The Schedules page and the core modules it touches never import TensorFlow.

Checked in a fresh interpreter, because the test process itself may already have
imported TensorFlow for other tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def test_core_modules_do_not_import_tensorflow():
    proc = _run("""
        import sys
        import lrviz.schedules, lrviz.config, lrviz.store, lrviz.jobs, lrviz.charts
        import lrviz.ui.lab, lrviz.ui.runs, lrviz.ui.train, lrviz.ui.widgets
        import lrviz.ui.compare, lrviz.ui.lr_finder, lrviz.export, lrviz.summary, lrviz.sweep
        import lrviz.lr_finder, lrviz.tracking, lrviz.presets
        from lrviz.training.batched import group_runs  # the app groups runs without TF
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_schedules_page_does_not_import_tensorflow():
    proc = _run(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=120).run()
        assert not at.exception, at.exception
        assert at.get("plotly_chart"), "the home page drew no chart"
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False False", proc.stdout
