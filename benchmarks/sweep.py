"""Benchmark: the article's seven runs, batched engine versus sequential single runs.

    python benchmarks/sweep.py [--epochs 3] [--train-size 20000] [--skip-sequential]

Sequential is the single-run path (``lrviz.training.run_training``, i.e. ``model.fit``),
one run after another; batched is ``lrviz.training.batched.train_batched``. Both run in
this process with in-memory sinks (no store) so only training is timed. Seconds per epoch
leave out epoch 1 (tracing and warm-up) when there are 2+ epochs.

The preset is timed as it is (plain SGD and Adam at the article's LRs: every run trains
every epoch). Should a run stop early, only the epochs all seven began are timed.

The matrix-multiply floor: this machine's sgemm rate, measured with TensorFlow matmuls of
the shapes one batched step runs (forward and the two backward products of each layer),
and the FLOPs of the seven models' forward and backward passes over one epoch
(2 * weights per sample forward, x3 with the backward pass, x samples x 7 models).
Targets (issue 7): batched >= 1.8x faster than sequential; batched <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


class TimingSink:
    """Epoch seconds, scaled to a whole epoch when the run stopped mid-epoch (diverged)."""

    def __init__(self, steps_per_epoch: int):
        self.spe = steps_per_epoch
        self.seconds: list[float] = []
        self._steps = steps_per_epoch

    def on_epoch(self, epoch, metrics, seconds):
        self.seconds.append(seconds * self.spe / max(1, self._steps))

    def on_step_lr(self, first_step, lrs):
        self._steps = len(lrs)

    def should_stop(self):
        return False


def steady(seconds: list[float]) -> float:
    """Mean epoch time, leaving out the first epoch (tracing) when there are more."""
    return float(np.mean(seconds[1:] if len(seconds) > 1 else seconds))


def sgemm_gflops(k: int, hidden: tuple[int, ...], batch: int, repeats: int = 30) -> float:
    """GFLOP/s of TensorFlow float32 matmuls shaped like one batched step of ``k`` runs."""
    import tensorflow as tf

    widths = [784, *hidden, 10]
    mats = []  # (a, b, transpose_a, transpose_b) for forward and both backward products
    rng = tf.random.Generator.from_seed(0)
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        kk = 1 if i == 0 else k
        cols = n_out * (k if i == 0 else 1)
        x = rng.normal([kk, batch, n_in])
        w = rng.normal([kk, n_in, cols])
        g = rng.normal([kk, batch, cols])
        mats += [(x, w, False, False), (x, g, True, False), (g, w, False, True)]
    flops = sum(2 * a.shape[0] * (a.shape[2] if ta else a.shape[1]) * (a.shape[1] if ta else a.shape[2])
                * (b.shape[1] if tb else b.shape[2]) for a, b, ta, tb in mats)

    @tf.function
    def run():
        return [tf.linalg.matmul(a, b, transpose_a=ta, transpose_b=tb) for a, b, ta, tb in mats]

    run()
    start = time.perf_counter()
    for _ in range(repeats):
        out = run()
    _ = [o.numpy() for o in out]
    return flops * repeats / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args(argv)

    from lrviz.presets import preset_configs
    from lrviz.training.batched import train_batched
    from lrviz.training.run import run_training

    configs = preset_configs("article", epochs=args.epochs, train_size=args.train_size)
    k, first = len(configs), configs[0]
    print(f"{k} article runs, {args.epochs} epochs, {args.train_size} images, batch {first.batch_size}, "
          f"{os.cpu_count()} CPUs", flush=True)

    spe = first.steps_per_epoch
    sinks = [TimingSink(spe) for _ in configs]
    start = time.perf_counter()
    outcomes = train_batched(configs, sinks)
    batched_total = time.perf_counter() - start
    # A run that stops early leaves the stack, so only epochs that began with all k runs
    # are timed (a diverging run is masked, not dropped, mid-epoch).
    full = min(o.epochs_done for o in outcomes)
    timed = sinks[0].seconds[:max(1, full)]
    batched = steady(timed)
    print(f"batched:    {batched:7.2f} s/epoch for all {k} runs (epochs timed: {len(timed)}, "
          f"epoch 1 {timed[0]:.2f} s incl. tracing; total {batched_total:.1f} s)", flush=True)
    print("            " + ", ".join(f"{c.schedule}:{o.status}@{o.epochs_done}"
                                      for c, o in zip(configs, outcomes)))

    if not args.skip_sequential:
        sequential = 0.0
        start = time.perf_counter()
        for config in configs:
            sink = TimingSink(spe)
            out = run_training(config, sink)
            print(f"            {config.schedule}: {out.status}@{out.epochs_done} "
                  f"{steady(sink.seconds):.2f} s/epoch", flush=True)
            sequential += steady(sink.seconds)
        print(f"sequential: {sequential:7.2f} s/epoch for all {k} runs (sum of each run's; "
              f"total {time.perf_counter() - start:.1f} s)", flush=True)
        seq_total = time.perf_counter() - start
        print(f"speed-up:   {sequential / batched:7.2f}x per epoch  (target >= 1.8x); "
              f"wall time {seq_total / batched_total:.2f}x")

    gflops = sgemm_gflops(k, tuple(first.hidden), first.batch_size)
    widths = [784, *first.hidden, 10]
    weights = sum(a * b for a, b in zip(widths, widths[1:]))
    samples = first.steps_per_epoch * first.batch_size
    flops = 2 * weights * 3 * samples * k
    floor = flops / (gflops * 1e9)
    print(f"sgemm:      {gflops:7.1f} GFLOP/s measured (TensorFlow, step-shaped matmuls)")
    print(f"floor:      {floor:7.2f} s/epoch ({flops / 1e9:.0f} GFLOP: 2 x {weights:,} weights x 3 "
          f"x {samples:,} samples x {k} models)")
    print(f"batched / floor: {batched / floor:5.2f}x  (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
