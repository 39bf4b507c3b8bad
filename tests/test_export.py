"""Export: PNG/SVG are real files with the legend, HTML is self-contained, CSV, report zip."""

from __future__ import annotations

import io
import json
import shutil
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest

from lrviz import charts, export
from lrviz.params import ParamError
from lrviz.store import RunStore

needs_chromium = pytest.mark.skipif(export.chromium_path() is None,
                                    reason="PNG/SVG export needs Chromium (/usr/bin/chromium missing)")

SCHEDULES = (
    ("constant", {"lr": 0.01}),
    ("step", {"initial_lr": 0.5, "drop_rate": 0.8, "epochs_drop": 10}),
)


def run_config(schedule: str, params: dict, *, epochs: int = 4, validation: str = "test") -> dict:
    # stored as a dict: the shape RunConfig.to_dict gives
    return {"schedule": schedule, "schedule_params": params, "granularity": "epoch",
            "optimizer": "sgd", "optimizer_params": {"momentum": 0.8}, "epochs": epochs,
            "batch_size": 64, "train_size": 128, "sample_seed": 0, "seed": 0,
            "validation": validation, "validation_split": None, "hidden": [8]}


def fill_store(store: RunStore, epochs: int = 4, statuses=("finished", "running")) -> list[str]:
    """Two runs with distinct, known metrics (the second has a NaN epoch) and step LRs."""
    ids = []
    for k, ((schedule, params), status) in enumerate(zip(SCHEDULES, statuses)):
        rid = store.create_run(run_config(schedule, params, epochs=epochs), status=status)
        for epoch in range(1, epochs + 1 - (status == "running")):
            loss = (k + 1) / epoch
            store.log_epoch(rid, epoch, {
                "loss": loss, "accuracy": 0.5 + 0.01 * epoch,
                "val_loss": float("nan") if (k == 1 and epoch == 2) else loss + 0.125,
                "val_accuracy": 0.6 + 0.0123456789 * epoch + 0.1 * k, "learning_rate": 0.01 * (k + 1)},
                seconds=1.5)
        store.log_step_lr(rid, 0, np.full(2 * epochs, 0.01 * (k + 1)))
        ids.append(rid)
    return ids


def _figure():
    history = __import__("pandas").DataFrame({
        "run_id": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "loss": [1.0, 0.5, 2.0, 0.7531],
        "accuracy": 0.5, "val_loss": 0.1234567, "val_accuracy": 0.9, "learning_rate": 0.1, "seconds": 1.0})
    labels = {"a": "LegendAlpha", "b": "LegendBeta"}
    return charts.metric_figure(history, "loss", labels), charts.metric_data(history, "loss", labels)


@needs_chromium
def test_png_is_a_png():
    fig, _ = _figure()
    data = export.figure_image(fig, "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@needs_chromium
def test_svg_parses_and_contains_title_and_legend():
    fig, _ = _figure()
    data = export.figure_image(fig, "svg")
    root = ET.fromstring(data)
    assert root.tag.endswith("svg")
    text = " ".join(t for t in root.itertext())
    assert "LegendAlpha" in text and "LegendBeta" in text and "Training loss" in text


def test_no_chromium_says_so_and_html_csv_still_work(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    fig, data = _figure()
    for fmt in ("png", "svg"):
        with pytest.raises(export.ExportUnavailable, match="apt-get install chromium"):
            export.chart_bytes(fig, fmt, data)
    assert export.chart_bytes(fig, "html", data).startswith(b"<!doctype html>")
    assert export.chart_bytes(fig, "csv", data).startswith(b"run_id,label,epoch,loss")


def test_html_is_self_contained_with_data():
    fig, _ = _figure()
    html = export.figure_html(fig).decode()
    assert "<script src=" not in html  # nothing fetched: opens offline
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js inline
    assert "LegendAlpha" in html and "Training loss" in html
    assert '"y":[1.0,0.5]' in html and '"y":[2.0,0.7531]' in html  # the data values, readable


def test_csv_columns_and_precision():
    _, data = _figure()
    text = export.frame_csv(data).decode().splitlines()
    assert text[0] == "run_id,label,epoch,loss"
    assert text[1:] == ["a,LegendAlpha,1,1.0", "a,LegendAlpha,2,0.5", "b,LegendBeta,1,2.0", "b,LegendBeta,2,0.7531"]


def test_bad_format_names_the_argument():
    fig, data = _figure()
    with pytest.raises(ParamError, match="`format`.*Received: format='gif'"):
        export.chart_bytes(fig, "gif", data)


def test_write_atomic_leaves_no_temp_files(tmp_path):
    target = export.write_atomic(tmp_path / "sub" / "chart.csv", b"x,y\n")
    assert target.read_bytes() == b"x,y\n"
    assert [p.name for p in target.parent.iterdir()] == ["chart.csv"]


def _report(images: bool):
    store = RunStore()
    ids = fill_store(store)
    data = export.report_zip(store, ids, metrics=("val_loss", "val_accuracy"), images=images)
    return ids, zipfile.ZipFile(io.BytesIO(data))


def test_report_zip_without_images_has_html_csv_and_configs():
    ids, zf = _report(images=False)
    names = set(zf.namelist())
    assert {"charts/val_loss.html", "charts/val_accuracy.html", "charts/lr_steps.html",
            "data/val_loss.csv", "data/history.csv", "data/summary.csv", "runs.json", "README.txt"} <= names
    assert not any(n.endswith((".png", ".svg")) for n in names)
    runs = json.loads(zf.read("runs.json"))["runs"]
    assert [r["id"] for r in runs] == ids
    assert runs[1]["config"]["schedule_params"]["drop_rate"] == 0.8
    history = zf.read("data/history.csv").decode().splitlines()
    assert history[0] == "run_id,epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds"
    assert len(history) == 1 + 4 + 3
    assert "nan" in zf.read("data/val_loss.csv").decode()  # the NaN epoch survives
    assert "left out" in zf.read("README.txt").decode()


@needs_chromium
def test_report_zip_with_images():
    _, zf = _report(images=True)
    assert zf.read("charts/val_loss.png")[:4] == b"\x89PNG"
    svg = zf.read("charts/val_accuracy.svg").decode()
    ET.fromstring(svg)
    assert "Validation accuracy" in svg and "step(" in svg


def test_chromium_path_finds_the_system_browser(monkeypatch):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    assert export.chromium_path() == (shutil.which("chromium") or shutil.which("chromium-browser")
                                      or shutil.which("google-chrome") or shutil.which("google-chrome-stable")
                                      or shutil.which("chrome"))
