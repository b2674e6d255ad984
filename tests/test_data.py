"""Tests for ssljax.data: sources (IDX, digits, TFDS), host batches, global arrays."""

import gzip
import itertools
import os
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from helpers import require_devices
import ssljax.data as data
from ssljax.data import sources
from ssljax.parallel import make_data_mesh

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(
    not os.path.isdir(FASHION_DIR),
    reason=f"{FASHION_DIR} absent: install the Debian package dataset-fashion-mnist "
           "(apt-get install dataset-fashion-mnist)")


# ---------------------------------------------------------------------------
# Helpers: hand-made IDX files.


def idx_bytes(array: np.ndarray) -> bytes:
  """Encode an array as IDX, independently of the reader under test."""
  codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
           np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
  big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
  header = bytes([0, 0, codes[big.dtype], array.ndim])
  header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  return header + big.tobytes()


def write_idx(path, array, compress):
  raw = idx_bytes(array)
  with open(path, "wb") as f:
    f.write(gzip.compress(raw) if compress else raw)


def tiny_idx_dir(directory, n_train=10, n_test=4, compress=True, seed=0):
  """Four fake Fashion-MNIST-named IDX files; returns (train, test) arrays."""
  rng = np.random.default_rng(seed)
  out = {}
  os.makedirs(directory, exist_ok=True)
  for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
    images = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    ext = ".gz" if compress else ""
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{ext}"), images, compress)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{ext}"), labels, compress)
    out[split] = (images, labels)
  return out


@pytest.fixture
def no_system_dirs(monkeypatch):
  """Hide the Debian location and $SSLJAX_DATA_DIR from the IDX search."""
  monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def toy_dataset(n=103, shape=(2, 3, 1)):
  """Labels are the example indices, images encode them too."""
  labels = np.arange(n, dtype=np.int32)
  images = np.broadcast_to((labels % 256).astype(np.uint8)[:, None, None, None],
                           (n, *shape)).copy()
  return data.ArrayDataset(images, labels, num_classes=n, name="toy")


# ---------------------------------------------------------------------------
# IDX reader.


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  ints = np.array([1, -2, 70000, 2**31 - 1], dtype=np.int32)
  write_idx(tmp_path / "a", images, compress)
  write_idx(tmp_path / "b", ints, compress)
  got = data.read_idx(tmp_path / "a")
  assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
  np.testing.assert_array_equal(got, images)
  got = data.read_idx(tmp_path / "b")  # big-endian int32 on disk
  np.testing.assert_array_equal(got, ints)
  assert got.dtype.isnative


def test_read_idx_known_bytes(tmp_path):
  # Written by hand: magic 0x00000801 (uint8, 1 dim), dim 3, data 7 8 9.
  (tmp_path / "x").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
  np.testing.assert_array_equal(data.read_idx(tmp_path / "x"), [7, 8, 9])


def test_read_idx_corrupt_and_truncated(tmp_path):
  raw = idx_bytes(np.zeros((3, 4, 4), np.uint8))
  cases = {
      "badmagic": b"\x12\x34" + raw[2:],
      "badtype": raw[:2] + b"\x07" + raw[3:],
      "shortheader": raw[:9],
      "truncated": raw[:-5],
      "trailing": raw + b"\x00",
      "empty": b"",
  }
  for name, content in cases.items():
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name):  # the message names the file
      data.read_idx(path)
  for name in ("truncated",):
    path = tmp_path / f"{name}.gz"
    path.write_bytes(gzip.compress(cases[name]))
    with pytest.raises(ValueError, match="truncated"):
      data.read_idx(path)
  path = tmp_path / "cut.gz"  # a gzip stream cut in the middle
  path.write_bytes(gzip.compress(raw)[:20])
  with pytest.raises(ValueError, match=r"cut\.gz.*(corrupt|truncated)"):
    data.read_idx(path)


# ---------------------------------------------------------------------------
# Local IDX datasets (hand-made files) and splits.


