"""The learning-rate range test with Keras: one short run with the LR ramping up.

``run_range_test`` trains a fresh copy of the model (``build_model``) batch by batch,
sets the optimizer's LR to the ramp's value before each step, records the loss the
step saw, its smoothed value, and stops once the smoothed loss diverges. A model passed
in is given back with its initial weights. The maths lives in ``lrviz.lr_finder``.

``run_lr_find(run_id, store)`` runs a stored ``kind='lr_find'`` run and writes its
points to the store; ``python -m lrviz.training.range_test RUN_ID`` does the same from
a shell (what a worker that cannot dispatch by kind can call).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable

import numpy as np

from lrviz.lr_finder import RangeTestConfig, RangeTestResult, Smoother
from lrviz.lr_finder import should_stop as diverged

# (step, lr, loss, smoothed) as each point is recorded
PointCallback = Callable[[int, float, float, float], None]


def _batch_indices(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """``steps`` full batches of sample indices: seeded shuffles, one epoch after another.

    Full batches only, so every step's loss averages the same number of images.
    """
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, n)
    need = steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])
    return order[:need].reshape(steps, batch_size)


def run_range_test(cfg: RangeTestConfig, on_point: PointCallback | None = None,
                   should_stop: Callable[[], bool] | None = None, *,
                   model: Any = None) -> RangeTestResult:
    """Run the range test ``cfg`` and return its points.

    Args:
        cfg: the validated test settings.
        on_point: called with ``(step, lr, loss, smoothed)`` for each recorded point.
        should_stop: polled every step; True cancels the test (status "cancelled").
        model: an uncompiled Keras model to test instead of a fresh ``build_model``;
            its weights are restored before returning, whatever happens.

    Returns:
        A ``RangeTestResult`` with status "finished", "diverged" or "cancelled".
    """
    from lrviz.data import load_sample
    from lrviz.training.model import build_model, make_optimizer

    sample = load_sample(cfg.train_size, cfg.sample_seed, validation="test")
    lrs = cfg.ramp()
    if model is None:
        model = build_model(tuple(cfg.hidden), cfg.seed)
    initial = [w.copy() for w in model.get_weights()]
    optimizer = make_optimizer(cfg.optimizer, dict(cfg.optimizer_params), float(lrs[0]))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")

    batches = _batch_indices(len(sample.x_train), cfg.batch_size, cfg.steps, cfg.seed)
    if cfg.use_validation:
        # Smith's variant: one fixed held-out set, the same images at every evaluation
        n_val = min(len(sample.x_val), cfg.val_batches * cfg.batch_size)
        x_val, y_val = sample.x_val[:n_val], sample.y_val[:n_val]
        recorded = set(cfg.recorded_steps().tolist())

    smoother = Smoother(cfg.beta)
    best = math.inf
    rows: list[tuple[int, float, float, float]] = []
    status = "finished"
    try:
        for step, lr in enumerate(lrs):
            if should_stop is not None and should_stop():
                status = "cancelled"
                break
            optimizer.learning_rate.assign(lr)
            applied = float(optimizer.learning_rate.numpy())  # float32, what the step uses
            take = batches[step]
            loss = _scalar(model.train_on_batch(sample.x_train[take], sample.y_train[take]))
            if cfg.use_validation:
                if step not in recorded:
                    continue
                loss = _scalar(model.test_on_batch(x_val, y_val))
            smoothed = smoother(loss)
            rows.append((step, applied, loss, smoothed))
            if on_point is not None:
                on_point(step, applied, loss, smoothed)
            if math.isfinite(smoothed):
                best = min(best, smoothed)
            if diverged(smoothed, best, cfg.stop_factor) or not math.isfinite(loss):
                status = "diverged"
                break
    finally:
        model.set_weights(initial)  # nothing the test learned leaks out
    return RangeTestResult.from_points(cfg, rows, status)


def _scalar(value: Any) -> float:
    # train_on_batch returns a float, or a list when the model has metrics
    if isinstance(value, (list, tuple)):
        value = value[0]
    return float(value)


# --- stored runs ----------------------------------------------------------------------


def run_lr_find(run_id: str, store: Any) -> RangeTestResult | None:
    """Run the stored ``kind='lr_find'`` run ``run_id`` and record it in ``store``.

    Points go to ``store.log_points`` a few times a second (numbered 0, 1, ... in the
    order recorded; ``lrviz.lr_finder.load_result`` maps them back to steps). The run
    ends finished, diverged, cancelled, or failed with the error text. A run a worker
    already claimed stays ``running``; a queued one is moved to running here.
    """
    info = store.get(run_id)
    cfg = RangeTestConfig.from_dict(info.config)
    if info.status == "queued":
        store.set_status(run_id, "running", only_if="queued")
    pending: list[tuple[int, float, float, float]] = []
    written = 0
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal written, last_flush
        if pending:
            _, lr, loss, smoothed = zip(*pending)
            store.log_points(run_id, written, lr, loss, smoothed)
            written += len(pending)
            pending.clear()
        last_flush = time.monotonic()

    def on_point(step: int, lr: float, loss: float, smoothed: float) -> None:
        pending.append((step, lr, loss, smoothed))
        # a few writes a second keep the live chart fresh without hammering SQLite
        if time.monotonic() - last_flush > 0.5:
            flush()

    try:
        result = run_range_test(cfg, on_point, lambda: store.cancel_requested(run_id))
    except Exception as exc:  # a failed test is a stored status, not a crashed worker
        flush()
        store.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}",
                         only_if=("queued", "running"))
        return None
    flush()
    store.set_status(run_id, result.status, only_if=("queued", "running"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrviz.training.range_test",
                                     description="Run a stored LR range test.")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    from lrviz.store import RunStore

    result = run_lr_find(args.run_id, RunStore())
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
