"""Dataset sources: in-memory arrays from local files, scikit-learn or TFDS.

Two ways in:

* :func:`load` returns an :class:`ArrayDataset` (uint8 images ``[N,H,W,C]``,
  int32 labels ``[N]``) held in host memory; fine for Fashion-MNIST, MNIST,
  CIFAR-10/100, STL-10 and scikit-learn's digits. Host batches come from
  :func:`ssljax.data.pipeline.batches`.
* :func:`tfds_batches` streams a large TFDS dataset (ImageNet) through a
  ``tf.data`` pipeline, one per process, and yields host batches directly.

Fashion-MNIST and MNIST are read from local IDX files when present (on Debian:
``apt-get install dataset-fashion-mnist`` puts them under
``/usr/share/datasets/fashion-mnist/``): the same 70,000 images TFDS serves,
without a download. Everything else goes through TFDS.

TensorFlow and TFDS are imported lazily, inside the functions that use them:
importing this module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np

from ssljax.data.colour import COLOUR_CROPS, load_colour_crops
from ssljax.data.dataset import ArrayDataset, DatasetNotAvailableError
from ssljax.data.photos import load_photos
from ssljax.data.video import OPENCV_VIDEOS_DATASET, load_clips

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "DatasetNotAvailableError",
    "channel_stats",
    "info",
    "load",
    "read_idx",
    "tfds_batches",
    "to_uint8_images",
    "DIGITS_TRAIN_SIZE",
]

#: Environment variable naming a folder with one sub-folder per dataset
#: (``$SSLJAX_DATA_DIR/fashion_mnist/train-images-idx3-ubyte.gz``, ...).
DATA_DIR_ENV = "SSLJAX_DATA_DIR"

#: Where system packages put the IDX files (Debian ``dataset-fashion-mnist``).
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": ("/usr/share/datasets/mnist",),
}

#: The local IDX datasets and the Debian package that provides each (if any).
_IDX_DATASETS = {"fashion_mnist": "dataset-fashion-mnist", "mnist": None}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: ``load("digits", "train")`` is the first 1500 of scikit-learn's 1797
#: digits (in their stored order); ``"test"`` is the remaining 297.
DIGITS_TRAIN_SIZE = 1500


# ---------------------------------------------------------------------------
# Dataset facts.


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Facts about a dataset; ``mean``/``std`` per channel in ``[0, 1]`` units.

  ``image_shape`` has ``None`` for variable sizes (ImageNet); ``mean``/``std``
  are ``None`` where unknown (use :func:`channel_stats`).
  """

  name: str
  image_shape: tuple[int | None, int | None, int]
  num_classes: int
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None


#: Class names by label id, where the dataset has them (pictures and tables).
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
    "digits": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                "horse", "ship", "truck"),
    "stl10": ("airplane", "bird", "car", "cat", "deer", "dog", "horse",
              "monkey", "ship", "truck"),
}


def class_names(name: str, num_classes: int) -> tuple[str, ...]:
  """The names of ``name``'s classes (``"0"``, ``"1"``, ... where unknown)."""
  names = CLASS_NAMES.get(name.split(":")[0])
  if names is None or len(names) != num_classes:
    return tuple(str(i) for i in range(num_classes))
  return names


