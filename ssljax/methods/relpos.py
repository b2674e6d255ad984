"""Relative patch position (Doersch et al. 2015, "Unsupervised visual
representation learning by context prediction").

A jittered ``3 x 3`` lattice of tiles with gaps is cut from each image; the
network sees the centre tile and one neighbour through a shared-weight encoder,
concatenates the two feature vectors and classifies the neighbour's position
(8 ways, labels in :data:`ssljax.augment.NEIGHBOR_CELLS` order: top-left, top,
top-right, left, right, bottom-left, bottom, bottom-right). Metric
``relpos_acc``.

With ``all_neighbors=True`` (default) each image contributes all 8 pairs of
its lattice (the 9 tiles are encoded once, the head classifies 8 feature
pairs); ``False`` samples one pair per image, as in the paper.
"""

from __future__ import annotations

import dataclasses

import jax

from ssljax.augment import CENTER_CELL, NEIGHBOR_CELLS, relative_position_batch
from ssljax.methods.pretext import PretextMethod, PretextState, TileClassifier
from ssljax.methods.simclr import normalize_images

RelativePositionState = PretextState

#: ``TileClassifier.groups`` for all 8 (centre, neighbour) pairs of a lattice.
PAIR_GROUPS = tuple((CENTER_CELL, n) for n in NEIGHBOR_CELLS)

__all__ = ["PAIR_GROUPS", "RelativePosition", "RelativePositionState",
           "TileClassifier"]


@dataclasses.dataclass(frozen=True)
class RelativePosition(PretextMethod):
  """8-way relative position of a neighbour patch.

  Attributes (besides :class:`~ssljax.methods.pretext.PretextMethod`'s):
    cell, tile, size: tile geometry of the 3 x 3 lattice (see
      :mod:`ssljax.augment.pretext`).
    normalize: normalize every tile on its own (and, at evaluation, every
      whole image); False uses the dataset ``mean`` / ``std``.
    eps: variance floor of that normalization.
    all_neighbors: all 8 pairs of each image (the model must be a
      ``TileClassifier(..., groups=PAIR_GROUPS)``) or one random pair
      (``groups=None``).
  """
  cell: int = 9
  tile: int = 7
  size: int | None = None
  normalize: bool = True
  eps: float = 1e-3
  all_neighbors: bool = True

  metric_name = "relpos_acc"
  num_classes = 8

  def __post_init__(self):
    groups = getattr(self.model, "groups", None)
    want = PAIR_GROUPS if self.all_neighbors else None
    if isinstance(self.model, TileClassifier) and groups != want:
      raise ValueError(f"with all_neighbors={self.all_neighbors} the "
                       f"TileClassifier needs groups={want}; got {groups}.")

  @property
  def per_image_norm(self) -> bool:
    return self.normalize

  def task(self, images: jax.Array, key: jax.Array):
    """``(tiles [B, 9, t, t, C], labels [B, 8])`` with all neighbours, else
    ``(pairs [B, 2, t, t, C], labels [B])``."""
    tiles, labels = relative_position_batch(
        key, images, cell=self.cell, tile=self.tile, size=self.size,
        normalize=self.normalize, eps=self.eps,
        all_neighbors=self.all_neighbors)
    if not self.normalize:
      tiles = normalize_images(tiles, self.mean, self.std)
    return tiles, labels