@pytest.mark.parametrize("compress", [True, False])
def test_load_local_idx(tmp_path, no_system_dirs, compress):
  arrays = tiny_idx_dir(tmp_path, compress=compress)
  for split in ("train", "test"):
    ds = data.load("fashion_mnist", split, data_dir=str(tmp_path), source="local")
    images, labels = arrays[split]
    assert ds.images.shape == (len(images), 5, 4, 1) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.num_classes == 10
    np.testing.assert_array_equal(ds.images[..., 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert len(ds) == len(labels)


def test_split_slicing(tmp_path, no_system_dirs):
  arrays = tiny_idx_dir(tmp_path, n_train=20)
  images, labels = arrays["train"]
  load = lambda s: data.load("fashion_mnist", s, data_dir=str(tmp_path), source="local")
  for split, sl in [("train[:7]", slice(None, 7)), ("train[15:]", slice(15, None)),
                    ("train[3:8]", slice(3, 8)), ("train[-4:]", slice(-4, None)),
                    ("train[:10%]", slice(None, 2)), ("train[50%:]", slice(10, None)),
                    ("train[ 2 : 5 ]", slice(2, 5))]:
    ds = load(split)
    np.testing.assert_array_equal(ds.labels, labels[sl], err_msg=split)
    np.testing.assert_array_equal(ds.images[..., 0], images[sl], err_msg=split)
  both = load("train[:3]+test")
  np.testing.assert_array_equal(both.labels,
                                np.concatenate([labels[:3], arrays["test"][1]]))
  with pytest.raises(ValueError, match="no split 'validation'"):
    load("validation")
  with pytest.raises(ValueError, match="bad split"):
    load("train[1:x]")


def test_env_var_dir(tmp_path, no_system_dirs, monkeypatch):
  arrays = tiny_idx_dir(tmp_path / "fashion_mnist")
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  ds = data.load("fashion_mnist", "test", source="local")
  np.testing.assert_array_equal(ds.labels, arrays["test"][1])


def test_missing_fashion_mnist_message(tmp_path, no_system_dirs):
  with pytest.raises(FileNotFoundError) as e:
    data.load("fashion_mnist", "train", data_dir=str(tmp_path / "nothing"), source="local")
  msg = str(e.value)
  assert "dataset-fashion-mnist" in msg and "apt-get install" in msg
  assert "SSLJAX_DATA_DIR" in msg and "source='tfds'" in msg
  assert "train-images-idx3-ubyte" in msg and str(tmp_path / "nothing") in msg
  assert isinstance(e.value, data.DatasetNotAvailableError)


def test_local_source_for_tfds_only_name():
  with pytest.raises(ValueError, match="no local source"):
    data.load("cifar10", "train", source="local")
  with pytest.raises(ValueError, match="source must be"):
    data.load("digits", "train", source="disk")


def test_array_dataset_validation():
  images = np.zeros((4, 2, 2, 1), np.uint8)
  labels = np.zeros((4,), np.int32)
  data.ArrayDataset(images, labels, 10, "ok")
  with pytest.raises(ValueError, match="images.*uint8.*float32"):
    data.ArrayDataset(images.astype(np.float32), labels, 10)
  with pytest.raises(ValueError, match=r"images.*\(4, 2, 2\)"):
    data.ArrayDataset(images[..., 0], labels, 10)
  with pytest.raises(ValueError, match="labels.*int32.*int64"):
    data.ArrayDataset(images, labels.astype(np.int64), 10)
  with pytest.raises(ValueError, match=r"\(4, 2, 2, 1\).*\(3,\)"):
    data.ArrayDataset(images, labels[:3], 10)
  with pytest.raises(ValueError, match=r"\[0, 10\)"):
    data.ArrayDataset(images, labels + 10, 10)


# ---------------------------------------------------------------------------
# Real Fashion-MNIST (Debian package dataset-fashion-mnist).


@pytest.fixture(scope="module")
def fashion():
  if not os.path.isdir(FASHION_DIR):
    pytest.skip(f"{FASHION_DIR} absent: install the Debian package "
                "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")
  return {s: data.load("fashion_mnist", s, source="local") for s in ("train", "test")}


@needs_fashion
def test_fashion_mnist_real(fashion):
  train, test = fashion["train"], fashion["test"]
  assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
  assert test.images.shape == (10000, 28, 28, 1) and test.images.dtype == np.uint8
  assert train.labels.dtype == np.int32 and train.num_classes == 10
  np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
  assert train.labels[0] == 9  # the first training image is an ankle boot
  assert train.images.max() == 255 and train.images.min() == 0
  mean, std = data.channel_stats(train)
  facts = data.info("fashion_mnist")
  assert facts.image_shape == (28, 28, 1) and facts.num_classes == 10
  np.testing.assert_allclose(mean, facts.mean, atol=5e-5)
  np.testing.assert_allclose(std, facts.std, atol=5e-5)
  np.testing.assert_allclose(mean, [0.2860], atol=5e-5)
  np.testing.assert_allclose(std, [0.3530], atol=5e-5)


@needs_fashion
def test_fashion_mnist_real_slices(fashion):
  train = fashion["train"]
  head = data.load("fashion_mnist", "train[:1000]")  # source="auto" finds the files
  np.testing.assert_array_equal(head.images, train.images[:1000])
  tail = data.load("fashion_mnist", "train[50000:]")
  np.testing.assert_array_equal(tail.labels, train.labels[50000:])
  assert len(data.load("fashion_mnist", "train[:10%]")) == 6000


def test_channel_stats_matches_numpy():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 3, 5, 3), dtype=np.uint8)
  ds = data.ArrayDataset(images, np.zeros(7, np.int32), 1)
  mean, std = data.channel_stats(ds)
  x = images.astype(np.float64) / 255
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-12)


