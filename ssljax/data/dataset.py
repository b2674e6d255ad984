"""The in-memory dataset type and the error every source raises.

:class:`ArrayDataset` (uint8 images, int32 labels, held in host memory) and
:class:`DatasetNotAvailableError` are what every loader of :mod:`ssljax.data`
returns or raises (:mod:`~ssljax.data.sources`, :mod:`~ssljax.data.photos`,
:mod:`~ssljax.data.video`, the pipeline); they live here, below all of them,
so that the loaders import one module and not each other. Both are
re-exported from :mod:`ssljax.data`.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

__all__ = ["ArrayDataset", "DatasetNotAvailableError", "fingerprint"]


class DatasetNotAvailableError(FileNotFoundError):
  """A dataset is neither on disk nor obtainable; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """An in-memory labelled image dataset.

  Attributes:
    images: uint8 ``[N, H, W, C]`` (``C=1`` for grayscale).
    labels: int32 ``[N]`` in ``[0, num_classes)``; ``-1`` marks an unlabelled
      example (STL-10 ``unlabelled``).
    num_classes: number of classes.
    name: dataset name (with the split, e.g. ``"fashion_mnist:train[:1000]"``).
  """

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  name: str = ""

  def __post_init__(self):
    images, labels = self.images, self.labels
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(
          "ArrayDataset.images must be a uint8 numpy array [N, H, W, C], got "
          f"{_describe(images)}.")
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int32 or labels.ndim != 1:
      raise ValueError(
          "ArrayDataset.labels must be an int32 numpy array [N], got "
          f"{_describe(labels)}.")
    if images.shape[0] != labels.shape[0]:
      raise ValueError(
          f"ArrayDataset: images {images.shape} and labels {labels.shape} "
          "disagree on N (the leading axis).")
    if int(self.num_classes) < 1:
      raise ValueError(f"ArrayDataset.num_classes must be >= 1, got {self.num_classes}.")
    if labels.size and (labels.min() < -1 or labels.max() >= self.num_classes):
      raise ValueError(
          f"ArrayDataset.labels must lie in [0, {self.num_classes}) (or -1 for "
          f"unlabelled), got range [{labels.min()}, {labels.max()}].")

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])


def fingerprint(dataset) -> dict | None:
  """What identifies a dataset's content: example count, the shape and dtype
  of its arrays and one SHA-256 over their bytes (images, then labels).

  Checkpoints record it, so that a run resumes only on the data it started
  with (the same name and size with other images, e.g. another ``data_dir``,
  is caught). One pass over the arrays in memory (about 0.1 s for
  Fashion-MNIST's 47 MB). Any dataset with ``images``/``labels`` numpy arrays
  works; ``None`` for one without (nothing to compare).
  """
  arrays = [(n, getattr(dataset, n, None)) for n in ("images", "labels")]
  arrays = [(n, a) for n, a in arrays if isinstance(a, np.ndarray)]
  if not arrays:
    return None
  digest = hashlib.sha256()
  out = {"num_examples": int(len(dataset))}
  for name, a in arrays:
    out[f"{name}_shape"] = list(a.shape)
    out[f"{name}_dtype"] = str(a.dtype)
    digest.update(f"{name}{a.shape}{a.dtype}".encode())
    digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))
  out["sha256"] = digest.hexdigest()
  return out


def _describe(x) -> str:
  if isinstance(x, np.ndarray):
    return f"{x.dtype} array of shape {x.shape}"
  return f"{type(x).__name__}"
