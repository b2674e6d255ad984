"""Jigsaw puzzles (Noroozi & Favaro 2016, "Unsupervised learning of visual
representations by solving jigsaw puzzles").

A ``grid x grid`` lattice of tiles with random gaps and jitter
(:func:`ssljax.augment.random_jigsaw`), each tile normalized on its own, is
shuffled by one permutation of a fixed set chosen greedily for large Hamming
distance (:func:`permutation_set`: ``selection="max_min"``, the default,
maximizes the minimum distance to the chosen set; ``"max_avg"`` is Noroozi &
Favaro's Algorithm 1, the average distance); a shared-weight tile encoder
embeds every tile, the features are concatenated in puzzle order and a
classifier predicts the permutation's index. Metric ``jigsaw_acc``.

    model = TileClassifier(encoder, ProjectionMLP(out_dim=100, hidden_dim=512))
    method = Jigsaw(model=model, tx=..., num_permutations=100, cell=9, tile=7)
    # the set: method.permutations == permutation_set(100, grid=3, seed=0,
    #                                                 selection="max_min")

Config (``config.method = "jigsaw"``): ``encoder``, ``head`` (without
``out_dim``: ``num_permutations``), ``jigsaw`` (the fields of
:class:`Jigsaw`: ``num_permutations``, ``permutation_seed``, ``selection``,
``grid``, ``cell``, ``tile``, ``min_gap``, ``size``, ``normalize``, ``eps``).
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
from ssljax.config import build
from ssljax.methods.base import register
from ssljax.methods.pretext import TilePretextMethod, pretext_model

__all__ = ["SELECTIONS", "Jigsaw", "hamming_distances", "permutation_set"]

#: Largest number of tiles whose permutations are enumerated (10! = 3.6M).
MAX_TILES = 10


def hamming_distances(a, b) -> np.ndarray:
  """Pairwise Hamming distances ``[P, Q]`` between permutations ``a [P, n]``
  and ``b [Q, n]`` (the number of positions where they differ)."""
  a, b = np.asarray(a), np.asarray(b)
  return (a[:, None, :] != b[None, :, :]).sum(-1)


#: ``permutation_set``'s greedy criteria (``Jigsaw.selection``).
SELECTIONS = ("max_min", "max_avg")


@functools.lru_cache(maxsize=8)
def _permutation_set(num: int, n: int, seed: int,
                     selection: str = "max_min") -> np.ndarray:
  # All n! permutations in lexicographic order (itertools' order), stored
  # position-major so a distance update is n vectorized comparisons.
  cands = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
  cands_t = np.ascontiguousarray(cands.T)                   # [n, n!]
  total = len(cands)
  # The first permutation: the highest of a seeded random priority over the
  # candidates (uniform over all n!); "max_min" also breaks its ties by it.
  priority = np.random.default_rng(seed).permutation(total).astype(np.int64)
  min_d = np.full(total, n + 1, np.uint8)       # distance to the chosen set
  sum_d = np.zeros(total, np.int64)
  taken = np.zeros(total, bool)
  chosen = np.empty(num, np.int64)
  d = np.empty(total, np.uint8)
  for i in range(num):
    if i == 0:
      j = int(np.argmax(priority))
    elif selection == "max_min":
      # Lexicographic argmax of (min distance, summed distance, priority);
      # chosen candidates have min_d = 0 and are never chosen again.
      best = np.flatnonzero(min_d == min_d.max())
      j = int(best[np.argmax((sum_d[best] << 20) | priority[best])])
    else:
      # Noroozi & Favaro's Algorithm 1: argmax of the summed distance over
      # the candidates not chosen yet; ties to the first in lexicographic
      # order (argmax's first maximum).
      j = int(np.argmax(np.where(taken, -1, sum_d)))
    chosen[i] = j
    taken[j] = True
    d.fill(0)
    for k in range(n):
      d += cands_t[k] != cands[j, k]
    np.minimum(min_d, d, out=min_d)
    sum_d += d
  out = cands[chosen].astype(np.int32)
  out.setflags(write=False)
  return out


def permutation_set(num_permutations: int = 100, *, grid: int = 3,
                    seed: int = 0, selection: str = "max_min") -> np.ndarray:
  """``num_permutations`` distinct permutations of ``grid * grid`` tiles,
  chosen greedily for large Hamming distance.

  Greedy selection over all ``(grid*grid)!`` permutations, one at a time.
  The first one is drawn from ``seed`` (the highest of a random priority
  ``np.random.default_rng(seed).permutation((grid*grid)!)`` over the
  candidates in lexicographic order, i.e. uniform). Each next one is, among
  the candidates not chosen yet:

  * ``selection="max_min"`` (the default; every shipped result used it):
    farthest-point selection. The candidate with the largest *minimum*
    Hamming distance to those already chosen, ties broken by the largest
    summed distance to them, then by the random priority. This is **not**
    Noroozi & Favaro's Algorithm 1; it gives sets with a larger minimum
    pairwise distance (100 of 9!: at least 6).
  * ``selection="max_avg"``: Noroozi & Favaro's Algorithm 1. The candidate
    with the largest *average* (equivalently summed) Hamming distance to
    those already chosen; ties go to the first candidate in lexicographic
    order (``itertools.permutations`` order with the chosen ones removed: the
    first maximum an argmax returns, as in the paper's line ``j <- argmax_k
    D_k`` and in the selection script of the widely used re-implementation
    bbrattoli/JigsawPuzzlePytorch). Only the first
    permutation depends on ``seed``.

  Each set is a prefix of the larger sets with the same arguments, and the
  same arguments always give the same set.

  Reference: Noroozi & Favaro 2016, sec. 3.2 and Algorithm 1 (appendix; 100
  or 1000 of the 9! permutations of a 3 x 3 puzzle).

  Args:
    num_permutations: ``P``, at most ``(grid*grid)!``.
    grid: puzzle side (``grid * grid`` tiles, at most 10 tiles enumerable).
    seed: the first permutation (and ``"max_min"``'s tie-breaks).
    selection: ``"max_min"`` or ``"max_avg"`` (Algorithm 1), see above.

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
  if selection not in SELECTIONS:
    raise ValueError(f"selection must be one of {SELECTIONS}; got "
                     f"{selection!r}.")
  return np.array(_permutation_set(int(num_permutations), n, int(seed),
                                   selection))


#: ``Jigsaw.num_permutations``'s default (the paper's smaller set).
_DEFAULT_PERMUTATIONS = 100


@register("jigsaw")
@dataclasses.dataclass(frozen=True)
class Jigsaw(TilePretextMethod):
  """Jigsaw puzzle classification over a fixed permutation set.

  Attributes (besides :class:`~ssljax.methods.pretext.TilePretextMethod`'s
  tile geometry ``cell``, ``tile``, ``min_gap``, ``size``, ``normalize``,
  ``eps``):
    num_permutations, permutation_seed, selection: the set,
      ``permutation_set(num_permutations, grid=grid, seed=permutation_seed,
      selection=selection)`` (the paper: 100 or 1000); the model's head
      outputs that many logits. ``selection``: ``"max_min"`` (default, the
      set every shipped result used: greedy maximal *minimum* Hamming
      distance to the chosen set) or ``"max_avg"`` (Noroozi & Favaro's
      Algorithm 1: greedy maximal *average* distance); config key
      ``jigsaw.selection``. Ignored with explicit ``permutations``.
    grid: the puzzle is ``grid x grid`` tiles.
    permutations: an explicit set ``[P, grid * grid]`` instead (then
      ``num_permutations = P``); stored as nested tuples.
  """
  num_permutations: int = _DEFAULT_PERMUTATIONS
  permutation_seed: int = 0
  selection: str = "max_min"
  grid: int = 3
  permutations: Sequence[Sequence[int]] | None = None

  metric_name = "jigsaw_acc"

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Sections ``encoder``, ``head`` and ``jigsaw``."""
    section = config.get("jigsaw")
    num = (section.get("num_permutations", _DEFAULT_PERMUTATIONS)
           if section is not None else _DEFAULT_PERMUTATIONS)
    model = pretext_model(config, num_classes=num, what="permutations "
                          "(jigsaw.num_permutations sets it)")
    return build(cls, section, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std,
                 image_shape=tuple(data.input_shape))

  @property
  def lattice(self) -> int:
    return self.grid if self._grid_ok() else 3

  def _grid_ok(self) -> bool:
    return (isinstance(self.grid, int) and self.grid >= 1
            and self.grid * self.grid <= MAX_TILES)

  def task_rules(self) -> tuple:
    n = self.lattice ** 2
    total = math.factorial(n)
    rules = [("grid", self._grid_ok(), f"the puzzle side: grid * grid tiles "
              f"must lie in [1, {MAX_TILES}] (the paper: 3)"),
             ("selection", lambda s: s in SELECTIONS, "how the permutation "
              "set is chosen: 'max_min' (greedy maximal minimum Hamming "
              "distance, the default) or 'max_avg' (Noroozi & Favaro's "
              "Algorithm 1, greedy maximal average distance)")]
    if self.permutations is None:
      rules.append(("num_permutations", lambda p: not self._grid_ok() or (
          isinstance(p, int) and 1 <= p <= total),
                    f"must lie in [1, {n}! = {total}] (the paper: 100 or "
                    "1000)"))
    else:
      rules.append(("permutations", lambda p: _is_permutation_set(p, n),
                    f"must be a non-empty [P, grid*grid={n}] array whose "
                    f"every row is a permutation of 0..{n - 1}"))
    return tuple(rules)

  def __post_init__(self):
    super().__post_init__()
    perms = (permutation_set(self.num_permutations, grid=self.grid,
                             seed=self.permutation_seed,
                             selection=self.selection)
             if self.permutations is None else np.asarray(self.permutations))
    # Nested tuples: hashable and immutable.
    object.__setattr__(self, "permutations",
                       tuple(tuple(int(v) for v in p) for p in perms))
    object.__setattr__(self, "num_permutations", len(perms))

  @property
  def num_classes(self) -> int:
    return self.num_permutations

  def task(self, images: jax.Array, key: jax.Array):
    """``(shuffled tiles [B, grid*grid, tile, tile, C], labels [B])``."""
    tiles, labels = jigsaw_batch(
        key, images, jnp.asarray(self.permutations, jnp.int32), grid=self.grid,
        cell=self.cell, tile=self.tile, size=self.size,
        normalize=self.normalize, eps=self.eps, min_gap=self.min_gap)
    return self.tiles_for_encoder(tiles), labels


def _is_permutation_set(perms, n: int) -> bool:
  perms = np.asarray(perms)
  return (perms.ndim == 2 and perms.shape[1] == n and len(perms) > 0
          and bool((np.sort(perms, axis=1) == np.arange(n)).all()))