# Means/stds are over all training pixels (population std), [0, 1] units. The
# Fashion-MNIST and digits values are checked against the data in the tests.
_INFO = {
    "fashion_mnist": DatasetInfo("fashion_mnist", (28, 28, 1), 10, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, (0.1307,), (0.3081,)),
    "digits": DatasetInfo("digits", (8, 8, 1), 10, (0.3052,), (0.3749,)),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10,
                           (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", (32, 32, 3), 100,
                            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": DatasetInfo("stl10", (96, 96, 3), 10,
                         (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagenet2012": DatasetInfo("imagenet2012", (None, None, 3), 1000,
                                (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # Clips of 3 reference frames + a target (ssljax.data.video.load_clips)
    # and 32x32 photo crops (ssljax.data.photos): unlabelled colour data.
    "opencv_videos": DatasetInfo("opencv_videos", (4, 72, 96, 3), 0),
    "opencv_photos": DatasetInfo("opencv_photos", (32, 32, 3), 0),
    # 32x32 crops of opencv-doc's photos and videos and scikit-image's
    # colour images, held out by source (ssljax.data.colour).
    COLOUR_CROPS: DatasetInfo(COLOUR_CROPS, (32, 32, 3), 0),
}


#: The datasets whose facts are known without TFDS.
KNOWN_DATASETS = _INFO


def info(name: str) -> DatasetInfo:
  """Image shape, number of classes and per-channel mean/std of ``name``.

  Known datasets answer from constants; any other name asks TFDS (imported
  lazily) for its image shape and number of classes (mean/std ``None``).
  """
  if name in _INFO:
    return _INFO[name]
  tfds = _import_tfds()
  builder = tfds.builder(name)
  image_key, label_key = _supervised_keys(builder)
  shape = tuple(builder.info.features[image_key].shape)
  num_classes = builder.info.features[label_key].num_classes
  return DatasetInfo(name, shape, int(num_classes))


def channel_stats(dataset: ArrayDataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Exact per-channel mean and (population) std of ``dataset.images`` in [0, 1].

  Computed from 256-bin histograms, so it needs no float copy of the images.
  """
  images = dataset.images
  values = np.arange(256, dtype=np.float64) / 255.0
  means, stds = [], []
  for c in range(images.shape[-1]):
    counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = (counts * values).sum() / total
    var = (counts * (values - mean) ** 2).sum() / total
    means.append(float(mean))
    stds.append(float(math.sqrt(var)))
  return tuple(means), tuple(stds)


# ---------------------------------------------------------------------------
# IDX files.

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Read an IDX file (gzip-compressed or raw) into a numpy array.

  The IDX format (LeCun's MNIST files): two zero bytes, a type code (0x08 =
  uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the
  number of dimensions, then each dimension as a big-endian uint32, then the
  data, big-endian, row-major. Compression is detected from the gzip magic
  bytes, not the file name.

  Raises:
    ValueError: naming the file, if it is not IDX, is corrupt or truncated.
  """
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":
      raw = gzip.decompress(raw)
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise ValueError(f"IDX file {path} is corrupt or truncated: cannot decompress "
                     f"it ({type(e).__name__}: {e}).") from e
  if len(raw) < 4:
    raise ValueError(f"IDX file {path} is truncated: {len(raw)} bytes, no header.")
  if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(
        f"IDX file {path} is corrupt: bad magic number 0x{raw[:4].hex()} "
        "(expected 0x0000TTNN with type TT in 08,09,0B,0C,0D,0E).")
  dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
  header = 4 + 4 * ndim
  if ndim == 0 or len(raw) < header:
    raise ValueError(f"IDX file {path} is truncated or corrupt: header of {ndim} "
                     f"dimensions needs {header} bytes, file has {len(raw)}.")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
  expected = math.prod(shape) * dtype.itemsize
  found = len(raw) - header
  if found != expected:
    what = "truncated" if found < expected else "corrupt (trailing bytes)"
    raise ValueError(f"IDX file {path} is {what}: shape {shape} of {dtype} needs "
                     f"{expected} data bytes, found {found}.")
  data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="), copy=True)


def _find_idx_file(directory: str, stem: str) -> str | None:
  for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz",
               stem.replace("-idx", ".idx")):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def _idx_search_dirs(name: str, data_dir: str | None) -> list[str]:
  dirs = []
  if data_dir:
    dirs += [data_dir, os.path.join(data_dir, name)]
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    dirs += [os.path.join(env, name), env]
  dirs += list(SYSTEM_DIRS.get(name, ()))
  return dirs


def _find_idx_dir(name: str, data_dir: str | None) -> str | None:
  """The first search folder holding all four IDX files of ``name``."""
  for directory in _idx_search_dirs(name, data_dir):
    if all(_find_idx_file(directory, stem) for pair in _IDX_FILES.values()
           for stem in pair):
      return directory
  return None


def _load_idx_split(name: str, directory: str, base: str) -> ArrayDataset:
  images_stem, labels_stem = _IDX_FILES[base]
  images_path = _find_idx_file(directory, images_stem)
  labels_path = _find_idx_file(directory, labels_stem)
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(f"IDX file {images_path}: expected uint8 images [N,H,W], got "
                     f"{images.dtype} {images.shape}.")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f"IDX file {labels_path}: expected {images.shape[0]} labels "
                     f"(as many as images in {images_path}), got shape {labels.shape}.")
  return ArrayDataset(images[..., None], labels.astype(np.int32), 10, f"{name}:{base}")


def _missing_local_message(name: str, data_dir: str | None) -> str:
  looked = _idx_search_dirs(name, data_dir)
  files = ", ".join(f + ".gz" for pair in _IDX_FILES.values() for f in pair)
  package = _IDX_DATASETS.get(name)
  first = (f"install the Debian package {package} (apt-get install {package}), or "
           if package else "")
  target = data_dir or (os.path.join(os.environ[DATA_DIR_ENV], name)
                        if os.environ.get(DATA_DIR_ENV) else
                        f"$SSLJAX_DATA_DIR/{name}")
  return (f"{name}: IDX files not found (looked in {looked}). To fix: {first}put "
          f"the four IDX files ({files}; raw or gzipped) in {target} / set "
          f"{DATA_DIR_ENV}, or allow TFDS downloads (source='tfds').")


# ---------------------------------------------------------------------------
# Splits.

_SPLIT_RE = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:\[\s*([^\]]*)\s*\])?\s*$")


