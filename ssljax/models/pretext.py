"""The network of the classification pretext tasks (rotation, jigsaw, relative
patch position): a shared-weight encoder over tiles and a classifier over
their concatenated features."""

from __future__ import annotations

import flax.linen as nn
import numpy as np

__all__ = ["TileClassifier"]


class TileClassifier(nn.Module):
  """A shared-weight encoder over the tiles of each example and a classifier
  over their concatenated features.

  ``tiles [B, T, h, w, C]`` -> encoder on all ``B * T`` tiles (one batch, so
  BatchNorm statistics span every tile) -> features ``[B, T, F]`` ->

  * ``groups=None``: ``head(concat over T) -> [B, K]`` (jigsaw: T = 9;
    rotation: T = 1; one relative-position pair: T = 2);
  * ``groups`` a static tuple of ``G`` index tuples of length ``m``:
    ``head(concat of f[:, group]) `` for each group -> ``[B, G, K]`` (all 8
    relative-position pairs of one lattice: groups ``((4, 0), (4, 1), ...)``).

  ``encode(x)`` is the encoder alone, for evaluation.
  """
  encoder: nn.Module
  head: nn.Module
  groups: tuple[tuple[int, ...], ...] | None = None

  def __call__(self, tiles, train: bool = True):
    if tiles.ndim != 5:
      raise ValueError(f"TileClassifier expects tiles [B, T, h, w, C]; got "
                       f"shape {tiles.shape}.")
    b, t = tiles.shape[:2]
    f = self.encoder(tiles.reshape(b * t, *tiles.shape[2:]), train=train)
    f = f.reshape(b, t, f.shape[-1])
    if self.groups is None:
      return self.head(f.reshape(b, -1), train=train)
    idx = np.asarray(self.groups, np.int32)                    # [G, m]
    if idx.ndim != 2 or idx.min() < 0 or idx.max() >= t:
      raise ValueError(f"groups must be G tuples of equal length with indices "
                       f"below T={t}; got {self.groups}.")
    g = f[:, idx]                                              # [B, G, m, F]
    logits = self.head(g.reshape(b * idx.shape[0], -1), train=train)
    return logits.reshape(b, idx.shape[0], logits.shape[-1])

  def encode(self, x, train: bool = False):
    return self.encoder(x, train=train)
