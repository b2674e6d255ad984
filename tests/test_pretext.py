"""Pretext tasks: rotation, jigsaw, relative patch position (ops and steps)."""

import itertools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import load_module, require_devices, tiny_config, tiny_dataset
from ssljax import augment
from ssljax.config import ConfigError
from ssljax.losses import classification_metrics
from ssljax.methods import (Jigsaw, RelativePosition, Rotation, TrainState,
                            get_method)
from ssljax.methods.jigsaw import hamming_distances, permutation_set
from ssljax.augment.pretext import tile_gaps
from ssljax.methods.relpos import PAIR_GROUPS
from ssljax.models import ProjectionMLP, SmallResNet, TileClassifier
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import build_method
from ssljax.train.validate import config_problems, validate_config

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments",
                          "configs")

# ----------------------------------------------------------------------------
# rotations
# ----------------------------------------------------------------------------


def test_rotations_match_np_rot90_under_jit():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (3, 5, 5, 2)).astype(np.uint8)
  rotated, labels = jax.jit(augment.rotations)(images)
  assert rotated.shape == (12, 5, 5, 2) and rotated.dtype == jnp.uint8
  assert labels.dtype == jnp.int32
  for i in range(3):
    for k in range(4):
      np.testing.assert_array_equal(rotated[4 * i + k], np.rot90(images[i], k))
      assert int(labels[4 * i + k]) == k
  # 90 degrees counter-clockwise by hand: the top row becomes the left column,
  # read bottom to top.
  img = np.arange(4).reshape(1, 2, 2, 1)          # [[0, 1], [2, 3]]
  r, _ = augment.rotations(img)
  np.testing.assert_array_equal(r[1, ..., 0], [[1, 3], [0, 2]])
  np.testing.assert_array_equal(r[2, ..., 0], [[3, 2], [1, 0]])


def test_rotations_reject_non_square_and_unbatched():
  with pytest.raises(ValueError, match="square"):
    augment.rotations(np.zeros((2, 4, 5, 1)))
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    augment.rotations(np.zeros((4, 4, 1)))


# ----------------------------------------------------------------------------
# permutation set
# ----------------------------------------------------------------------------


def _reference_greedy(num, n, seed):
  """Plain-Python max-min greedy with the documented tie-breaks: largest
  minimum distance to the chosen set, then largest summed distance, then
  the highest priority ``default_rng(seed).permutation(n!)``."""
  cands = list(itertools.permutations(range(n)))
  priority = list(np.random.default_rng(seed).permutation(len(cands)))
  chosen = []
  for _ in range(num):
    best, best_key = None, None
    for c, cand in enumerate(cands):
      if c in chosen:
        continue
      ds = [sum(a != b for a, b in zip(cand, cands[j])) for j in chosen]
      key = (min(ds) if ds else n + 1, sum(ds), priority[c])
      if best_key is None or key > best_key:
        best, best_key = c, key
    chosen.append(best)
  return np.array([cands[c] for c in chosen])


@pytest.mark.parametrize("num,seed", [(1, 0), (6, 0), (6, 3), (24, 1)])
def test_permutation_set_matches_plain_python_greedy_on_2x2(num, seed):
  got = permutation_set(num, grid=2, seed=seed)
  np.testing.assert_array_equal(got, _reference_greedy(num, 4, seed))


def test_permutation_set_3x3_size_distinct_and_greedy_max_min_distance():
  perms = permutation_set(100)
  assert perms.shape == (100, 9) and perms.dtype == np.int32
  assert (np.sort(perms, axis=1) == np.arange(9)).all()
  assert len({tuple(p) for p in perms}) == 100
  # Minimum pairwise Hamming distance, brute force.
  pair = np.array([[sum(a != b for a, b in zip(p, q)) for q in perms]
                   for p in perms])
  np.testing.assert_array_equal(pair, hamming_distances(perms, perms))
  off = pair[~np.eye(100, dtype=bool)]
  assert off.min() >= 6, off.min()   # Noroozi & Favaro's sets: 2-3
  # Greedy property against all 9! candidates: each chosen permutation's
  # distance to its predecessors is the largest any candidate achieves.
  cands = np.array(list(itertools.permutations(range(9))), np.int8)
  min_d = np.full(len(cands), 10)
  for i in range(30):
    d_i = pair[i, :i].min() if i else 10
    assert d_i == min_d.max(), i
    min_d = np.minimum(min_d, (cands != perms[i]).sum(1))


def test_permutation_set_is_reproducible_and_seeded():
  a = permutation_set(20, seed=0)
  np.testing.assert_array_equal(a, permutation_set(20, seed=0))
  assert not np.array_equal(a, permutation_set(20, seed=1))
  # a prefix of a bigger set (greedy), and the cached array is not shared
  np.testing.assert_array_equal(permutation_set(10, seed=0), a[:10])
  a[0, 0] = 99
  assert permutation_set(20, seed=0)[0, 0] != 99