def _parse_bound(text: str, n: int, split: str) -> int | None:
  text = text.strip()
  if not text:
    return None
  try:
    if text.endswith("%"):
      return int(round(float(text[:-1]) * n / 100.0))
    return int(text)
  except ValueError:
    raise ValueError(f"bad split {split!r}: cannot parse slice bound {text!r}") from None


def _parse_split(split: str) -> list[tuple[str, str | None]]:
  """``"train[:10%]+test"`` -> ``[("train", ":10%"), ("test", None)]``."""
  parts = []
  for part in split.split("+"):
    m = _SPLIT_RE.match(part)
    if not m:
      raise ValueError(f"bad split {split!r}: expected NAME or NAME[a:b] "
                       "(e.g. 'train', 'train[:1000]', 'train[50000:]', 'test[:10%]').")
    parts.append((m.group(1), m.group(2)))
  return parts


def _slice(n: int, spec: str | None, split: str) -> slice:
  if spec is None:
    return slice(None)
  if ":" not in spec:
    raise ValueError(f"bad split {split!r}: a slice needs a colon, e.g. "
                     "'train[:1000]' or 'train[10%:20%]'.")
  a, b = spec.split(":", 1)
  return slice(_parse_bound(a, n, split), _parse_bound(b, n, split))


def _select(full: dict[str, ArrayDataset], split: str, name: str,
            available: Sequence[str]) -> ArrayDataset:
  pieces = []
  for base, spec in _parse_split(split):
    if base not in full:
      raise ValueError(f"{name} has no split {base!r}; available: {list(available)}.")
    ds = full[base]
    sl = _slice(len(ds), spec, split)
    pieces.append((ds.images[sl], ds.labels[sl]))
  images = pieces[0][0] if len(pieces) == 1 else np.concatenate([p[0] for p in pieces])
  labels = pieces[0][1] if len(pieces) == 1 else np.concatenate([p[1] for p in pieces])
  num_classes = next(iter(full.values())).num_classes
  return ArrayDataset(np.ascontiguousarray(images), np.ascontiguousarray(labels),
                      num_classes, f"{name}:{split}")


# ---------------------------------------------------------------------------
# load().


def _load_digits_full() -> dict[str, ArrayDataset]:
  try:
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("the digits dataset comes with scikit-learn: "
                      "pip install 'ssljax[eval]'") from e
  digits = load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  k = DIGITS_TRAIN_SIZE
  return {
      "train": ArrayDataset(images[:k], labels[:k], 10, "digits:train"),
      "test": ArrayDataset(images[k:], labels[k:], 10, "digits:test"),
  }


