"""The Keras range test on a small real Fashion-MNIST sample (1000 images, batch 64)."""

from __future__ import annotations

import numpy as np
import pytest

from lrviz.lr_finder import RangeTestConfig, RangeTestResult, ramp, smooth

pytestmark = pytest.mark.slow

SMALL = dict(train_size=1000, batch_size=64, hidden=[64])


@pytest.fixture(scope="module")
def normal_run():
    from lrviz.training.range_test import run_range_test

    cfg = RangeTestConfig.create(start_lr=1e-4, end_lr=10.0, steps=80, **SMALL)
    streamed = []
    result = run_range_test(cfg, on_point=lambda *p: streamed.append(p))
    return cfg, result, streamed


def test_recorded_lrs_follow_the_ramp(normal_run):
    cfg, result, _ = normal_run
    n = len(result.lrs)
    assert n >= 20
    np.testing.assert_array_equal(result.idx, np.arange(n))
    # the optimizer holds float32: the LR each step applied is the ramp's value in float32
    expected = ramp(1e-4, 10.0, 80)[:n]
    np.testing.assert_allclose(result.lrs, expected.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-6)


def test_points_stream_and_smoothing(normal_run):
    _, result, streamed = normal_run
    assert [p[0] for p in streamed] == list(result.idx)
    np.testing.assert_allclose([p[3] for p in streamed], result.smoothed)
    np.testing.assert_allclose(result.smoothed, smooth(result.losses, 0.98), rtol=1e-9)
    # ten classes, fresh model: the first loss is about ln(10)
    assert 1.5 < result.losses[0] < 3.5


def test_suggestions_inside_range_and_falling(normal_run):
    _, result, _ = normal_run
    s = result.suggestions()
    assert set(s) == {"steepest", "valley", "min_div_10"}
    i_min = int(np.nanargmin(result.smoothed))
    for sug in s.values():
        assert result.lrs[0] <= sug.lr <= result.lrs[-1]
        # on the falling side of the curve: not past the minimum, lower than where it started
        assert sug.index <= i_min
        assert sug.lr <= result.lrs[i_min]
        assert result.smoothed[sug.index] <= result.smoothed[0] + 1e-9


def test_absurd_end_lr_stops_at_divergence():
    from lrviz.training.range_test import run_range_test

    cfg = RangeTestConfig.create(start_lr=1e-3, end_lr=1e4, steps=60, **SMALL)
    result = run_range_test(cfg)
    assert result.status == "diverged"
    assert len(result.lrs) < 60
    last = result.smoothed[-1]
    best = np.nanmin(result.smoothed[:-1])
    assert not np.isfinite(last) or last > 4 * best
    # it had not diverged one step earlier
    assert np.all(result.smoothed[:-1] <= 4 * np.minimum.accumulate(result.smoothed[:-1]))
    assert result.divergence_index == len(result.lrs) - 1


def test_weights_restored_and_fresh_model_each_time():
    from lrviz.training.model import build_model
    from lrviz.training.range_test import run_range_test

    cfg = RangeTestConfig.create(start_lr=1e-3, end_lr=1.0, steps=10, **SMALL)
    model = build_model((64,), 0)
    before = [w.copy() for w in model.get_weights()]
    first = run_range_test(cfg, model=model)
    after = model.get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # the test did train: losses moved, so restoring was needed
    assert not np.allclose(first.losses, first.losses[0])
    # a second test on the same model sees the same start: nothing leaked
    second = run_range_test(cfg, model=model)
    np.testing.assert_allclose(second.losses, first.losses, rtol=1e-5)


def test_cancel():
    from lrviz.training.range_test import run_range_test

    cfg = RangeTestConfig.create(start_lr=1e-3, end_lr=1.0, steps=40, **SMALL)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5

    result = run_range_test(cfg, should_stop=stop)
    assert result.status == "cancelled" and len(result.lrs) == 5


def test_validation_variant_every_few_steps():
    from lrviz.training.range_test import run_range_test

    cfg = RangeTestConfig.create(start_lr=1e-3, end_lr=1.0, steps=12, use_validation=True,
                                 val_batches=2, val_every=5, **SMALL)
    result = run_range_test(cfg)
    # evaluated at steps 0, 5, 10 and the last step
    assert list(result.idx) == [0, 5, 10, 11]
    np.testing.assert_allclose(result.lrs, ramp(1e-3, 1.0, 12)[[0, 5, 10, 11]], rtol=1e-6)
    assert np.isfinite(result.losses).all()


def test_result_round_trip(normal_run):
    cfg, result, _ = normal_run
    rows = list(zip(result.idx, result.lrs, result.losses, result.smoothed))
    again = RangeTestResult.from_points(cfg, rows, result.status)
    d = again.to_dict()
    assert d["config_hash"] == cfg.config_hash()
    assert len(d["points"]) == len(rows)
    assert set(d["suggestions"]) == {"steepest", "valley", "min_div_10"}


def test_stored_run_is_recorded_and_reused(tmp_cache):
    from lrviz.lr_finder import load_result, submit
    from lrviz.store import RunStore
    from lrviz.training.range_test import run_lr_find

    store = RunStore()
    cfg = RangeTestConfig.create(start_lr=1e-3, end_lr=1.0, steps=12, use_validation=True,
                                 val_batches=1, val_every=4, **SMALL)
    run_id, reused = submit(cfg, store)
    assert not reused and store.get(run_id).kind == "lr_find"
    assert store.get(run_id).status == "queued"
    # the same test is not queued twice
    assert submit(cfg, store) == (run_id, True)

    result = run_lr_find(run_id, store)
    assert store.get(run_id).status == result.status == "finished"
    loaded = load_result(store, run_id)
    np.testing.assert_array_equal(loaded.idx, [0, 4, 8, 11])
    np.testing.assert_allclose(loaded.lrs, result.lrs)
    np.testing.assert_allclose(loaded.smoothed, result.smoothed)
    assert submit(cfg, store) == (run_id, True)


def test_stored_run_fails_cleanly(tmp_cache, monkeypatch):
    from lrviz.lr_finder import submit
    from lrviz.store import RunStore
    from lrviz.training import range_test

    def boom(*a, **k):
        raise RuntimeError("no data")

    monkeypatch.setattr(range_test, "run_range_test", boom)
    store = RunStore()
    run_id, _ = submit(RangeTestConfig.create(steps=5, **SMALL), store)
    assert range_test.run_lr_find(run_id, store) is None
    info = store.get(run_id)
    assert info.status == "failed" and "no data" in info.error
