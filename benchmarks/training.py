"""What lrviz's training costs on top of Keras: seconds per epoch and time to first epoch.

Run: ``python benchmarks/training.py [--epochs 3] [--train-size 20000]``. In one process,
on the real Fashion-MNIST sample:

1. a bare ``model.fit`` of the same model, optimizer, schedule and data;
2. lrviz's ``run_training`` streaming into a real ``StoreSink`` (temp SQLite store);

each epoch timed the same way, as the wall time between consecutive epoch ends (from the
start of ``fit`` / ``run_training`` for the first). Target (issue 3): lrviz's overhead at
most 5% per epoch (epochs after the first, which also holds tracing). The two are run in
alternation ``--repeats`` times and the best of each is kept, so a busy shared machine
hurts both alike.

3. Time from pressing Train (``LocalExecutor.submit``) until the first epoch's metrics are
in the store: once with a cold worker (it starts Python and TensorFlow) and once with
the now-warm worker, compared with the bare fit's first epoch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import keras  # noqa: E402

from lrviz.config import RunConfig  # noqa: E402
from lrviz.store import RunStore, StoreSink  # noqa: E402
from lrviz.training import run_training  # noqa: E402
from lrviz.training.run import prepare  # noqa: E402

TARGET_OVERHEAD = 0.05


class EpochClock(keras.callbacks.Callback):
    """Wall time at each epoch end of a bare fit (nothing else: no per-batch hooks)."""

    def __init__(self, start: float):
        super().__init__()
        self.ends = [start]

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


class ClockedSink(StoreSink):
    """The real StoreSink, noting when each epoch is in the store."""

    def __init__(self, store: RunStore, run_id: str, start: float):
        super().__init__(store, run_id)
        self.ends = [start]

    def on_epoch(self, epoch, metrics, seconds):
        super().on_epoch(epoch, metrics, seconds)
        self.ends.append(time.perf_counter())


def bare_fit(config: RunConfig) -> list[float]:
    """Seconds per epoch of plain ``model.fit`` on the same compiled model and data."""
    start = time.perf_counter()
    sample, model, callbacks = prepare(config)  # same seeding, model, optimizer, schedule
    clock = EpochClock(start)
    model.fit(sample.x_train, sample.y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_data=(sample.x_val, sample.y_val), shuffle=True,
              callbacks=callbacks + [clock], verbose=0)
    return [b - a for a, b in zip(clock.ends, clock.ends[1:])]


def lrviz_run(config: RunConfig, store: RunStore) -> list[float]:
    """Seconds per epoch of ``run_training`` writing into the store, as the worker runs it."""
    run_id = store.create_run(config, status="running")
    start = time.perf_counter()
    sink = ClockedSink(store, run_id, start)
    outcome = run_training(config, sink)
    assert outcome.status == "finished", outcome
    assert len(store.history(run_id)) == config.epochs
    return [b - a for a, b in zip(sink.ends, sink.ends[1:])]


def time_to_first_epoch(config: RunConfig, store: RunStore, retrain: bool) -> float:
    """Seconds from ``LocalExecutor.submit`` until epoch 1 is in the store."""
    from lrviz.jobs import LocalExecutor

    executor = LocalExecutor(store, max_concurrent=1, idle_timeout=20.0)
    start = time.perf_counter()
    run_id = executor.submit(config, retrain=retrain).run_id
    while store.history(run_id).empty:
        if store.get(run_id).status in ("failed", "interrupted", "cancelled"):
            raise RuntimeError(f"run {run_id} ended {store.get(run_id).status}: {store.get(run_id).error}")
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    executor.cancel(run_id)
    while store.get(run_id).status == "running":
        time.sleep(0.1)
    return seconds


def stop_workers(store: RunStore) -> None:
    """Stop the worker processes this benchmark started (by pid), not waiting for idle."""
    import signal

    for worker in store.workers():
        try:
            os.kill(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def steady(runs: list[list[float]]) -> tuple[float, float]:
    """(best, median) seconds per epoch after the first (which also traces the graph).

    The best is the figure compared: on a shared machine other processes only ever add
    time, so the fastest epoch is the closest to what the code itself costs."""
    rest = [s for per_epoch in runs for s in (per_epoch[1:] or per_epoch)]
    return min(rest), statistics.median(rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2, help="alternations of bare and lrviz")
    parser.add_argument("--granularity", default="batch", choices=("epoch", "batch"),
                        help="batch (default) looks the LR up every step: the costlier case")
    parser.add_argument("--skip-worker", action="store_true", help="no time-to-first-epoch")
    args = parser.parse_args(argv)

    cache = Path(tempfile.mkdtemp(prefix="lrviz-bench-"))
    os.environ["LRVIZ_CACHE_DIR"] = str(cache)  # workers inherit it: never the user's cache
    store = RunStore(cache / "lrviz.db")
    config = RunConfig.create("exponential", {"initial_lr": 0.1, "k": 0.1}, args.granularity,
                              "sgd", {"momentum": 0.8}, epochs=args.epochs,
                              train_size=args.train_size)
    print(f"config: {config.label()}, {args.granularity} granularity, {config.train_size:,} images, "
          f"batch {config.batch_size}, {config.steps_per_epoch} steps/epoch, {config.epochs} epochs")

    bare_runs, lrviz_runs = [], []
    for i in range(args.repeats):
        bare_runs.append(bare_fit(config))
        lrviz_runs.append(lrviz_run(config, store))
        print(f"  repeat {i + 1}: bare {_fmt(bare_runs[-1])}  lrviz {_fmt(lrviz_runs[-1])}")
    (bare, bare_median), (ours, ours_median) = steady(bare_runs), steady(lrviz_runs)
    overhead = ours / bare - 1
    print(f"bare model.fit     : {bare:6.2f} s/epoch best, {bare_median:6.2f} median (epochs after the first)")
    print(f"lrviz run_training : {ours:6.2f} s/epoch best, {ours_median:6.2f} median")
    verdict = "OK" if overhead <= TARGET_OVERHEAD else "OVER TARGET"
    print(f"overhead           : {overhead * 100:+5.1f} %  (target <= {TARGET_OVERHEAD * 100:.0f} %: {verdict})")

    bare_first = min(r[0] for r in bare_runs)
    print(f"bare fit, first epoch (warm process): {bare_first:6.2f} s")
    if args.skip_worker:
        return 0
    try:
        cold = time_to_first_epoch(config.__class__.create(
            config.schedule, config.schedule_params, config.granularity, config.optimizer,
            config.optimizer_params, epochs=args.epochs, train_size=args.train_size, seed=1), store,
            retrain=True)
        print(f"Train -> epoch 1 in store, cold worker (starts Python + TF): {cold:6.2f} s "
              f"({cold - bare_first:+.2f} s vs bare first epoch)")
        warm = time_to_first_epoch(config.__class__.create(
            config.schedule, config.schedule_params, config.granularity, config.optimizer,
            config.optimizer_params, epochs=args.epochs, train_size=args.train_size, seed=2), store,
            retrain=True)
        print(f"Train -> epoch 1 in store, warm worker                     : {warm:6.2f} s "
              f"({warm - bare_first:+.2f} s vs bare first epoch)")
    finally:
        stop_workers(store)
    return 0


def _fmt(per_epoch: list[float]) -> str:
    return "[" + ", ".join(f"{s:.2f}" for s in per_epoch) + "]"


if __name__ == "__main__":
    sys.exit(main())
