"""The Fashion-MNIST loader: small IDX files written here (good and damaged), the real sample."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from lrviz import data
from lrviz.data import DataError, load_sample, read_idx


def write_idx(path: Path, magic: int, arr: np.ndarray, dims: tuple[int, ...] | None = None,
              cut: int = 0) -> None:
    dims = arr.shape if dims is None else dims
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)
    raw += arr.astype(np.uint8).tobytes()
    if cut:
        raw = raw[:-cut]
    with gzip.open(path, "wb") as fh:
        fh.write(raw)


@pytest.fixture
def small_spec(monkeypatch):
    """Shrink the expected counts so a test can write a complete tiny dataset."""
    monkeypatch.setattr(data, "FILES", {
        "train-images-idx3-ubyte.gz": (2051, 30, (28, 28)),
        "train-labels-idx1-ubyte.gz": (2049, 30, ()),
        "t10k-images-idx3-ubyte.gz": (2051, 5, (28, 28)),
        "t10k-labels-idx1-ubyte.gz": (2049, 5, ()),
    })
    monkeypatch.setattr(data, "_cache", {})


def write_dataset(folder: Path, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    xt = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    write_idx(folder / "train-images-idx3-ubyte.gz", 2051, xs[0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, xs[1])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", 2051, xt[0])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, xt[1])
    return xs[0], xs[1], xt[0], xt[1]


class TestReadIdx:
    def test_good_files_parse_exactly(self, tmp_path, small_spec, monkeypatch):
        expected = write_dataset(tmp_path)
        monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
        got = data.load_fashion_mnist()
        for g, e in zip(got, expected):
            assert g.dtype == np.uint8
            np.testing.assert_array_equal(g, e)

    def test_bad_magic(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2049, np.zeros((3, 28, 28)))
        with pytest.raises(DataError, match=r"magic number 2049, expected 2051") as err:
            read_idx(path, 2051, 3, (28, 28))
        assert str(path) in str(err.value) and "LRVIZ_DATA_DIR" in str(err.value)

    def test_truncated_payload(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2051, np.zeros((3, 28, 28)), cut=100)
        with pytest.raises(DataError, match="truncated") as err:
            read_idx(path, 2051, 3, (28, 28))
        assert str(path) in str(err.value)

    def test_truncated_gzip_stream(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2051, np.arange(3 * 784).reshape(3, 28, 28) % 256)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
        with pytest.raises(DataError, match="cannot be read") as err:
            read_idx(path, 2051, 3, (28, 28))
        assert str(path) in str(err.value)

    def test_not_gzip(self, tmp_path):
        path = tmp_path / "x.gz"
        path.write_bytes(b"<html>not found</html>")
        with pytest.raises(DataError, match=str(path)):
            read_idx(path, 2051, 3, (28, 28))

    def test_wrong_count(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2049, np.zeros(4))
        with pytest.raises(DataError, match="holds 4 items, expected 3"):
            read_idx(path, 2049, 3, ())

    def test_wrong_shape(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2051, np.zeros((3, 28, 27)))
        with pytest.raises(DataError, match=r"shape \(28, 27\)"):
            read_idx(path, 2051, 3, (28, 28))

    def test_label_out_of_range(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, 2049, np.array([1, 2, 10]))
        with pytest.raises(DataError, match="label 10"):
            read_idx(path, 2049, 3, ())

    def test_missing_file_names_path_and_fix(self, tmp_path, small_spec, monkeypatch):
        write_dataset(tmp_path)
        (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
        monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
        with pytest.raises(DataError) as err:
            data.load_fashion_mnist()
        msg = str(err.value)
        assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in msg and "missing" in msg
        assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


class TestLookup:
    def test_data_dir_env_comes_first(self, tmp_path, monkeypatch):
        monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
        assert data.find_data_dir() == tmp_path
        assert data.candidate_dirs()[1] == data.SYSTEM_DIR

    def test_keras_download_failure_is_data_error(self, tmp_path, monkeypatch):
        # No local copy anywhere and a Keras that cannot download: one clear DataError.
        monkeypatch.delenv("LRVIZ_DATA_DIR", raising=False)
        monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "none")
        monkeypatch.setattr(data.Path, "home", lambda: tmp_path)
        monkeypatch.setattr(data, "_cache", {})

        class NoNet:
            class datasets:
                class fashion_mnist:
                    @staticmethod
                    def load_data():
                        raise OSError("no route to host")

        monkeypatch.setitem(sys.modules, "keras", NoNet)
        with pytest.raises(DataError, match="Keras could not download it .no route to host"):
            data.load_fashion_mnist()


class TestSample:
    def test_seeded_draw_and_split(self, tmp_path, small_spec, monkeypatch):
        x_all, y_all, _, _ = write_dataset(tmp_path)
        monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
        a = load_sample(20, 7)
        b = load_sample(20, 7)
        c = load_sample(20, 8)
        np.testing.assert_array_equal(a.x_train, b.x_train)
        assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.x_train, c.x_train)
        assert a.x_train.dtype == np.float32 and a.x_train.max() <= 1.0
        # every drawn image is one of the originals, no repeats
        flat = {x.tobytes() for x in (x_all.astype(np.float32) / 255.0)}
        assert all(x.tobytes() in flat for x in a.x_train)
        assert len({x.tobytes() for x in a.x_train}) == 20
        assert len(a.x_val) == 5
        s = load_sample(20, 7, "split", 0.25)
        assert len(s.x_train) == 15 and len(s.x_val) == 5
        np.testing.assert_array_equal(s.x_val, a.x_train[15:])  # the tail, like Keras

    def test_bad_validation(self, tmp_path, small_spec, monkeypatch):
        write_dataset(tmp_path)
        monkeypatch.setenv("LRVIZ_DATA_DIR", str(tmp_path))
        with pytest.raises(ValueError, match="validation"):
            load_sample(20, 0, "holdout")


@pytest.mark.skipif(data.find_data_dir() is None, reason="real Fashion-MNIST not installed")
def test_real_sample_shapes_and_range():
    s = load_sample(1000, 0)
    assert s.x_train.shape == (1000, 28, 28) and s.x_train.dtype == np.float32
    assert s.y_train.shape == (1000,) and set(np.unique(s.y_train)) == set(range(10))
    assert s.x_val.shape == (10_000, 28, 28) and s.y_val.shape == (10_000,)
    assert 0.0 == s.x_train.min() and s.x_train.max() == 1.0
    assert "10,000 test images" == s.validation
