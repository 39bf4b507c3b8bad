"""Fashion-MNIST from the four IDX gzip files, and the article's seeded sample.

Pure numpy: TensorFlow is never imported here (Keras's own download is the last resort
and is imported lazily). The files are looked for in ``$LRVIZ_DATA_DIR``,
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``),
``~/.keras/datasets/fashion-mnist``, then Keras downloads them. A missing, truncated or
wrong file raises ``DataError`` with one sentence naming the path and the fix.

``python -m lrviz.data --ensure`` makes sure the data is there (used by ``make``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FIX = "apt-get install dataset-fashion-mnist, or set LRVIZ_DATA_DIR to a folder holding the four files"

# file name -> (magic number, item count, item shape)
FILES: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte.gz": (2051, 60_000, (28, 28)),
    "train-labels-idx1-ubyte.gz": (2049, 60_000, ()),
    "t10k-images-idx3-ubyte.gz": (2051, 10_000, (28, 28)),
    "t10k-labels-idx1-ubyte.gz": (2049, 10_000, ()),
}
NUM_CLASSES = 10


class DataError(Exception):
    """Fashion-MNIST is missing or damaged: one sentence naming the path and the fix."""


@dataclass(frozen=True)
class Sample:
    """Training and validation arrays ready for ``model.fit``."""

    x_train: np.ndarray  # float32 in [0, 1], shape (n, 28, 28)
    y_train: np.ndarray  # uint8 labels 0..9
    x_val: np.ndarray
    y_val: np.ndarray
    validation: str  # human description, e.g. "10,000 test images"


def candidate_dirs() -> list[Path]:
    """Folders searched for the four files, in order."""
    dirs = []
    if os.environ.get("LRVIZ_DATA_DIR"):
        dirs.append(Path(os.environ["LRVIZ_DATA_DIR"]).expanduser())
    dirs += [SYSTEM_DIR, Path.home() / ".keras" / "datasets" / "fashion-mnist"]
    return dirs


def find_data_dir() -> Path | None:
    """The folder to read: ``$LRVIZ_DATA_DIR`` when set (it is the person's explicit
    choice, so missing files there are an error, not a reason to look elsewhere), else the
    first folder holding any of the four files (a partial copy is reported, not skipped);
    None means none is present and Keras's download is the last resort."""
    if os.environ.get("LRVIZ_DATA_DIR"):
        return candidate_dirs()[0]
    for folder in candidate_dirs():
        if any((folder / name).is_file() for name in FILES):
            return folder
    return None


def read_idx(path: Path, magic: int, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """Parse one gzip IDX file and check its header against what Fashion-MNIST has."""
    def bad(what: str) -> DataError:
        return DataError(f"Fashion-MNIST file {path} {what}; to fix it: {FIX}.")

    if not path.is_file():
        raise bad("is missing")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # truncated or not gzip at all
        raise bad(f"cannot be read ({exc})") from None
    ndim = 1 + len(shape)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise bad("is truncated")
    found_magic = int.from_bytes(raw[:4], "big")
    if found_magic != magic:
        raise bad(f"has magic number {found_magic}, expected {magic}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims[0] != count:
        raise bad(f"holds {dims[0]} items, expected {count}")
    if dims[1:] != shape:
        raise bad(f"has items of shape {dims[1:]}, expected {shape}")
    size = int(np.prod(dims))
    if len(raw) - header < size:
        raise bad("is truncated")
    data = np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)
    if not shape and data.max(initial=0) >= NUM_CLASSES:
        raise bad(f"has label {int(data.max())}, expected 0 to {NUM_CLASSES - 1}")
    return data


def load_dir(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the four files in ``folder``."""
    arrays = [read_idx(folder / name, *spec) for name, spec in FILES.items()]
    return arrays[0], arrays[1], arrays[2], arrays[3]


_cache: dict[str, tuple[np.ndarray, ...]] = {}
_lock = threading.Lock()


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The full dataset as uint8 arrays, cached in-process; raises ``DataError``."""
    with _lock:
        folder = find_data_dir()
        key = str(folder) if folder else "keras"
        if key not in _cache:
            _cache[key] = load_dir(folder) if folder else _keras_download()
        return _cache[key]  # type: ignore[return-value]


def _keras_download() -> tuple[np.ndarray, ...]:
    where = ", ".join(str(d) for d in candidate_dirs())
    try:
        import keras  # lazily: only when no local copy exists

        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # no network, no Keras, broken download: all one fix
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"Fashion-MNIST was not found in {where} and Keras could not download it "
            f"({reason}); to fix it: {FIX}."
        ) from None
    return x_train, y_train, x_test, y_test


def load_sample(train_size: int, sample_seed: int, validation: str = "test",
                validation_split: float = 0.2) -> Sample:
    """The article's sample: ``train_size`` of the 60,000 images by a seeded draw.

    validation="test" validates on the 10,000 test images; "split" holds out the last
    ``validation_split`` of the shuffled sample, as Keras's ``validation_split`` takes the tail.
    """
    x_all, y_all, x_test, y_test = load_fashion_mnist()
    if not 1 <= train_size <= len(x_all):
        raise ValueError(f"Argument `train_size` must be in [1, {len(x_all)}]. Received: train_size={train_size}")
    idx = np.random.default_rng(sample_seed).choice(len(x_all), size=train_size, replace=False)
    x = x_all[idx].astype(np.float32) / 255.0
    y = y_all[idx]
    if validation == "test":
        return Sample(x, y, x_test.astype(np.float32) / 255.0, y_test,
                      f"{len(x_test):,} test images")
    if validation == "split":
        if not 0.0 < validation_split < 1.0:
            raise ValueError("Argument `validation_split` must be in (0, 1). "
                             f"Received: validation_split={validation_split}")
        cut = train_size - int(train_size * validation_split)
        if cut < 1 or cut == train_size:
            raise ValueError(f"Argument `validation_split` leaves no training or no validation "
                             f"images of {train_size}. Received: validation_split={validation_split}")
        return Sample(x[:cut], y[:cut], x[cut:], y[cut:],
                      f"last {validation_split:g} of the sample ({train_size - cut:,} images)")
    raise ValueError(f"Argument `validation` must be one of test, split. Received: validation={validation!r}")


def ensure() -> int:
    """Make sure the data is present: report it, install Debian's package, or explain."""
    folder = find_data_dir()
    if folder:
        load_dir(folder)  # a damaged copy fails here, loudly, rather than at training time
        print(f"Fashion-MNIST: {folder}")
        return 0
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd = [apt, "install", "-y", "dataset-fashion-mnist"]
        if subprocess.run(cmd, check=False).returncode != 0:
            # a fresh image has empty package lists: update once and retry
            subprocess.run([apt, "update"], check=False)
            subprocess.run(cmd, check=False)
        folder = find_data_dir()
        if folder:
            print(f"Fashion-MNIST: {folder}")
            return 0
    print("Fashion-MNIST not found locally; Keras will download it on first use "
          f"(or: {FIX}).")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--ensure"]:
        try:
            sys.exit(ensure())
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
    print("usage: python -m lrviz.data --ensure", file=sys.stderr)
    sys.exit(2)