def _reference_algorithm1(num, n, seed):
  """Noroozi & Favaro's Algorithm 1 as the paper states it, in plain Python:
  P-bar = all n! permutations (lexicographic), j = a random start (the
  highest of ``default_rng(seed).permutation(n!)``, as documented); repeat:
  move P-bar[j] into P, D-bar_k = sum over P of Hamming(P_i, P-bar_k),
  j = argmax_k D-bar_k (the first maximum)."""
  p_bar = list(itertools.permutations(range(n)))
  priority = list(np.random.default_rng(seed).permutation(len(p_bar)))
  j = priority.index(max(priority))
  chosen = []
  for _ in range(num):
    chosen.append(p_bar.pop(j))
    d_bar = [sum(sum(a != b for a, b in zip(p, cand)) for p in chosen)
             for cand in p_bar]
    j = 0
    for k in range(len(d_bar)):
      if d_bar[k] > d_bar[j]:
        j = k
  return np.array(chosen)


@pytest.mark.parametrize("num,seed", [(1, 0), (6, 0), (6, 3), (24, 1)])
def test_algorithm1_matches_the_papers_description_on_2x2(num, seed):
  got = permutation_set(num, grid=2, seed=seed, selection="max_avg")
  np.testing.assert_array_equal(got, _reference_algorithm1(num, 4, seed))
  # Both criteria start from the same seeded permutation.
  np.testing.assert_array_equal(got[0], permutation_set(1, grid=2, seed=seed)[0])


def test_algorithm1_3x3_is_greedy_in_the_summed_distance():
  """Against all 9! candidates: each chosen permutation has the largest
  summed Hamming distance to its predecessors of all the candidates not
  chosen yet, and is the first such in lexicographic order."""
  perms = permutation_set(100, selection="max_avg")
  assert perms.shape == (100, 9) and perms.dtype == np.int32
  assert (np.sort(perms, axis=1) == np.arange(9)).all()
  assert len({tuple(p) for p in perms}) == 100
  cands = np.array(list(itertools.permutations(range(9))), np.int8)
  index = {tuple(c): i for i, c in enumerate(cands.tolist())}
  sum_d = np.zeros(len(cands), np.int64)
  taken = np.zeros(len(cands), bool)
  for i in range(25):
    j = index[tuple(perms[i])]
    assert not taken[j]
    if i:
      free = np.where(taken, -1, sum_d)
      assert sum_d[j] == free.max(), i
      assert j == np.flatnonzero(free == free.max())[0], i
    taken[j] = True
    sum_d += (cands != perms[i]).sum(1)


@pytest.mark.parametrize("selection", ["max_min", "max_avg"])
def test_permutation_set_properties_per_selection(selection):
  a = permutation_set(30, seed=2, selection=selection)
  assert a.shape == (30, 9) and len({tuple(p) for p in a}) == 30
  np.testing.assert_array_equal(
      a, permutation_set(30, seed=2, selection=selection))
  assert not np.array_equal(a, permutation_set(30, seed=5,
                                               selection=selection))
  np.testing.assert_array_equal(
      permutation_set(12, seed=2, selection=selection), a[:12])
  full = permutation_set(24, grid=2, selection=selection)    # all 4! of them
  assert len({tuple(p) for p in full}) == 24


def test_max_min_versus_algorithm1_on_3x3_100():
  """"max_min" has the larger minimum pairwise distance (6 vs 2). The mean
  pairwise distance is the same for both: both reach its upper bound, every
  position showing every tile 11 or 12 times in the 100 rows."""
  stats = {}
  for selection in ("max_min", "max_avg"):
    perms = permutation_set(100, selection=selection)
    d = hamming_distances(perms, perms)[~np.eye(100, dtype=bool)]
    stats[selection] = (int(d.min()), int(d.sum()))
  pairs = 100 * 99
  # sum over ordered pairs <= 9 positions x (pairs - sum_v c_v (c_v - 1)),
  # c = eight 11s and one 12.
  bound = 9 * (pairs - (8 * 11 * 10 + 12 * 11))
  assert stats["max_min"][0] >= stats["max_avg"][0], stats
  assert (stats["max_min"][0], stats["max_avg"][0]) == (6, 2), stats
  assert stats["max_avg"][1] >= stats["max_min"][1], stats
  assert stats["max_avg"][1] == stats["max_min"][1] == bound, stats
  assert bound / pairs == pytest.approx(8.08)


def test_permutation_set_bad_arguments():
  with pytest.raises(ValueError, match="num_permutations"):
    permutation_set(25, grid=2)
  with pytest.raises(ValueError, match="num_permutations"):
    permutation_set(0)
  with pytest.raises(ValueError, match="grid"):
    permutation_set(10, grid=4)
  with pytest.raises(ValueError, match="selection"):
    permutation_set(10, selection="max_sum")


# ----------------------------------------------------------------------------
# tiles
# ----------------------------------------------------------------------------