# ---------------------------------------------------------------------------
# scikit-learn digits.


def test_digits():
  from sklearn.datasets import load_digits
  train = data.load("digits", "train")
  test = data.load("digits", "test")
  assert train.images.shape == (1500, 8, 8, 1) and test.images.shape == (297, 8, 8, 1)
  assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
  assert train.images.min() == 0 and train.images.max() == 255
  assert set(np.unique(train.labels)) == set(range(10))
  raw = load_digits()
  np.testing.assert_array_equal(train.labels, raw.target[:1500])
  # 0..16 -> 0..255: 16 -> 255, 8 -> 128 (127.5 rounds to even), 1 -> 16.
  np.testing.assert_array_equal(
      test.images[..., 0], np.round(raw.images[1500:] * 255 / 16).astype(np.uint8))
  assert set(np.unique(train.images)) <= set(np.round(np.arange(17) * 255 / 16))
  np.testing.assert_array_equal(data.load("digits", "train[:100]").labels, raw.target[:100])
  facts = data.info("digits")
  mean, std = data.channel_stats(train)
  np.testing.assert_allclose(mean, facts.mean, atol=5e-5)
  np.testing.assert_allclose(std, facts.std, atol=5e-5)


# ---------------------------------------------------------------------------
# Host batches.


def take(it, n):
  return list(itertools.islice(it, n))


def test_batches_deterministic_and_seeded():
  ds = toy_dataset()
  a = take(data.batches(ds, batch_size=10, seed=3, process_count=1, process_index=0), 25)
  b = take(data.batches(ds, batch_size=10, seed=3, process_count=1, process_index=0), 25)
  c = take(data.batches(ds, batch_size=10, seed=4, process_count=1, process_index=0), 25)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["label"], y["label"])
    np.testing.assert_array_equal(x["image"], y["image"])
  assert any(not np.array_equal(x["label"], z["label"]) for x, z in zip(a, c))
  for x in a:
    assert x["image"].shape == (10, 2, 3, 1) and x["image"].dtype == np.uint8
    assert x["label"].shape == (10,) and x["label"].dtype == np.int32
    np.testing.assert_array_equal(x["image"][:, 0, 0, 0], x["label"] % 256)
  # epoch 0 is exactly default_rng([seed, 0]).permutation(N), batch after batch.
  perm = np.random.default_rng([3, 0]).permutation(len(ds))
  np.testing.assert_array_equal(np.concatenate([x["label"] for x in a[:10]]), perm[:100])
  # Defaults come from jax (one process here).
  d = next(data.batches(ds, batch_size=10, seed=3))
  np.testing.assert_array_equal(d["label"], a[0]["label"])


def test_batches_epochs_are_permutations():
  ds = toy_dataset(103)
  assert data.steps_per_epoch(103, 10) == 10
  assert data.steps_per_epoch(103, 10, drop_remainder=False) == 11
  out = list(data.batches(ds, batch_size=10, seed=0, drop_remainder=False, epochs=2,
                          process_count=1, process_index=0))
  assert len(out) == 22 and len(out[10]["label"]) == 3 and len(out[21]["label"]) == 3
  epochs = [np.concatenate([b["label"] for b in out[:11]]),
            np.concatenate([b["label"] for b in out[11:]])]
  for e in epochs:
    np.testing.assert_array_equal(np.sort(e), np.arange(103))
  assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
  # drop_remainder: 10 full batches, 100 distinct examples per epoch.
  out = list(data.batches(ds, batch_size=10, seed=0, epochs=1,
                          process_count=1, process_index=0))
  assert len(out) == 10 and all(len(b["label"]) == 10 for b in out)
  labels = np.concatenate([b["label"] for b in out])
  assert len(np.unique(labels)) == 100
  np.testing.assert_array_equal(labels, epochs[0][:100])
  # shuffle=False: stored order.
  out = next(data.batches(ds, batch_size=10, seed=0, shuffle=False,
                          process_count=1, process_index=0))
  np.testing.assert_array_equal(out["label"], np.arange(10))


