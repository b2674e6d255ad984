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

import numpy as np

__all__ = ["ArrayDataset", "DatasetNotAvailableError"]


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


def _describe(x) -> str:
  if isinstance(x, np.ndarray):
    return f"{x.dtype} array of shape {x.shape}"
  return f"{type(x).__name__}"