def test_tile_offsets_stay_in_their_cells_and_tiles_match_numpy_slicing():
  h, w, grid, cell, tile = 17, 15, 3, 5, 3
  image = np.random.default_rng(1).random((h, w, 3)).astype(np.float32)
  offs = jax.jit(lambda k: augment.sample_tile_offsets(
      k, h, w, grid=grid, cell=cell, tile=tile))
  f = jax.jit(lambda x, o: augment.extract_tiles(x, o, tile=tile))
  cells = np.stack(np.divmod(np.arange(9), grid), 1) * cell     # cell corners
  seen = set()
  for s in range(20):
    o = np.asarray(offs(jax.random.key(s)))
    assert o.shape == (9, 2)
    tiles = np.asarray(f(image, o))
    for t in range(9):
      np.testing.assert_array_equal(
          tiles[t], image[o[t][0]:o[t][0] + tile, o[t][1]:o[t][1] + tile])
    # offset = lattice origin + cell corner + jitter in [0, cell - tile]: some
    # origin that keeps the lattice inside the image explains all 9 tiles.
    shift = o - cells
    lo = np.maximum(shift.max(0) - (cell - tile), 0)
    hi = np.minimum(shift.min(0), np.array([h, w]) - grid * cell)
    assert (lo <= hi).all(), o
    seen.add(tuple((shift - shift.min(0)).ravel()))
  assert len(seen) > 5          # the jitter varies


def test_grid_tiles_deterministic_per_key_and_vmappable():
  images = np.random.default_rng(2).integers(0, 256, (4, 12, 12, 1)).astype(np.uint8)
  f = jax.jit(jax.vmap(lambda k, x: augment.random_grid_tiles(
      k, x, grid=3, cell=4, tile=3)))
  keys = jax.random.split(jax.random.key(0), 4)
  a, b = f(keys, images), f(keys, images)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (4, 9, 3, 3, 1) and a.dtype == jnp.float32
  c = f(jax.random.split(jax.random.key(1), 4), images)
  assert not np.array_equal(a, c)


def test_grid_tiles_with_resize_slice_the_resized_image():
  image = np.random.default_rng(3).random((8, 8, 1)).astype(np.float32)
  key = jax.random.key(4)
  tiles = jax.jit(lambda k, x: augment.random_grid_tiles(
      k, x, grid=3, cell=4, tile=3, size=12))(key, image)
  big = np.asarray(jax.image.resize(image, (12, 12, 1), "bilinear"))
  o = np.asarray(augment.sample_tile_offsets(key, 12, 12, grid=3, cell=4, tile=3))
  for t in range(9):
    np.testing.assert_allclose(tiles[t], big[o[t][0]:o[t][0] + 3,
                                             o[t][1]:o[t][1] + 3], atol=1e-6)


def test_tile_geometry_errors():
  with pytest.raises(ValueError, match="does not fit"):
    augment.sample_tile_offsets(jax.random.key(0), 8, 8, grid=3, cell=3, tile=2)
  with pytest.raises(ValueError, match="must not exceed"):
    augment.sample_tile_offsets(jax.random.key(0), 12, 12, grid=3, cell=3, tile=4)


def _offsets_before_min_gap(key, height, width, *, grid, cell, tile):
  """``sample_tile_offsets`` as it was before ``min_gap`` (frozen copy)."""
  n = grid * grid
  u = jax.random.uniform(key, (2 + 2 * n,), dtype=jnp.float32)
  span = jnp.array([height - grid * cell, width - grid * cell], jnp.float32)
  origin = jnp.floor(u[:2] * (span + 1)).astype(jnp.int32)
  origin = jnp.minimum(origin, span.astype(jnp.int32))
  jitter = jnp.floor(u[2:].reshape(n, 2) * (cell - tile + 1)).astype(jnp.int32)
  jitter = jnp.minimum(jitter, cell - tile)
  rows, cols = np.divmod(np.arange(n), grid)
  cells = jnp.asarray(np.stack([rows, cols], axis=1) * cell, jnp.int32)
  return origin[None, :] + cells + jitter


@pytest.mark.parametrize("h,grid,cell,tile", [(32, 3, 10, 8), (17, 3, 5, 3),
                                              (12, 2, 6, 6)])
def test_min_gap_zero_keeps_the_old_draws_bit_identical(h, grid, cell, tile):
  keys = jax.random.split(jax.random.key(7), 500)
  new = jax.jit(jax.vmap(lambda k: augment.sample_tile_offsets(
      k, h, h, grid=grid, cell=cell, tile=tile)))(keys)
  zero = jax.jit(jax.vmap(lambda k: augment.sample_tile_offsets(
      k, h, h, grid=grid, cell=cell, tile=tile, min_gap=0)))(keys)
  old = jax.jit(jax.vmap(lambda k: _offsets_before_min_gap(
      k, h, h, grid=grid, cell=cell, tile=tile)))(keys)
  np.testing.assert_array_equal(new, old)
  np.testing.assert_array_equal(zero, old)


def test_shipped_geometry_gap_statistics():
  """cell 10, tile 8, min_gap 0 (the shipped configs): neighbouring gaps
  0..4 px, triangular, 1/9 touching, mean 2 px (a quarter of a tile)."""
  keys = jax.random.split(jax.random.key(0), 4000)
  o = jax.jit(jax.vmap(lambda k: augment.sample_tile_offsets(
      k, 32, 32, grid=3, cell=10, tile=8)))(keys)
  h, v = tile_gaps(o, grid=3, tile=8)
  assert h.shape == (4000, 3, 2) and v.shape == (4000, 2, 3)
  gaps = np.concatenate([np.ravel(h), np.ravel(v)])
  freq = np.bincount(gaps, minlength=5) / gaps.size
  np.testing.assert_allclose(freq, np.array([1, 2, 3, 2, 1]) / 9, atol=0.01)
  assert abs(gaps.mean() - 2.0) < 0.03


