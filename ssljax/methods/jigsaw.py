"""Jigsaw puzzles (Noroozi & Favaro 2016, "Unsupervised learning of visual
representations by solving jigsaw puzzles").

A ``grid x grid`` lattice of tiles with random gaps and jitter
(:func:`ssljax.augment.random_jigsaw`), each tile normalized on its own, is
shuffled by one permutation of a fixed set chosen for maximal Hamming distance
(:func:`permutation_set`); a shared-weight tile encoder embeds every tile, the
features are concatenated in puzzle order and a classifier predicts the
permutation's index. Metric ``jigsaw_acc``.

    perms = permutation_set(100)                       # [100, 9]
    model = TileClassifier(encoder, ProjectionMLP(out_dim=100, hidden_dim=512))
    method = Jigsaw(model=model, tx=..., permutations=perms, cell=9, tile=7)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment import jigsaw_batch
from ssljax.methods.pretext import PretextMethod, PretextState, TileClassifier
from ssljax.methods.simclr import normalize_images

JigsawState = PretextState

__all__ = ["Jigsaw", "JigsawState", "TileClassifier", "hamming_distances",
           "permutation_set"]

#: Largest number of tiles whose permutations are enumerated (10! = 3.6M).
MAX_TILES = 10


def hamming_distances(a, b) -> np.ndarray:
  """Pairwise Hamming distances ``[P, Q]`` between permutations ``a [P, n]``
  and ``b [Q, n]`` (the number of positions where they differ)."""
  a, b = np.asarray(a), np.asarray(b)
  return (a[:, None, :] != b[None, :, :]).sum(-1)


@functools.lru_cache(maxsize=8)
def _permutation_set(num: int, n: int, seed: int) -> np.ndarray:
  # All n! permutations in lexicographic order (itertools' order), stored
  # position-major so a distance update is n vectorized comparisons.
  cands = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
  cands_t = np.ascontiguousarray(cands.T)                   # [n, n!]
  total = len(cands)
  # Tie-breaks: a seeded random priority over the candidates.
  priority = np.random.default_rng(seed).permutation(total).astype(np.int64)
  min_d = np.full(total, n + 1, np.uint8)       # distance to the chosen set
  sum_d = np.zeros(total, np.int64)
  chosen = np.empty(num, np.int64)
  d = np.empty(total, np.uint8)
  for i in range(num):
    # Lexicographic argmax of (min distance, summed distance, priority);
    # chosen candidates have min_d = 0 and are never chosen again.
    best = np.flatnonzero(min_d == min_d.max())
    j = int(best[np.argmax((sum_d[best] << 20) | priority[best])])
    chosen[i] = j
    d.fill(0)
    for k in range(n):
      d += cands_t[k] != cands[j, k]
    np.minimum(min_d, d, out=min_d)
    sum_d += d
  out = cands[chosen].astype(np.int32)
  out.setflags(write=False)
  return out


def permutation_set(num_permutations: int = 100, *, grid: int = 3,
                    seed: int = 0) -> np.ndarray:
  """``num_permutations`` distinct permutations of ``grid * grid`` tiles,
  chosen greedily for maximal Hamming distance.

  Greedy farthest-point selection over all ``(grid*grid)!`` permutations:
  each new permutation maximizes its *minimum* Hamming distance to those
  already chosen, ties broken by the largest summed distance to them (the
  criterion of Noroozi & Favaro's Algorithm 1), then by a random priority
  drawn from ``seed``; the first one is the highest-priority permutation.
  The same arguments always give the same set.

  Reference: Noroozi & Favaro 2016, sec. 3.2 and Algorithm 1 (100 or 1000
  of the 9! permutations of a 3 x 3 puzzle).

  Args:
    num_permutations: ``P``, at most ``(grid*grid)!``.
    grid: puzzle side (``grid * grid`` tiles, at most 10 tiles enumerable).
    seed: tie-break seed.

  Returns:
    int32 numpy array ``[P, grid * grid]``; row ``p`` is the permutation of
    class ``p`` (puzzle position ``j`` shows tile ``row[j]``).
  """
  n = grid * grid
  if grid < 1 or n > MAX_TILES:
    raise ValueError(f"grid must give 1..{MAX_TILES} tiles; got grid={grid} "
                     f"({n} tiles).")
  total = math.factorial(n)
  if not 1 <= num_permutations <= total:
    raise ValueError(f"num_permutations must lie in [1, {n}! = {total}]; got "
                     f"{num_permutations}.")
  return np.array(_permutation_set(int(num_permutations), n, int(seed)))


@dataclasses.dataclass(frozen=True)
class Jigsaw(PretextMethod):
  """Jigsaw puzzle classification over a fixed permutation set.

  Attributes (besides :class:`~ssljax.methods.pretext.PretextMethod`'s):
    permutations: ``[P, grid * grid]`` (from :func:`permutation_set`); the
      model's head must output ``P`` logits.
    grid, cell, tile, size: tile geometry (see
      :mod:`ssljax.augment.pretext`): a ``grid x grid`` lattice of ``cell``
      pixel cells, one ``tile x tile`` tile at a random place in each, after
      resizing the image to ``size`` (None: keep).
    normalize: normalize every tile on its own (and, at evaluation, every
      whole image); False uses the dataset ``mean`` / ``std``.
    eps: variance floor of that normalization.
  """
  permutations: Sequence[Sequence[int]] = ()
  grid: int = 3
  cell: int = 9
  tile: int = 7
  size: int | None = None
  normalize: bool = True
  eps: float = 1e-3

  metric_name = "jigsaw_acc"

  def __post_init__(self):
    perms = np.asarray(self.permutations)
    n = self.grid * self.grid
    if perms.ndim != 2 or perms.shape[1] != n or len(perms) == 0:
      raise ValueError(f"permutations must be [P, grid*grid={n}]; got shape "
                       f"{perms.shape}.")
    if not (np.sort(perms, axis=1) == np.arange(n)).all():
      raise ValueError("every row of permutations must be a permutation of "
                       f"0..{n - 1}.")
    # Store as nested tuples: hashable and immutable.
    object.__setattr__(self, "permutations",
                       tuple(tuple(int(v) for v in p) for p in perms))

  @property
  def num_classes(self) -> int:
    return len(self.permutations)

  @property
  def per_image_norm(self) -> bool:
    return self.normalize

  def task(self, images: jax.Array, key: jax.Array):
    """``(shuffled tiles [B, grid*grid, tile, tile, C], labels [B])``."""
    tiles, labels = jigsaw_batch(
        key, images, jnp.asarray(self.permutations, jnp.int32), grid=self.grid,
        cell=self.cell, tile=self.tile, size=self.size,
        normalize=self.normalize, eps=self.eps)
    if not self.normalize:
      tiles = normalize_images(tiles, self.mean, self.std)
    return tiles, labels