def test_batches_start_step_resumes_exactly():
  ds = toy_dataset(103)
  kw = dict(batch_size=10, seed=7, epochs=3, process_count=1, process_index=0)
  fresh = list(data.batches(ds, **kw))
  assert len(fresh) == 30
  for k in (0, 1, 9, 10, 25, 29, 30, 40):
    resumed = list(data.batches(ds, start_step=k, **kw))
    assert len(resumed) == len(fresh[k:])
    for x, y in zip(resumed, fresh[k:]):
      np.testing.assert_array_equal(x["label"], y["label"])
  # Infinite iterator: resuming mid-run of an endless stream.
  inf = take(data.batches(ds, batch_size=10, seed=7, process_count=1, process_index=0), 37)
  res = take(data.batches(ds, batch_size=10, seed=7, start_step=23, process_count=1,
                          process_index=0), 14)
  for x, y in zip(res, inf[23:]):
    np.testing.assert_array_equal(x["label"], y["label"])


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_batches_two_processes(drop_remainder):
  ds = toy_dataset(103)
  kw = dict(batch_size=10, seed=1, epochs=2, drop_remainder=drop_remainder)
  whole = list(data.batches(ds, process_index=0, process_count=1, **kw))
  p0 = list(data.batches(ds, process_index=0, process_count=2, **kw))
  p1 = list(data.batches(ds, process_index=1, process_count=2, **kw))
  assert len(whole) == len(p0) == len(p1)
  for g, a, b in zip(whole, p0, p1):
    if len(g["label"]) == 10:
      assert len(a["label"]) == len(b["label"]) == 5
    assert not set(a["label"]) & set(b["label"])  # disjoint
    np.testing.assert_array_equal(np.concatenate([a["label"], b["label"]]), g["label"])
    np.testing.assert_array_equal(np.concatenate([a["image"], b["image"]]), g["image"])
  # Resume on one process lines up with the others.
  r1 = list(data.batches(ds, process_index=1, process_count=2, start_step=5, **kw))
  for x, y in zip(r1, p1[5:]):
    np.testing.assert_array_equal(x["label"], y["label"])


def test_batches_errors():
  ds = toy_dataset(20)
  with pytest.raises(ValueError, match="does not divide over 3 processes"):
    data.batches(ds, batch_size=10, seed=0, process_index=0, process_count=3)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    data.batches(ds, batch_size=32, seed=0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="process_index"):
    data.batches(ds, batch_size=10, seed=0, process_index=2, process_count=2)


# ---------------------------------------------------------------------------
# Prefetch.


def test_prefetch_yields_in_order_and_propagates_errors():
  assert list(data.prefetch(iter(range(20)), size=3)) == list(range(20))

  def failing():
    yield 1
    yield 2
    raise RuntimeError("boom in the producer")

  it = data.prefetch(failing(), size=2)
  assert next(it) == 1 and next(it) == 2
  with pytest.raises(RuntimeError, match="boom in the producer"):
    next(it)


def test_prefetch_stops_cleanly():
  produced = []

  def endless():
    for i in itertools.count():
      produced.append(i)
      yield i

  it = data.prefetch(endless(), size=2)
  assert take(it, 5) == [0, 1, 2, 3, 4]
  it.close()
  deadline = time.time() + 5
  while time.time() < deadline and any(
      t.name == "ssljax-prefetch" and t.is_alive() for t in threading.enumerate()):
    time.sleep(0.02)
  assert not any(t.name == "ssljax-prefetch" and t.is_alive()
                 for t in threading.enumerate())
  assert len(produced) <= 5 + 2 + 2  # bounded read-ahead


# ---------------------------------------------------------------------------
# Global arrays.