@pytest.mark.parametrize("grid,cell,tile,min_gap", [
    (3, 10, 8, 1), (3, 10, 8, 2), (3, 12, 8, 3), (3, 14, 8, 4), (2, 9, 4, 5)])
def test_min_gap_holds_for_every_neighbouring_pair(grid, cell, tile, min_gap):
  side = grid * cell + 3
  keys = jax.random.split(jax.random.key(min_gap), 3000)
  o = np.asarray(jax.jit(jax.vmap(lambda k: augment.sample_tile_offsets(
      k, side, side, grid=grid, cell=cell, tile=tile, min_gap=min_gap)))(keys))
  h, v = tile_gaps(o, grid=grid, tile=tile)
  gaps = np.concatenate([np.ravel(h), np.ravel(v)])
  free = cell - tile - min_gap
  assert gaps.min() == min_gap, gaps.min()
  assert gaps.max() == min_gap + 2 * free, gaps.max()        # the range is used
  assert abs(gaps.mean() - (cell - tile)) < 0.1
  # every tile inside the image, every jitter in the same range in each cell
  assert o.min() >= 0 and o.max() <= side - tile
  cells = np.stack(np.divmod(np.arange(grid * grid), grid), 1) * cell
  rel = o - cells
  jitter = rel - rel.min(axis=1, keepdims=True)
  assert jitter.max() <= free


def _coordinate_images(n, side):
  """uint8 images whose pixel (r, c) is (r, c, 0)."""
  r, c = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
  image = np.stack([r, c, np.zeros_like(r)], -1).astype(np.uint8)
  return np.broadcast_to(image, (n, side, side, 3))


def _tile_corners(tiles):
  """(row, column) of each tile of a coordinate image, from its top-left
  pixel: ``[..., 2]``."""
  return np.rint(np.asarray(tiles)[..., 0, 0, :2] * 255).astype(int)


def test_min_gap_reaches_the_tiles_of_both_methods():
  """Through ``Jigsaw.task`` and ``RelativePosition.task`` (jit; the batch
  vmapped): the tiles' own pixels show no neighbouring pair closer than
  min_gap."""
  images = _coordinate_images(64, 38)
  common = dict(model=None, tx=None, cell=12, tile=8, min_gap=3,
                normalize=False, mean=(0.0,), std=(1.0,))
  jig = Jigsaw(num_permutations=10, **common)
  rel = RelativePosition(**common)
  seen = set()
  for s in range(5):
    tiles, labels = jax.jit(jig.task)(images, jax.random.key(s))
    perms = np.asarray(jig.permutations)[np.asarray(labels)]
    shown = _tile_corners(tiles)                               # [B, 9, 2]
    corners = np.empty_like(shown)
    np.put_along_axis(corners, perms[..., None], shown, axis=1)  # unshuffle
    tiles, _ = jax.jit(rel.task)(images, jax.random.key(s))
    for corner in (corners, _tile_corners(tiles)):
      h, v = tile_gaps(corner, grid=3, tile=8)
      gaps = np.concatenate([np.ravel(h), np.ravel(v)])
      assert gaps.min() >= 3 and gaps.max() <= 5, (gaps.min(), gaps.max())
      seen.update(gaps.tolist())
  assert seen == {3, 4, 5}         # 2 * (12 - 8) - 3 = 5


def test_min_gap_errors():
  with pytest.raises(ValueError, match="min_gap"):
    augment.sample_tile_offsets(jax.random.key(0), 32, 32, grid=3, cell=10,
                                tile=8, min_gap=3)
  with pytest.raises(ValueError, match="min_gap"):
    augment.sample_tile_offsets(jax.random.key(0), 32, 32, grid=3, cell=10,
                                tile=8, min_gap=-1)
  for bad in (3, -1, 1.5):
    with pytest.raises(ValueError, match="min_gap"):
      RelativePosition(model=None, tx=None, cell=10, tile=8, min_gap=bad)
  with pytest.raises(ValueError, match="at most 2"):
    Jigsaw(model=None, tx=None, num_permutations=2, cell=10, tile=8,
           min_gap=3)
  assert RelativePosition(model=None, tx=None, cell=10, tile=8,
                          min_gap=2).min_gap == 2


def test_normalize_tiles_per_tile_against_numpy():
  rng = np.random.default_rng(5)
  tiles = rng.random((2, 9, 4, 4, 3)).astype(np.float32)
  tiles[0, 3] = 0.7                                   # a flat tile
  got = np.asarray(jax.jit(augment.normalize_tiles)(tiles))
  mean = tiles.mean(axis=(-3, -2, -1), keepdims=True)
  var = tiles.var(axis=(-3, -2, -1), keepdims=True)
  np.testing.assert_allclose(got, (tiles - mean) / np.sqrt(var + 1e-3),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[0, 3], 0.0, atol=1e-5)
  np.testing.assert_allclose(got[1].mean(axis=(-3, -2, -1)), 0.0, atol=1e-5)