def load(name: str, split: str, *, data_dir: str | None = None,
         source: str = "auto") -> ArrayDataset:
  """Load a whole split into host memory.

  Args:
    name: ``"fashion_mnist"``, ``"mnist"``, ``"digits"`` (scikit-learn's 8x8
      digits: ``"train"`` = the first 1500, ``"test"`` = the other 297),
      ``"opencv_photos"``, ``"opencv_videos"``, ``"colour_crops"`` (splits
      ``"train"``, ``"validation"``, ``"test"``; ``ssljax.data.colour``), or
      any TFDS image-classification name (``"cifar10"``, ``"cifar100"``,
      ``"stl10"``, ...) whose images all have one shape.
    split: TFDS-style split: ``"train"``, ``"test"``, ``"train[:1000]"``,
      ``"train[50000:]"``, ``"train[:10%]"``, ``"train+test"``.
    data_dir: for Fashion-MNIST/MNIST, a folder searched first for the IDX
      files (then ``$SSLJAX_DATA_DIR/<name>``, then the Debian location);
      for TFDS, its ``data_dir``.
    source: ``"auto"`` (local IDX files if found, else TFDS), ``"local"`` or
      ``"tfds"``.

  Raises:
    DatasetNotAvailableError (a FileNotFoundError): the data is not there;
      the message says how to get it.
  """
  if source not in ("auto", "local", "tfds"):
    raise ValueError(f"source must be 'auto', 'local' or 'tfds', got {source!r}.")
  if name == "digits":
    if source == "tfds":
      raise ValueError("'digits' comes from scikit-learn, not TFDS: use source='auto'.")
    return _select(_load_digits_full(), split, name, ("train", "test"))
  if name == OPENCV_VIDEOS_DATASET:
    if source == "tfds":
      raise ValueError(f"{OPENCV_VIDEOS_DATASET!r} are local files (Debian "
                       "opencv-doc), not a TFDS dataset: set "
                       "--config.data_source=auto or local.")
    return load_clips(split, data_dir=data_dir)
  if name == "opencv_photos":
    if source == "tfds":
      raise ValueError("'opencv_photos' are local files (Debian opencv-doc), "
                       "not TFDS: use source='auto'.")
    return load_photos(split, data_dir=data_dir)
  if name == COLOUR_CROPS:
    if source == "tfds":
      raise ValueError(f"{COLOUR_CROPS!r} are local files (Debian opencv-doc "
                       "and scikit-image), not TFDS: use source='auto'.")
    return load_colour_crops(split, data_dir=data_dir)
  if name in _IDX_DATASETS and source != "tfds":
    directory = _find_idx_dir(name, data_dir)
    if directory is not None:
      bases = {base for base, _ in _parse_split(split)}
      unknown = bases - set(_IDX_FILES)
      if unknown:
        raise ValueError(f"{name} has no split {sorted(unknown)[0]!r}; available: "
                         f"{list(_IDX_FILES)}.")
      full = {base: _load_idx_split(name, directory, base) for base in bases}
      return _select(full, split, name, list(_IDX_FILES))
    if source == "local":
      raise DatasetNotAvailableError(_missing_local_message(name, data_dir))
    try:
      return _load_tfds(name, split, data_dir)
    except DatasetNotAvailableError as e:
      raise DatasetNotAvailableError(
          _missing_local_message(name, data_dir) + " TFDS failed too: " + str(e)
      ) from e.__cause__
  if source == "local":
    raise ValueError(f"{name!r} has no local source (local: "
                     f"{sorted(_IDX_DATASETS) + ['digits']}); use source='tfds'.")
  return _load_tfds(name, split, data_dir)


# ---------------------------------------------------------------------------
# TFDS.


#: How to install TFDS (an optional extra: ``import ssljax`` and the training
#: loop do not need it).
TFDS_HINT = ("TFDS datasets need tensorflow-datasets and tensorflow: "
             "pip install 'ssljax[data]'")


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(TFDS_HINT) from e
  return tfds


def _tfds_dir(data_dir: str | None) -> str:
  return data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")


def _tfds_error(name: str, data_dir: str | None, e: BaseException) -> DatasetNotAvailableError:
  first = (str(e).strip().splitlines() or [""])[0][:300]
  return DatasetNotAvailableError(
      f"TFDS dataset {name!r} is not available (looked in data_dir "
      f"{_tfds_dir(data_dir)}; {type(e).__name__}: {first}). To fix: run "
      f"`tfds build {name}` (add --data_dir=... if you use one), or download it on "
      "a machine with internet and copy ~/tensorflow_datasets (or that data_dir) "
      "here.")


