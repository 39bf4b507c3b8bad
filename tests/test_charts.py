"""Charts: trace names and counts, smoothing, NaN gaps, log axes, epoch range, colours."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrviz import charts
from lrviz.params import ParamError


def _history() -> pd.DataFrame:
    rows = []
    for rid, base in (("r1", 2.0), ("r2", 1.5)):
        for epoch in range(1, 11):
            loss = base / epoch
            rows.append({"run_id": rid, "epoch": epoch, "loss": loss, "accuracy": 1 - loss / 3,
                         "val_loss": loss * 1.1, "val_accuracy": 0.5 + epoch / 40,
                         "learning_rate": 0.1 * 0.9**epoch, "seconds": 2.0})
    frame = pd.DataFrame(rows)
    frame.loc[(frame.run_id == "r2") & (frame.epoch == 4), "val_loss"] = np.nan
    frame.loc[(frame.run_id == "r2") & (frame.epoch == 6), "val_loss"] = np.inf
    return frame


LABELS = {"r1": "constant(lr=0.01) · sgd", "r2": "step(initial_lr=0.5) · sgd"}


def _reference_ema(values, w):
    # Straight from TensorBoard's smoothing: debiased, non-finite values pass through.
    last, n, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * w + (1 - w) * v
        n += 1
        out.append(last / (1 - w**n))
    return out


class TestMetricFigure:
    def test_one_trace_per_run_named_by_label(self):
        fig = charts.metric_figure(_history(), "val_accuracy", LABELS)
        assert [t.name for t in fig.data] == list(LABELS.values())
        assert fig.layout.title.text == "Validation accuracy"
        assert fig.layout.xaxis.title.text == "Epoch"
        assert fig.layout.showlegend

    def test_smoothing_adds_faint_raw_trace_and_matches_reference(self):
        fig = charts.metric_figure(_history(), "loss", LABELS, smoothing=0.6)
        assert len(fig.data) == 4
        raw, smooth = fig.data[0], fig.data[1]
        assert raw.opacity < 0.5 and raw.showlegend is False
        assert raw.line.color == smooth.line.color
        assert smooth.name == LABELS["r1"]
        expected = _reference_ema(list(raw.y), 0.6)
        np.testing.assert_allclose(smooth.y, expected, rtol=1e-12)
        # the smoothed curve is not the raw one
        assert not np.allclose(smooth.y, raw.y)

    def test_nan_and_inf_are_gaps_and_ema_skips_them(self):
        fig = charts.metric_figure(_history(), "val_loss", LABELS, smoothing=0.5)
        smooth = fig.data[3]
        assert smooth.connectgaps is False
        y = np.asarray(smooth.y, dtype=float)
        assert np.isnan(y[3]) and np.isnan(y[5])  # epoch 4 NaN, epoch 6 inf -> gap
        assert np.isfinite(y[4]) and np.isfinite(y[6])  # smoothing resumes after a gap
        raw_finite = [v for v in fig.data[2].y if math.isfinite(v)]
        expected = [v for v in _reference_ema(raw_finite, 0.5)]
        np.testing.assert_allclose(y[np.isfinite(y)], expected)

    def test_isolated_points_get_a_marker(self):
        history = _history()  # r2: epoch 4 NaN, epoch 6 inf, so epoch 5 stands alone
        fig = charts.metric_figure(history, "val_loss", LABELS)
        assert "markers" not in fig.data[0].mode
        assert "markers" in fig.data[1].mode
        assert [i for i, size in enumerate(fig.data[1].marker.size) if size] == [4]
        history.loc[(history.run_id == "r2") & (history.epoch == 6), "val_loss"] = 0.5
        assert "markers" not in charts.metric_figure(history, "val_loss", LABELS).data[1].mode

    def test_log_axes(self):
        fig = charts.metric_figure(_history(), "loss", LABELS, log_x=True, log_y=True)
        assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
        fig = charts.metric_figure(_history(), "loss", LABELS)
        assert fig.layout.xaxis.type == "linear" and fig.layout.yaxis.type == "linear"

    def test_epoch_range(self):
        fig = charts.metric_figure(_history(), "loss", LABELS, epoch_range=(3, 6))
        for trace in fig.data:
            assert list(trace.x) == [3, 4, 5, 6]

    def test_colours_follow_the_given_mapping(self):
        fig = charts.metric_figure(_history(), "loss", LABELS, colors={"r1": "#000000", "r2": "#FFFFFF"})
        assert [t.line.color for t in fig.data] == ["#000000", "#FFFFFF"]

    def test_bad_arguments_name_the_argument(self):
        with pytest.raises(ParamError, match="`metric`.*Received: metric='nope'"):
            charts.metric_figure(_history(), "nope", LABELS)
        with pytest.raises(ParamError, match="`smoothing`"):
            charts.metric_figure(_history(), "loss", LABELS, smoothing=1.0)
        with pytest.raises(ParamError, match="`epoch_range`"):
            charts.metric_figure(_history(), "loss", LABELS, epoch_range=(5, 2))


def test_small_multiples_one_panel_per_run_shared_axes():
    labels = {"r1": "A", "r2": "B"}
    fig = charts.small_multiples(_history(), "loss", labels, smoothing=0.3, log_y=True)
    assert len(fig.data) == 4
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert [a.text for a in fig.layout.annotations] == ["A", "B"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis2.matches == "y"


class TestLrFigure:
    def test_step_curve_keeps_every_change_exactly(self):
        spe = 313
        lr = 0.5 * 0.8 ** (np.arange(100 * spe) // (10 * spe))
        fig = charts.lr_figure({"step": charts.curve_frame(lr, spe)}, x="step")
        trace = fig.data[0]
        assert len(trace.x) < 100  # thinned from 31,300 points ...
        # ... yet the curve is exact: interpolating the kept points gives every step's LR
        np.testing.assert_allclose(np.interp(np.arange(lr.size), trace.x, trace.y), lr)
        assert "%{y:.12~g}" in trace.hovertemplate
        assert fig.layout.xaxis.title.text == "Optimizer step"

    def test_smooth_long_curve_is_bounded_and_keeps_restart_jumps(self):
        spe, epochs = 313, 100
        t = np.arange(epochs * spe) / spe
        lr = 0.05 * (1 + np.cos(np.pi * (t % 10) / 10))  # restarts every 10 epochs
        frame = charts.curve_frame(lr, spe)
        fig = charts.lr_figure({"sgdr": frame}, x="epoch", log_y=True)
        trace = fig.data[0]
        assert len(trace.x) <= charts.MAX_CURVE_POINTS
        steps = np.round(np.asarray(trace.x) * spe).astype(int)
        for restart in range(1, 10):
            assert restart * 10 * spe in steps and restart * 10 * spe - 1 in steps
        assert fig.layout.yaxis.type == "log"

    def test_lr_steps_figure_uses_labels_and_colours(self):
        fig = charts.lr_steps_figure({"r1": np.full(50, 0.01), "r2": np.linspace(0.1, 0, 50)},
                                     {"r1": "A", "r2": "B"}, colors={"r1": "#111111", "r2": "#222222"})
        assert [t.name for t in fig.data] == ["A", "B"]
        assert [t.line.color for t in fig.data] == ["#111111", "#222222"]


def test_run_colors_stable_and_distinct_within_a_schedule():
    schedules = {"a": "constant", "b": "constant", "c": "step"}
    colours = charts.run_colors(["a", "b", "c"], schedules)
    assert len(set(colours.values())) == 3
    # the same run keeps its colour when the selection changes
    assert charts.run_colors(["c", "a"], schedules)["a"] == colours["a"]
    assert charts.run_colors(["x", "y"]) == charts.run_colors(["y", "x"])


def test_ema_matches_reference():
    values = [3.0, 1.0, float("nan"), 4.0, 1.0, 5.0]
    np.testing.assert_allclose(charts.ema(values, 0.9), _reference_ema(values, 0.9))
    assert list(charts.ema([1.0, 2.0], 0.0)) == [1.0, 2.0]


def test_metric_data_is_full_precision_and_labelled():
    data = charts.metric_data(_history(), "val_loss", LABELS, smoothing=0.5, epoch_range=(1, 5))
    assert list(data.columns) == ["run_id", "label", "epoch", "val_loss", "val_loss_smoothed"]
    assert len(data) == 10 and set(data.label) == set(LABELS.values())


def test_charts_do_not_import_tensorflow_or_streamlit():
    code = "import sys, lrviz.charts; print('tensorflow' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


class TestEpochTicks:
    """Epoch axes show whole numbers: Plotly alone puts ticks at 1.2, 1.4... on short runs."""

    @staticmethod
    def _short(epochs: int) -> pd.DataFrame:
        frame = _history()
        return frame[frame["epoch"] <= epochs]

    def test_short_run_gets_a_tick_per_epoch(self):
        fig = charts.metric_figure(self._short(3), "val_loss", LABELS)
        axis = fig.layout.xaxis
        assert axis.tickformat == ",d" and axis.dtick == 1 and axis.tickmode == "linear"

    def test_every_panel_of_small_multiples(self):
        fig = charts.small_multiples(self._short(3), "loss", LABELS)
        assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis2.dtick == 1
        assert fig.layout.xaxis2.tickformat == ",d"

    def test_longer_spans_step_wider_and_long_ones_keep_plotly_steps(self):
        rows = [{"run_id": "r1", "epoch": e, "loss": 1.0 / e} for e in range(1, 101)]
        long = pd.DataFrame(rows)
        assert charts.metric_figure(long[long.epoch <= 15], "loss", {"r1": "a"}).layout.xaxis.dtick == 2
        axis = charts.metric_figure(long, "loss", {"r1": "a"}).layout.xaxis
        assert axis.dtick is None and axis.tickformat == ",d"

    def test_log_and_time_axes_are_left_alone(self):
        assert charts.metric_figure(self._short(3), "loss", LABELS, log_x=True).layout.xaxis.dtick is None
        fig = charts.metric_figure(self._short(3), "loss", LABELS, x="time")
        assert fig.layout.xaxis.dtick is None and fig.layout.xaxis.tickformat is None

    def test_lr_curve_by_epoch(self):
        fig = charts.lr_figure({"a": charts.curve_frame(np.full(3 * 10, 0.1), 10)}, x="epoch")
        assert fig.layout.xaxis.dtick == 1
        assert charts.lr_figure({"a": charts.curve_frame(np.full(30, 0.1), 10)}, x="step").layout.xaxis.dtick is None


def test_runs_of_one_schedule_get_clearly_different_shades():
    import colorsys

    ids = [f"run{i}" for i in range(5)]
    colours = charts.run_colors(ids, {rid: "step" for rid in ids})
    lightness = sorted(colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))[1]
                       for c in colours.values())
    assert min(b - a for a, b in zip(lightness, lightness[1:])) > 0.1