def test_shuffled_tiles_reassembled_with_the_inverse_permutation_restore_the_image():
  image = np.random.default_rng(6).random((12, 12, 1)).astype(np.float32)
  perms = permutation_set(10)
  # cell == tile and a 12 = 3 * 4 image: no gaps, no jitter, exact tiling.
  tiles, label = jax.jit(lambda k, x: augment.random_jigsaw(
      k, x, perms, grid=3, cell=4, tile=4, normalize=False))(
          jax.random.key(7), image)
  perm = perms[int(label)]
  # position j shows tile perm[j]
  for j in range(9):
    r, c = divmod(int(perm[j]), 3)
    np.testing.assert_array_equal(tiles[j], image[4 * r:4 * r + 4, 4 * c:4 * c + 4])
  restored = augment.assemble_tiles(
      augment.shuffle_tiles(tiles, np.argsort(perm)), grid=3)
  np.testing.assert_array_equal(restored, image)
  assert not np.array_equal(augment.assemble_tiles(tiles, grid=3), image) or \
      (perm == np.arange(9)).all()


def test_jigsaw_batch_labels_and_determinism():
  images = np.random.default_rng(8).integers(0, 256, (16, 12, 12, 1)).astype(np.uint8)
  perms = permutation_set(10)
  f = jax.jit(lambda k, x: augment.jigsaw_batch(k, x, perms, grid=3, cell=4,
                                                tile=3))
  tiles, labels = f(jax.random.key(0), images)
  assert tiles.shape == (16, 9, 3, 3, 1) and labels.shape == (16,)
  assert labels.min() >= 0 and labels.max() < 10
  assert len(np.unique(labels)) > 3
  t2, l2 = f(jax.random.key(0), images)
  np.testing.assert_array_equal(tiles, t2)
  np.testing.assert_array_equal(labels, l2)
  # each tile was normalized on its own
  np.testing.assert_allclose(np.asarray(tiles).mean(axis=(2, 3, 4)), 0, atol=1e-5)


# ----------------------------------------------------------------------------
# relative position
# ----------------------------------------------------------------------------

# label -> (row, column) of the neighbour in the 3 x 3 lattice, by hand.
HAND_POSITIONS = {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (1, 0), 4: (1, 2),
                  5: (2, 0), 6: (2, 1), 7: (2, 2)}


def _cell_image(cell=4):
  """A 3x3-cell image whose cell (r, c) holds the value 10 * r + c."""
  vals = np.array([[10 * r + c for c in range(3)] for r in range(3)], np.float32)
  return np.kron(vals, np.ones((cell, cell), np.float32))[..., None] / 255.0


def test_relative_position_labels_by_hand():
  image = _cell_image()
  f = jax.jit(lambda k: augment.random_patch_pair(k, image, cell=4, tile=4,
                                                  normalize=False))
  seen = set()
  for s in range(40):
    pair, label = f(jax.random.key(s))
    label = int(label)
    seen.add(label)
    np.testing.assert_allclose(pair[0], 11 / 255.0)           # centre (1, 1)
    r, c = HAND_POSITIONS[label]
    np.testing.assert_allclose(pair[1], (10 * r + c) / 255.0)
  assert seen == set(range(8))
  assert augment.NEIGHBOR_CELLS == tuple(3 * r + c for r, c in
                                         (HAND_POSITIONS[i] for i in range(8)))


def test_relative_position_batch_all_neighbors():
  images = (np.stack([_cell_image()] * 8) * 255).round().astype(np.uint8)
  tiles, labels = jax.jit(lambda k, x: augment.relative_position_batch(
      k, x, cell=4, tile=4, normalize=False))(jax.random.key(0), images)
  assert tiles.shape == (8, 9, 4, 4, 1)
  np.testing.assert_array_equal(labels, np.tile(np.arange(8), (8, 1)))
  for j, (r, c) in HAND_POSITIONS.items():
    cell = PAIR_GROUPS[j][1]
    assert PAIR_GROUPS[j][0] == 4
    np.testing.assert_allclose(tiles[:, cell], (10 * r + c) / 255.0)
  pairs, lab = jax.jit(lambda k, x: augment.relative_position_batch(
      k, x, cell=4, tile=3, all_neighbors=False))(jax.random.key(0), images)
  assert pairs.shape == (8, 2, 3, 3, 1) and lab.shape == (8,)


class _Linear(nn.Module):
  """A stand-in encoder / head: flatten + Dense (plain normal init, quick to
  compile on CPU)."""
  features: int

  @nn.compact
  def __call__(self, x, train=True):
    return nn.Dense(self.features, kernel_init=nn.initializers.normal(1.0))(
        x.reshape(x.shape[0], -1))


