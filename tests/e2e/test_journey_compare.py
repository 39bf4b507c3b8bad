"""Journey 3 in a real browser: the Compare page.

Filter the table to finished runs, tick two rows (the table is a canvas: the row
markers are clicked where they are drawn), switch to log scale and smoothing and see the
figure change, then download a CSV, a PNG, an SVG and an HTML through the page's
buttons and check each file.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

from tests.e2e.conftest import (
    ensure_finished_runs,
    goto,
    key,
    pick_option,
    plotly_layout,
    plotly_traces,
    step,
    wait_app_idle,
    wait_until,
)

CHART = key("compare.chart.val_loss")
ROW_HEIGHT, HEADER_HEIGHT, MARKER_X = 35, 35, 18  # Streamlit's data grid geometry


def picked(page) -> list[str]:
    """Run ids shown in the 'Selected runs' picker ("label [id]")."""
    tags = page.locator(f"{key('compare.pick')} [data-tag]")
    return [(tags.nth(i).get_attribute("aria-label") or "").rsplit("[", 1)[-1].rstrip("]")
            for i in range(tags.count())]


def download(page, button_key: str, tmp_path) -> bytes:
    button = page.locator(f"{key(button_key)} button").first
    button.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    return path.read_bytes()


def test_compare_select_scale_smooth_and_download(server, page, tmp_path):
    with step(page, "j3.0-two-finished-runs"):
        finished = ensure_finished_runs(page, server, 2)

    with step(page, "j3.1-open-compare"):
        goto(page, server, "compare", "Compare")
        page.locator('[data-testid="stDataFrame"]').first.wait_for()

    with step(page, "j3.2-filter-finished"):
        pick_option(page, "compare.f.status", "finished")
        wait_app_idle(page)
        table = page.locator('[data-testid="stDataFrame"]').first
        # rows = finished runs only: the grid's height follows its row count
        wait_until(lambda: table.bounding_box()["height"] <= HEADER_HEIGHT + ROW_HEIGHT * len(finished) + 12,
                   "the table to show only finished runs")

    with step(page, "j3.3-select-two-rows"):
        box = table.bounding_box()
        for row in (0, 1):
            page.mouse.click(box["x"] + MARKER_X, box["y"] + HEADER_HEIGHT + ROW_HEIGHT * row + ROW_HEIGHT / 2)
            wait_until(lambda n=row + 1: len(picked(page)) == n, f"{row + 1} run(s) selected by ticking rows")
        ids = picked(page)
        assert set(ids) <= set(finished), (ids, finished)
        traces = wait_until(lambda: len(t := plotly_traces(page, CHART)) == 2 and t,
                            "the validation-loss chart with one trace per selected run")
        assert all(len(t["y"]) >= 2 for t in traces), \
            [(t["name"], len(t["y"])) for t in traces]
        assert plotly_layout(page, CHART).get("yaxis", {}).get("type") in (None, "linear", "-")

    with step(page, "j3.4-log-scale"):
        page.locator(key("compare.log_y")).get_by_text("log y").click()
        wait_until(lambda: plotly_layout(page, CHART).get("yaxis", {}).get("type") == "log",
                   "the y axis to turn logarithmic")

    with step(page, "j3.5-smoothing"):
        # the slider's thumb is a visually hidden range input: keys move it, End = 0.99
        slider = page.locator(f"{key('compare.smoothing')} input[type='range']").first
        slider.press("End")
        wait_until(lambda: slider.get_attribute("aria-valuetext") == "0.99", "smoothing 0.99")
        smoothed = wait_until(lambda: len(t := plotly_traces(page, CHART)) > len(traces) and t,
                              "the smoothed curves (raw + EMA per run)")
        assert len(smoothed) == 2 * len(traces), [t["name"] for t in smoothed]
        title = str(plotly_layout(page, CHART).get("title", {}))
        assert "smoothed" in title, title

    with step(page, "j3.6-download-csv"):
        rows = list(csv.reader(io.StringIO(download(page, "compare.dl.val_loss.csv", tmp_path).decode())))
        assert rows[0][:4] == ["run_id", "label", "epoch", "val_loss"], rows[0]
        assert rows[0][4:] == ["val_loss_smoothed"], rows[0]
        assert {r[0] for r in rows[1:]} == set(ids), "the CSV holds the selected runs"
        history = server.store().history(ids)
        assert len(rows) - 1 == len(history)
        stored = {(r.run_id, int(r.epoch)): r.val_loss for r in history.itertuples()}
        for r in rows[1:]:
            assert float(r[3]) == stored[(r[0], int(r[2]))]  # full precision round trip

    with step(page, "j3.7-download-png-svg-html"):
        page.locator(key("compare.prep.val_loss")).get_by_role("button").click()
        png = download(page, "compare.dl.val_loss.png", tmp_path)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, png[:16]
        svg = download(page, "compare.dl.val_loss.svg", tmp_path)
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        svg_text = " ".join(t for t in root.itertext())
        for trace in smoothed:
            if trace["name"]:
                assert trace["name"].split(" · ")[0][:20] in svg_text, f"legend {trace['name']!r} not in SVG"
        html = download(page, "compare.dl.val_loss.html", tmp_path).decode()
        assert "plotly" in html.lower() and "<html" in html.lower()
        for rid in ids:
            val = stored[(rid, 1)]
            assert repr(val)[:8] in html or f"{val:.6g}"[:6] in html, f"run {rid}'s data not in the HTML"