def _supervised_keys(builder) -> tuple[str, str]:
  keys = builder.info.supervised_keys
  if keys and isinstance(keys[0], str) and isinstance(keys[1], str):
    return keys[0], keys[1]
  return "image", "label"


def _tfds_builder(tfds, name: str, data_dir: str | None):
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare()
  except Exception as e:  # download error, DatasetNotFoundError, manual download...
    raise _tfds_error(name, data_dir, e) from e
  return builder


def to_uint8_images(images, name: str) -> np.ndarray:
  """``images`` as uint8 ``[0, 255]``, converted exactly or refused.

  * uint8: returned unchanged;
  * bool: ``False`` -> 0, ``True`` -> 255;
  * other integer dtypes: kept as they are when every value lies in
    ``[0, 255]`` (no scaling: a uint16 image of 0..65535 is refused, not
    divided by 257);
  * floating dtypes: values all in ``[0, 1]`` -> ``round(x * 255)``; else
    values all whole numbers in ``[0, 255]`` -> those numbers;
  * anything else (values out of range, fractions above 1, NaN or infinity,
    non-numeric dtypes) raises.

  Args:
    images: An array of any shape (e.g. ``[N, H, W, C]``).
    name: What the images are (e.g. ``"cifar10:train"``), for the message.

  Returns:
    A uint8 array of the same shape.

  Raises:
    ValueError: when the images cannot be converted without wrapping,
      truncating or guessing a scale; the message names the dtype, the range
      of values found and the fix.
  """
  images = np.asarray(images)
  dtype = images.dtype
  if dtype == np.uint8:
    return images
  if dtype == np.bool_:
    return images.astype(np.uint8) * np.uint8(255)
  fix = ("Fix: convert the images to uint8 in [0, 255] before ssljax loads "
         "them (ssljax does not guess the scale of other ranges).")
  if images.size == 0:
    return images.astype(np.uint8)
  if np.issubdtype(dtype, np.integer):
    lo, hi = int(images.min()), int(images.max())
    if lo >= 0 and hi <= 255:
      return images.astype(np.uint8)
    raise ValueError(f"{name}: images of dtype {dtype} hold values in "
                     f"[{lo}, {hi}], outside uint8's [0, 255]. {fix}")
  if np.issubdtype(dtype, np.floating):
    if not np.isfinite(images).all():
      raise ValueError(f"{name}: images of dtype {dtype} hold NaN or infinite "
                       f"values. {fix}")
    lo, hi = float(images.min()), float(images.max())
    if lo >= 0.0 and hi <= 1.0:
      return np.round(images.astype(np.float64) * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0 and (images == np.round(images)).all():
      return images.astype(np.uint8)
    raise ValueError(
        f"{name}: images of dtype {dtype} hold values in [{lo:g}, {hi:g}]: "
        "neither all in [0, 1] (scaled by 255) nor all whole numbers in "
        f"[0, 255]. {fix}")
  raise ValueError(f"{name}: images of dtype {dtype} are not numbers ssljax can "
                   f"read as pixels. {fix}")


def _load_tfds(name: str, split: str, data_dir: str | None) -> ArrayDataset:
  tfds = _import_tfds()
  builder = _tfds_builder(tfds, name, data_dir)
  image_key, label_key = _supervised_keys(builder)
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as e:
    raise _tfds_error(name, data_dir, e) from e
  image_spec = ds.element_spec[image_key]
  if not image_spec.shape.is_fully_defined():
    raise ValueError(f"{name}: images have no fixed shape ({image_spec.shape}); "
                     "stream it with ssljax.data.tfds_batches(..., image_size=...).")
  num_classes = int(builder.info.features[label_key].num_classes)
  # Batch in chunks: batch_size=-1 asks TFDS for one batch of the whole split,
  # which is sys.maxsize when the split size is unknown (as under mock_data).
  ds = ds.map(lambda ex: (ex[image_key], ex[label_key])).batch(8192)
  images, labels = [], []
  for x, y in tfds.as_numpy(ds):
    images.append(x)
    labels.append(y)
  if not images:
    raise ValueError(f"{name}:{split} is empty.")
  images = to_uint8_images(np.concatenate(images), f"{name}:{split}")
  if images.ndim == 3:
    images = images[..., None]
  labels = np.concatenate(labels).astype(np.int32)
  return ArrayDataset(images, labels, num_classes, f"{name}:{split}")


def _center_crop_resize(tf, image, image_size: int, crop_fraction: float,
                        encoded: bool, channels: int):
  """Largest central square (times crop_fraction), resized to image_size."""
  if encoded:
    shape = tf.io.extract_jpeg_shape(image)
  else:
    shape = tf.shape(image)
  h, w = shape[0], shape[1]
  side = tf.cast(tf.cast(tf.minimum(h, w), tf.float32) * crop_fraction, tf.int32)
  side = tf.maximum(side, 1)
  top, left = (h - side) // 2, (w - side) // 2
  if encoded:
    window = tf.stack([top, left, side, side])
    image = tf.io.decode_and_crop_jpeg(image, window, channels=channels)
  else:
    image = image[top:top + side, left:left + side]
  image = tf.image.resize(image, (image_size, image_size), method="bilinear",
                          antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def tfds_batches(name: str, split: str, *, batch_size: int, image_size: int,
                 seed: int, shuffle: bool = True, data_dir: str | None = None,
                 process_index: int | None = None, process_count: int | None = None,
                 epochs: int | None = None, shuffle_buffer: int = 10_000,
                 crop_fraction: float = 1.0) -> Iterator[dict[str, np.ndarray]]:
  """Stream host batches of a (large) TFDS dataset through ``tf.data``.

  Each process reads its own ``1/process_count`` of the split
  (``tfds.split_for_jax_process``), takes the central square of each image
  (side ``crop_fraction * min(H, W)``), resizes it to ``image_size`` (bilinear,
  antialiased; JPEGs are decoded only inside the crop window), shuffles
  (seeded), repeats, and batches with ``drop_remainder=True``. Random
  augmentation happens on device, not here.

  Args:
    batch_size: the GLOBAL batch size; each process yields ``batch_size //
      process_count`` examples per step.
    epochs: passes over the data (``None``: forever).

  Yields:
    ``{"image": uint8 [b, image_size, image_size, C], "label": int32 [b]}``
    (label ``-1`` where the dataset has none).
  """
  import jax  # pylint: disable=import-outside-toplevel
  tfds = _import_tfds()
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(TFDS_HINT) from e
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  local = _local_batch(batch_size, pc, pi)
  if not 0 < crop_fraction <= 1:
    raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}.")

  builder = _tfds_builder(tfds, name, data_dir)
  image_key, label_key = _supervised_keys(builder)
  features = builder.info.features
  image_feature = features[image_key]
  channels = int(image_feature.shape[-1] or 3)
  encoded = getattr(image_feature, "encoding_format", None) == "jpeg"
  has_label = label_key in features
  sub = tfds.split_for_jax_process(split, process_index=pi, process_count=pc,
                                   drop_remainder=True)
  read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=16)
  decoders = {image_key: tfds.decode.SkipDecoding()} if encoded else None
  try:
    ds = builder.as_dataset(split=sub, shuffle_files=shuffle, decoders=decoders,
                            read_config=read_config)
  except Exception as e:
    raise _tfds_error(name, data_dir, e) from e
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options)
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat(epochs)

  def preprocess(ex):
    image = _center_crop_resize(tf, ex[image_key], image_size, crop_fraction,
                                encoded, channels)
    label = tf.cast(ex[label_key], tf.int32) if has_label else tf.constant(-1, tf.int32)
    return {"image": image, "label": label}

  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return _as_numpy_batches(tfds, ds)


def _as_numpy_batches(tfds, ds) -> Iterator[dict[str, np.ndarray]]:
  for batch in tfds.as_numpy(ds):
    yield {"image": batch["image"], "label": batch["label"]}


def _local_batch(batch_size: int, process_count: int, process_index: int) -> int:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} must be in [0, process_count="
                     f"{process_count}).")
  if batch_size % process_count:
    raise ValueError(
        f"global batch size {batch_size} does not divide over {process_count} "
        f"processes: use a multiple of {process_count}.")
  return batch_size // process_count