def test_tile_classifier_groups_concatenate_the_right_features():
  x = jax.random.normal(jax.random.key(0), (2, 9, 4, 4, 1))
  key = jax.random.key(1)
  for groups in (((4, 0), (4, 8)), None):
    model = TileClassifier(_Linear(3), _Linear(5), groups=groups)
    v = model.init(key, x, train=False)
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(v, x)
    enc, head = v["params"]["encoder"]["Dense_0"], v["params"]["head"]["Dense_0"]
    f = x.reshape(2, 9, 16) @ enc["kernel"] + enc["bias"]          # [2, 9, 3]
    if groups is None:        # all tiles concatenated in order
      want = f.reshape(2, 27) @ head["kernel"] + head["bias"]
    else:                     # one classification per group
      want = jnp.stack([jnp.concatenate([f[:, i], f[:, j]], -1) @ head["kernel"]
                        + head["bias"] for i, j in groups], axis=1)
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_classification_metrics_by_hand():
  logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
  labels = jnp.array([0, 0, 0])
  loss, acc = classification_metrics(logits, labels)
  want = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)),
                  np.log1p(np.exp(-3.0))])
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(acc, 2 / 3, rtol=1e-6)


# ----------------------------------------------------------------------------
# methods: state, train step, encode
# ----------------------------------------------------------------------------


def pretext_config(method, **overrides):
  """A tiny config of ``method`` whose every key is read."""
  c = tiny_config(method=method, batch_size=16, **overrides)
  del c["temperature"], c["augment"]                   # SimCLR's
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(8,), stage_sizes=(1,), first_stage_stride=1))
  c.head = ml_collections.ConfigDict(dict(hidden_dim=8, num_layers=2))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.5, lr_scaling="linear", weight_decay=5e-4,
      momentum=0.9, warmup_epochs=0.0))
  if method == "rotation":
    # Without crops and flips (their ops are tested in test_augment): the
    # fixed-batch loss test needs a deterministic target.
    c.augment = ml_collections.ConfigDict()
  elif method == "jigsaw":
    c.jigsaw = ml_collections.ConfigDict(dict(
        num_permutations=10, permutation_seed=0, grid=3, size=12, cell=4,
        tile=3))
  else:
    c.relpos = ml_collections.ConfigDict(dict(size=12, cell=4, tile=3,
                                              all_neighbors=True))
  return c


METHODS = {"rotation": (Rotation, "rotation_acc", 4),
           "jigsaw": (Jigsaw, "jigsaw_acc", 10),
           "relpos": (RelativePosition, "relpos_acc", 8)}


@pytest.fixture(scope="module", params=list(METHODS))
def run(request):
  name = request.param
  ds = tiny_dataset(n=32)                           # 8 x 8 images
  method, _ = build_method(pretext_config(name), len(ds))
  state = method.init(jax.random.key(0), ds.image_shape)
  return dict(name=name, method=method, state=state, ds=ds,
              step=jax.jit(method.train_step))


def test_method_type_state_and_deterministic_init(run):
  cls, metric, k = METHODS[run["name"]]
  method, state = run["method"], run["state"]
  assert isinstance(method, cls) and method.metric_name == metric
  assert isinstance(state, TrainState)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
  assert state.params["head"]["Dense_1"]["kernel"].shape[-1] == k
  again = method.init(jax.random.key(0), run["ds"].image_shape)
  jax.tree.map(np.testing.assert_array_equal, state, again)


def test_step_reports_cross_entropy_and_accuracy_of_its_task(run):
  method, state = run["method"], run["state"]
  images = jnp.asarray(run["ds"].images[:16])
  key = jax.random.key(3)
  new_state, metrics = run["step"](state, images, key)
  # Independently: the task's inputs and labels, one forward pass, numpy CE.
  inputs, labels = jax.jit(method.task)(images, jax.random.fold_in(key, state.step))
  logits, _ = jax.jit(lambda v, x: method.model.apply(
      v, x, train=True, mutable=["batch_stats"]))(
          {"params": state.params, "batch_stats": state.batch_stats}, inputs)
  lg = np.asarray(logits, np.float64).reshape(-1, logits.shape[-1])
  lb = np.asarray(labels).reshape(-1)
  logp = lg - lg.max(1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(1, keepdims=True))
  np.testing.assert_allclose(metrics["loss"], -logp[np.arange(len(lb)), lb].mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(metrics[method.metric_name],
                             np.mean(lg.argmax(1) == lb), atol=1e-6)
  expected_n = {"rotation": 64, "jigsaw": 16, "relpos": 128}[run["name"]]
  assert len(lb) == expected_n
  assert int(new_state.step) == 1 and float(metrics["lr"]) > 0
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                      state.params, new_state.params)
  assert max(jax.tree.leaves(diff["encoder"])) > 0
  assert max(jax.tree.leaves(diff["head"])) > 0


def test_step_is_deterministic_per_key(run):
  images = jnp.asarray(run["ds"].images[:16])
  _, m1 = run["step"](run["state"], images, jax.random.key(1))
  _, m2 = run["step"](run["state"], images, jax.random.key(1))
  _, m3 = run["step"](run["state"], images, jax.random.key(2))
  assert float(m1["loss"]) == float(m2["loss"])
  if run["name"] == "rotation":      # no augmentation: nothing is random
    assert float(m1["loss"]) == float(m3["loss"])
  else:                              # tiles, jitter and labels follow the key
    assert float(m1["loss"]) != float(m3["loss"])


def test_step_makes_no_host_device_transfers(run):
  images = jnp.asarray(run["ds"].images[:16])
  key = jax.random.key(1)
  jax.block_until_ready(run["step"](run["state"], images, key))  # compiled
  with jax.transfer_guard("disallow"):
    jax.block_until_ready(run["step"](run["state"], images, key))