def test_to_global_any_device_count():
  mesh = make_data_mesh()
  n = len(jax.devices())
  ds = toy_dataset(8 * n)
  batch = next(data.batches(ds, batch_size=2 * n, seed=0))
  out = data.to_global(batch, mesh)
  assert out["image"].shape == (2 * n, 2, 3, 1) and out["label"].shape == (2 * n,)
  np.testing.assert_array_equal(np.asarray(out["label"]), batch["label"])


def test_to_global_8_devices():
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8])
  ds = toy_dataset(64)
  batch = next(data.batches(ds, batch_size=16, seed=0))
  out = data.to_global(batch, mesh)
  for key in ("image", "label"):
    x = out[key]
    assert isinstance(x, jax.Array) and x.shape == batch[key].shape
    assert x.sharding.spec == P("data", *([None] * (x.ndim - 1)))
    assert len(x.addressable_shards) == 8
    for shard in x.addressable_shards:
      assert shard.data.shape[0] == 2
      np.testing.assert_array_equal(np.asarray(shard.data), batch[key][shard.index])
    np.testing.assert_array_equal(np.asarray(x), batch[key])
  bad = next(data.batches(ds, batch_size=12, seed=0))
  with pytest.raises(ValueError, match="global batch size 12 does not divide over 8 devices"):
    data.to_global(bad, mesh)
  # device_prefetch: the same batches, as global arrays, in order.
  host = list(data.batches(ds, batch_size=16, seed=0, epochs=1))
  dev = list(data.device_prefetch(iter(host), mesh, size=2))
  assert len(dev) == len(host) == 4
  for h, d in zip(host, dev):
    assert d["image"].sharding.spec[0] == "data"
    np.testing.assert_array_equal(np.asarray(d["label"]), h["label"])


# ---------------------------------------------------------------------------
# TFDS (faked with tfds.testing.mock_data; no download).


def test_tfds_sources_mocked():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load("cifar10", "train", source="tfds")
    assert ds.images.shape == (20, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (20,) and ds.labels.dtype == np.int32
    assert ds.num_classes == 10 and ds.labels.min() >= 0 and ds.labels.max() < 10

    # Streaming: per-process share of the global batch, central crop + resize.
    it = data.tfds_batches("imagenet2012", "train", batch_size=4, image_size=16, seed=0,
                           process_index=1, process_count=2)
    b = next(it)
    assert b["image"].shape == (2, 16, 16, 3) and b["image"].dtype == np.uint8
    assert b["label"].shape == (2,) and b["label"].dtype == np.int32
    assert (0 <= b["label"]).all() and (b["label"] < 1000).all()
    again = next(data.tfds_batches("imagenet2012", "train", batch_size=4, image_size=16,
                                   seed=0, process_index=1, process_count=2))
    np.testing.assert_array_equal(again["label"], b["label"])  # seeded

    # Unshuffled, same size: the stream is the dataset itself, drop_remainder.
    out = list(data.tfds_batches("cifar10", "train", batch_size=8, image_size=32, seed=0,
                                 shuffle=False, epochs=1, process_index=0,
                                 process_count=1))
    assert len(out) == 2
    np.testing.assert_array_equal(np.concatenate([o["image"] for o in out]),
                                  ds.images[:16])
    np.testing.assert_array_equal(np.concatenate([o["label"] for o in out]),
                                  ds.labels[:16])
    with pytest.raises(ValueError, match="does not divide over 3 processes"):
      data.tfds_batches("cifar10", "train", batch_size=8, image_size=32, seed=0,
                        process_index=0, process_count=3)
    # Variable-size images cannot be loaded whole.
    with pytest.raises(ValueError, match="tfds_batches"):
      data.load("imagenet2012", "validation")


def test_tfds_missing_dataset_message(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(FileNotFoundError) as e:
    data.load("no_such_dataset_xyz", "train", data_dir=str(tmp_path), source="tfds")
  msg = str(e.value)
  assert "no_such_dataset_xyz" in msg and str(tmp_path) in msg
  assert "tfds build no_such_dataset_xyz" in msg and "~/tensorflow_datasets" in msg


def test_info():
  assert data.info("cifar10").num_classes == 10
  assert data.info("cifar100").image_shape == (32, 32, 3)
  assert data.info("imagenet2012").num_classes == 1000


def test_import_is_lazy():
  code = ("import sys, ssljax.data; "
          "bad = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules]; "
          "assert not bad, bad")
  env = dict(os.environ)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 0, result.stderr
