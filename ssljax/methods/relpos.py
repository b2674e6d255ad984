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

Config (``config.method = "relpos"``): ``encoder``, ``head`` (without
``out_dim``: 8), ``relpos`` (the fields of :class:`RelativePosition`:
``cell``, ``tile``, ``min_gap``, ``size``, ``normalize``, ``eps``,
``all_neighbors``).
"""

from __future__ import annotations

import dataclasses

import jax

from ssljax.augment import CENTER_CELL, NEIGHBOR_CELLS, relative_position_batch
from ssljax.config import build
from ssljax.methods.base import register
from ssljax.methods.pretext import TilePretextMethod, pretext_model
from ssljax.models import TileClassifier

#: ``TileClassifier.groups`` for all 8 (centre, neighbour) pairs of a lattice.
PAIR_GROUPS = tuple((CENTER_CELL, n) for n in NEIGHBOR_CELLS)

__all__ = ["PAIR_GROUPS", "RelativePosition"]


@register("relpos")
@dataclasses.dataclass(frozen=True)
class RelativePosition(TilePretextMethod):
  """8-way relative position of a neighbour patch.

  Attributes (besides :class:`~ssljax.methods.pretext.TilePretextMethod`'s
  tile geometry ``cell``, ``tile``, ``min_gap``, ``size``, ``normalize``,
  ``eps`` of the 3 x 3 lattice):
    all_neighbors: all 8 pairs of each image (the model must be a
      ``TileClassifier(..., groups=PAIR_GROUPS)``) or one random pair
      (``groups=None``).
  """
  all_neighbors: bool = True

  metric_name = "relpos_acc"
  num_classes = 8

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Sections ``encoder``, ``head`` and ``relpos``."""
    section = config.get("relpos")
    all_neighbors = (section.get("all_neighbors", True)
                     if section is not None else True)
    model = pretext_model(config, num_classes=cls.num_classes,
                          what="neighbour positions",
                          groups=PAIR_GROUPS if all_neighbors else None)
    return build(cls, section, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std,
                 image_shape=tuple(data.input_shape))

  def task_rules(self) -> tuple:
    want = PAIR_GROUPS if self.all_neighbors else None
    groups = getattr(self.model, "groups", None)
    return (("all_neighbors", not isinstance(self.model, TileClassifier)
             or groups == want,
             f"the TileClassifier needs groups={want} for it; got {groups}"),)

  def task(self, images: jax.Array, key: jax.Array):
    """``(tiles [B, 9, t, t, C], labels [B, 8])`` with all neighbours, else
    ``(pairs [B, 2, t, t, C], labels [B])``."""
    tiles, labels = relative_position_batch(
        key, images, cell=self.cell, tile=self.tile, size=self.size,
        normalize=self.normalize, eps=self.eps,
        all_neighbors=self.all_neighbors, min_gap=self.min_gap)
    return self.tiles_for_encoder(tiles), labels