def test_encode_gives_whole_image_features(run):
  method, state, ds = run["method"], run["state"], run["ds"]
  feats = jax.jit(method.encode)(state, jnp.asarray(ds.images[:4]))
  assert feats.shape == (4, 8)
  # uint8 and [0, 1] float inputs give the same features
  f2 = method.encode({"params": state.params, "batch_stats": state.batch_stats},
                     jnp.asarray(ds.images[:4], jnp.float32) / 255.0)
  np.testing.assert_allclose(feats, f2, rtol=1e-5, atol=1e-5)


def test_bad_batch_shape_is_rejected(run):
  with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
    run["method"].train_step(run["state"], jnp.asarray(run["ds"].images[0]),
                             jax.random.key(0))


@pytest.mark.parametrize("run", ["rotation"], indirect=True)
def test_rotation_loss_decreases_on_a_fixed_batch(run):
  # without augmentation rotation has a fixed target
  state, images = run["state"], jnp.asarray(run["ds"].images[:16])
  seen = []
  for _ in range(8):
    state, m = run["step"](state, images, jax.random.key(0))
    seen.append(float(m["loss"]))
  assert seen[-1] < seen[0] - 0.1, seen


@pytest.mark.parametrize("run", ["jigsaw"], indirect=True)
def test_sharded_step_matches_single_device(run):
  # one method is enough: they share TileClassifier and the train step
  require_devices(8)
  method, state, ds = run["method"], run["state"], run["ds"]
  images = ds.images[:16]
  key = jax.random.key(5)
  single_state, single_m = run["step"](state, jnp.asarray(images), key)
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    out_state, out_m = jax.jit(method.train_step)(
        jax.device_put(state, replicated_sharding(mesh)),
        jax.device_put(images, data_sharding(mesh, 4)), key)
  np.testing.assert_allclose(out_m["loss"], single_m["loss"], rtol=1e-5)
  np.testing.assert_allclose(out_m["jigsaw_acc"], single_m["jigsaw_acc"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
               out_state.params, single_state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
               out_state.batch_stats, single_state.batch_stats)


def test_method_argument_errors():
  enc = SmallResNet(widths=(4,), stage_sizes=(1,))
  with pytest.raises(ValueError, match="permutation"):
    Jigsaw(model=TileClassifier(enc, ProjectionMLP(out_dim=2)), tx=None,
           permutations=[[0, 1, 2, 3, 4, 5, 6, 7, 7], [0] * 9])
  with pytest.raises(ValueError, match="groups"):
    RelativePosition(model=TileClassifier(enc, ProjectionMLP(out_dim=8)),
                     tx=None, all_neighbors=True)
  with pytest.raises(ValueError, match="cell"):       # tile larger than cell
    RelativePosition(model=None, tx=None, cell=4, tile=5)
  with pytest.raises(ValueError, match="does not fit in the 8x8 images"):
    Jigsaw(model=None, tx=None, num_permutations=2, cell=3, tile=2,
           image_shape=(8, 8, 1))


def test_jigsaw_permutations_from_num_permutations_and_seed():
  m = Jigsaw(model=None, tx=None, num_permutations=5, permutation_seed=1,
             grid=2, cell=4, tile=3)
  np.testing.assert_array_equal(m.permutations,
                                permutation_set(5, grid=2, seed=1))
  assert m.num_classes == 5
  explicit = Jigsaw(model=None, tx=None, permutations=m.permutations, grid=2)
  assert explicit.num_permutations == explicit.num_classes == 5
  assert explicit.permutations == m.permutations


def test_jigsaw_selection_field():
  m = Jigsaw(model=None, tx=None, num_permutations=6, permutation_seed=3,
             selection="max_avg", grid=2, cell=4, tile=3)
  np.testing.assert_array_equal(m.permutations, permutation_set(
      6, grid=2, seed=3, selection="max_avg"))
  assert Jigsaw(model=None, tx=None, num_permutations=6, grid=2, cell=4,
                tile=3).selection == "max_min"
  with pytest.raises(ValueError, match="max_avg"):
    Jigsaw(model=None, tx=None, num_permutations=6, grid=2, cell=4, tile=3,
           selection="average")


def test_geometry_mistakes_fail_the_trace_without_an_image_shape():
  """A method made without ``image_shape`` finds a lattice that does not
  fit when its step is traced (what ``validate`` does)."""
  enc = SmallResNet(widths=(4,), stage_sizes=(1,))
  m = RelativePosition(model=TileClassifier(enc, ProjectionMLP(out_dim=8),
                                            groups=PAIR_GROUPS),
                       tx=None, cell=3, tile=2)
  with pytest.raises(ValueError, match="does not fit"):
    jax.eval_shape(lambda k: m.init(k, (8, 8, 1)), jax.random.key(0))


# ----------------------------------------------------------------------------
# configs: registered, validated, every key read, problems at their keys
# ----------------------------------------------------------------------------


def load_config(name):
  return load_module(os.path.join(CONFIG_DIR, f"{name}_fashion_mnist.py"),
                     name).get_config()


def problems(config):
  with pytest.raises(ConfigError) as info:
    validate_config(config, device_count=1)
  return info.value


@pytest.mark.parametrize("name", list(METHODS))
def test_shipped_config_validates_and_builds_its_method(name):
  config = load_config(name)
  assert config_problems(config, device_count=1) == []
  assert get_method(name) is METHODS[name][0]
  method, steps = build_method(config, 60000)
  expected = config.num_steps or round(
      config.num_epochs * (60000 // config.batch_size))
  assert isinstance(method, METHODS[name][0]) and steps == expected
  head = method.model.head
  assert head.out_dim == method.num_classes and head.hidden_dim == (
      config.head.hidden_dim)
  assert method.model.encoder.widths == (32, 64, 256)
  assert (method.mean, method.std) == ((0.286,), (0.353,))


def test_shipped_configs_keep_their_task_values():
  rot = build_method(load_config("rotation"), 60000)[0]
  assert rot.augment == dict(area_range=(0.6, 1.0), aspect_range=(3 / 4, 4 / 3),
                             flip=True, jitter_p=0.0, grayscale_p=0.0,
                             blur_p=0.0)
  jig = build_method(load_config("jigsaw"), 60000)[0]
  assert (jig.grid, jig.size, jig.cell, jig.tile, jig.normalize, jig.eps) == (
      3, 32, 10, 8, True, 1e-3)
  np.testing.assert_array_equal(jig.permutations, permutation_set(100, seed=0))
  assert (jig.selection, jig.min_gap) == ("max_min", 0)
  rel = build_method(load_config("relpos"), 60000)[0]
  assert (rel.size, rel.cell, rel.tile, rel.all_neighbors) == (32, 10, 8, True)
  assert rel.min_gap == 0
  assert rel.model.groups == PAIR_GROUPS


def test_config_keys_selection_and_min_gap():
  config = load_config("jigsaw")
  config.jigsaw.selection = "max_avg"
  config.jigsaw.min_gap = 2
  assert config_problems(config, device_count=1) == []
  jig = build_method(config, 60000)[0]
  assert (jig.selection, jig.min_gap) == ("max_avg", 2)
  np.testing.assert_array_equal(jig.permutations,
                                permutation_set(100, selection="max_avg"))
  config = load_config("relpos")
  config.relpos.min_gap = 1
  assert build_method(config, 60000)[0].min_gap == 1


@pytest.mark.parametrize("name,section,key,value,fragments", [
    ("jigsaw", "jigsaw", "tile", 12, ("12", "cell (10)")),
    ("jigsaw", "jigsaw", "size", 28, ("28x28",)),        # 3 x 10 > 28
    ("jigsaw", "jigsaw", "num_permutations", 400000, ("9! = 362880",)),
    ("relpos", "relpos", "size", None, ("28x28",)),     # the images themselves
    ("relpos", "relpos", "eps", 0.0, ("> 0",)),
    ("relpos", "relpos", "min_gap", 3, ("tile + min_gap <= cell", "at most 2")),
    ("jigsaw", "jigsaw", "min_gap", -1, ("at most 2",)),
    ("jigsaw", "jigsaw", "selection", "sum", ("max_min", "max_avg")),
    ("rotation", "head", "out_dim", 10, ("number of classes", "4 rotations")),
])
def test_bad_value_is_reported_at_its_dotted_key(name, section, key, value,
                                                  fragments):
  config = load_config(name)
  config[section][key] = value
  err = problems(config)
  want = f"{section}.cell" if key == "size" else f"{section}.{key}"
  assert err.keys == (want,), str(err)
  for fragment in fragments:
    assert fragment in str(err), (fragment, str(err))


@pytest.mark.parametrize("name,section,typo,want", [
    ("rotation", "augment", "flp", "augment.flip"),
    ("jigsaw", "jigsaw", "num_permutation", "jigsaw.num_permutations"),
    ("relpos", "relpos", "all_neighbours", "relpos.all_neighbors"),
    ("jigsaw", "head", "hiden_dim", "head.hidden_dim"),
])
def test_misspelt_key_is_reported_with_the_closest_key(name, section, typo,
                                                       want):
  config = load_config(name)
  config[section][typo] = 1
  err = problems(config)
  assert err.keys == (f"{section}.{typo}",), str(err)
  assert f"did you mean '{want}'" in str(err)


def test_pretrain_and_linear_eval_protocol_on_digits(tmp_path):
  """The existing loop and evaluation run a pretext method end to end."""
  from ssljax.eval.protocol import evaluate_run
  from ssljax.run import restore
  from ssljax.train.loop import pretrain
  config = pretext_config("relpos", dataset="digits", num_steps=2,
                          checkpoint_every=2)
  config.input_mean, config.input_std = (0.3,), (0.37,)
  config.eval.update(linear_epochs=2, linear_batch_size=256,
                     feature_batch_size=512)
  _, state = pretrain(config, str(tmp_path), progress=False)
  assert int(state.step) == 2
  with restore(str(tmp_path)) as run:
    out = evaluate_run(run, progress=False, baselines=False)
  assert set(out["results"]) == {"relpos"}
  for r in out["results"].values():
    assert 0.0 <= r["linear"] <= 1.0 and 0.0 <= r["knn"] <= 1.0
  assert out["step"] == 2
