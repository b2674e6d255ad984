"""Pretext-task transforms: rotations, jigsaw tiles, relative-position pairs.

All ops are pure and jit-able with static shapes. Images are float32 in
``[0, 1]`` or uint8 (converted with :func:`ssljax.augment.to_float`), channels
last, C = 1 or 3.

* RotNet (Gidaris et al. 2018, "Unsupervised representation learning by
  predicting image rotations"): :func:`rotations` gives all four rotations of
  every image (0, 90, 180, 270 degrees counter-clockwise, labels 0..3).
* Jigsaw (Noroozi & Favaro 2016, "Unsupervised learning of visual
  representations by solving jigsaw puzzles"): a ``grid x grid`` lattice of
  cells, one tile per cell at a random position inside its cell (random gaps
  and jitter, so tile borders do not line up), each tile normalized on its own,
  tiles shuffled by one permutation of a fixed set; the label is the
  permutation's index.
* Relative patch position (Doersch et al. 2015, "Unsupervised visual
  representation learning by context prediction"): the centre tile of a
  ``3 x 3`` lattice and one of its 8 neighbours, label = the neighbour's
  position (:data:`NEIGHBOR_CELLS`).

Tile geometry (all static, in pixels, after an optional resize to ``size``)::

    region = grid * cell          # the lattice, at a random offset in the image
    tile + min_gap <= cell        # each tile at a random offset in its cell:
    offset in [min_gap // 2, cell - tile - ceil(min_gap / 2)]   (every cell)
    gap between horizontally / vertically neighbouring tiles:
        min_gap .. 2 * (cell - tile) - min_gap, mean cell - tile

(:func:`tile_gaps` measures them.) With ``min_gap = 0`` the gaps are
triangular on ``0 .. 2 * (cell - tile)``: a fraction ``1 / (cell - tile +
1)^2`` of neighbouring pairs touch (e.g. cell 10, tile 8: 1/9).

Noroozi & Favaro: 225 x 225 crop, 75 x 75 cells, 64 x 64 tiles. Doersch et al.:
96 x 96 patches, a gap of about half a patch, jitter up to 7 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ssljax.augment import ops

#: Raster-order cell index (of a 3 x 3 grid) of the neighbour with label
#: 0..7: top-left, top, top-right, left, right, bottom-left, bottom,
#: bottom-right. The centre cell is 4.
NEIGHBOR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)
CENTER_CELL = 4


# ----------------------------------------------------------------------------
# rotation
# ----------------------------------------------------------------------------


def rotations(images) -> tuple[jax.Array, jax.Array]:
  """All four rotations of every image of a batch (RotNet).

  ``rotated[4 * i + k]`` is ``images[i]`` rotated by ``k * 90`` degrees
  counter-clockwise (``np.rot90(images[i], k)``) and ``labels[4 * i + k] =
  k``. Keeping the four rotations of one image next to each other keeps a
  batch sharded over its leading axis sharded the same way.

  Reference: Gidaris et al. 2018 (all four rotations of each image in the
  same mini-batch).

  Args:
    images: ``[B, H, W, C]`` with ``H == W``, any dtype (kept).

  Returns:
    ``(rotated [4B, H, W, C], labels [4B] int32)``.
  """
  shape = tuple(jnp.shape(images))
  if len(shape) != 4:
    raise ValueError(f"images must be a batch [B, H, W, C]; got shape {shape}.")
  if shape[1] != shape[2]:
    raise ValueError(f"rotations need square images (H == W) to keep one "
                     f"shape; got shape {shape}.")
  images = jnp.asarray(images)
  rotated = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(4)],
                      axis=1)                                 # [B, 4, H, W, C]
  labels = jnp.tile(jnp.arange(4, dtype=jnp.int32), shape[0])
  return rotated.reshape(4 * shape[0], *shape[1:]), labels


# ----------------------------------------------------------------------------
# tiles
# ----------------------------------------------------------------------------


def _check_geometry(height: int, width: int, grid: int, cell: int, tile: int,
                    min_gap: int = 0):
  if grid < 1 or cell < 1 or tile < 1:
    raise ValueError(f"grid, cell and tile must be positive; got grid={grid}, "
                     f"cell={cell}, tile={tile}.")
  if tile > cell:
    raise ValueError(f"tile ({tile}) must not exceed cell ({cell}).")
  if min_gap < 0 or tile + min_gap > cell:
    raise ValueError(f"min_gap must lie in [0, cell - tile = {cell - tile}] "
                     f"(tile + min_gap <= cell); got min_gap={min_gap} with "
                     f"cell={cell}, tile={tile}.")
  if grid * cell > min(height, width):
    raise ValueError(f"a {grid}x{grid} lattice of {cell}-pixel cells "
                     f"({grid * cell} pixels) does not fit in a {height}x{width} "
                     "image; lower cell or resize the image (size=...).")


def sample_tile_offsets(key, height: int, width: int, *, grid: int = 3,
                        cell: int, tile: int, min_gap: int = 0) -> jax.Array:
  """Random top-left corners ``[grid * grid, 2]`` (row, column) of the tiles.

  The ``grid * cell`` lattice sits at a uniform random integer offset inside
  the ``height x width`` image; tile ``r * grid + c`` (raster order) sits at a
  uniform random integer offset in ``[lo, lo + cell - tile - min_gap]`` with
  ``lo = min_gap // 2`` (per axis) inside cell ``(r, c)``: the same range in
  every cell, so horizontally and vertically neighbouring tiles are at least
  ``min_gap`` pixels apart (and so are any two tiles in different rows /
  columns, along that axis). ``min_gap = 0`` gives offsets in ``[0, cell -
  tile]``, the same draws bit for bit as before ``min_gap`` existed. One
  PRNG call draws everything.

  Returns:
    int32 ``[grid * grid, 2]``.
  """
  _check_geometry(height, width, grid, cell, tile, min_gap)
  n = grid * grid
  u = jax.random.uniform(key, (2 + 2 * n,), dtype=jnp.float32)
  span = jnp.array([height - grid * cell, width - grid * cell], jnp.float32)
  origin = jnp.floor(u[:2] * (span + 1)).astype(jnp.int32)          # [2]
  origin = jnp.minimum(origin, span.astype(jnp.int32))
  free = cell - tile - min_gap                  # the jitter range of a tile
  jitter = jnp.floor(u[2:].reshape(n, 2) * (free + 1)).astype(jnp.int32)
  jitter = jnp.minimum(jitter, free)
  if min_gap // 2:
    jitter = jitter + min_gap // 2
  rows, cols = np.divmod(np.arange(n), grid)
  cells = jnp.asarray(np.stack([rows, cols], axis=1) * cell, jnp.int32)
  return origin[None, :] + cells + jitter


def tile_gaps(offsets, *, grid: int = 3, tile: int) -> tuple[jax.Array,
                                                            jax.Array]:
  """Gaps in pixels between neighbouring tiles at ``offsets [..., grid *
  grid, 2]`` (from :func:`sample_tile_offsets`; raster order).

  Returns:
    ``(horizontal [..., grid, grid - 1], vertical [..., grid - 1, grid])``:
    ``horizontal[r, c]`` = column of tile ``(r, c + 1)`` minus the end column
    of tile ``(r, c)`` (0: they touch), ``vertical[r, c]`` likewise between
    rows ``r`` and ``r + 1`` of column ``c``.
  """
  o = jnp.asarray(offsets)
  o = o.reshape(*o.shape[:-2], grid, grid, 2)
  horizontal = o[..., :, 1:, 1] - o[..., :, :-1, 1] - tile
  vertical = o[..., 1:, :, 0] - o[..., :-1, :, 0] - tile
  return horizontal, vertical


def extract_tiles(image, offsets, *, tile: int) -> jax.Array:
  """``tile x tile`` crops of one image at (traced) top-left ``offsets``.

  Args:
    image: ``[H, W, C]``.
    offsets: int ``[T, 2]`` (row, column); each crop must lie in the image.

  Returns:
    ``[T, tile, tile, C]`` (``image[r:r + tile, c:c + tile]`` for each
    offset), same dtype as ``image``.
  """
  ops._check_image(image)
  offsets = jnp.asarray(offsets)
  if offsets.ndim != 2 or offsets.shape[1] != 2:
    raise ValueError(f"offsets must be [T, 2]; got shape {offsets.shape}.")
  channels = image.shape[-1]
  crop = lambda o: lax.dynamic_slice(image, (o[0], o[1], 0),
                                     (tile, tile, channels))
  return jax.vmap(crop)(offsets)


def normalize_tiles(tiles, *, eps: float = 1e-3) -> jax.Array:
  """Each tile to zero mean and unit standard deviation (over its pixels and
  channels): ``(x - mean) / sqrt(var + eps)``.

  Noroozi & Favaro normalize every tile independently so the network cannot
  match tiles by their low-level statistics; ``eps`` keeps blank tiles blank.

  Args:
    tiles: ``[..., h, w, C]`` float.
  """
  tiles = jnp.asarray(tiles, jnp.float32)
  if tiles.ndim < 3:
    raise ValueError(f"tiles must be [..., h, w, C]; got shape {tiles.shape}.")
  axes = (-3, -2, -1)
  mean = jnp.mean(tiles, axis=axes, keepdims=True)
  var = jnp.var(tiles, axis=axes, keepdims=True)
  return (tiles - mean) * lax.rsqrt(var + eps)


def shuffle_tiles(tiles, permutation) -> jax.Array:
  """``tiles[permutation]``: position ``j`` of the puzzle shows tile
  ``permutation[j]``. Undo with ``shuffle_tiles(shuffled, argsort(permutation))``.
  """
  return jnp.take(jnp.asarray(tiles), jnp.asarray(permutation), axis=0)


def assemble_tiles(tiles, *, grid: int) -> jax.Array:
  """The ``[grid * h, grid * w, C]`` image whose cell ``(r, c)`` is tile
  ``r * grid + c`` of ``tiles [grid * grid, h, w, C]`` (no gaps)."""
  tiles = jnp.asarray(tiles)
  if tiles.ndim != 4 or tiles.shape[0] != grid * grid:
    raise ValueError(f"tiles must be [grid*grid={grid * grid}, h, w, C]; got "
                     f"shape {tiles.shape}.")
  _, h, w, c = tiles.shape
  x = tiles.reshape(grid, grid, h, w, c).transpose(0, 2, 1, 3, 4)
  return x.reshape(grid * h, grid * w, c)


def _resize(image, size):
  if size is None:
    return image
  size = (size, size) if isinstance(size, int) else tuple(size)
  if tuple(image.shape[:2]) == size:
    return image
  return jax.image.resize(image, (*size, image.shape[-1]), method="bilinear")


def random_grid_tiles(key, image, *, grid: int = 3, cell: int, tile: int,
                      size: int | Sequence[int] | None = None,
                      min_gap: int = 0) -> jax.Array:
  """All ``grid * grid`` tiles of one image, with random gaps and jitter.

  The image (float in [0, 1]; uint8 is converted) is first resized
  (bilinear) to ``size`` when given, then tiled as in
  :func:`sample_tile_offsets`.

  Returns:
    float32 ``[grid * grid, tile, tile, C]`` in raster order of the cells.
  """
  ops._check_image(image)
  image = _resize(ops.to_float(image), size)
  offsets = sample_tile_offsets(key, image.shape[0], image.shape[1], grid=grid,
                                cell=cell, tile=tile, min_gap=min_gap)
  return extract_tiles(image, offsets, tile=tile)


def random_jigsaw(key, image, permutations, *, grid: int = 3, cell: int,
                  tile: int, size=None, normalize: bool = True,
                  eps: float = 1e-3, min_gap: int = 0
                  ) -> tuple[jax.Array, jax.Array]:
  """One jigsaw puzzle of one image.

  Tiles (:func:`random_grid_tiles`), each normalized on its own when
  ``normalize`` (:func:`normalize_tiles`), shuffled by
  ``permutations[label]`` with ``label`` uniform over the set.

  Args:
    key: PRNG key.
    image: ``[H, W, C]``.
    permutations: int ``[P, grid * grid]`` (e.g.
      ``ssljax.methods.jigsaw.permutation_set(100)``).

  Returns:
    ``(tiles [grid * grid, tile, tile, C] float32, label int32 scalar)``.
  """
  permutations = jnp.asarray(permutations, jnp.int32)
  if permutations.ndim != 2 or permutations.shape[1] != grid * grid:
    raise ValueError(f"permutations must be [P, grid*grid={grid * grid}]; got "
                     f"shape {permutations.shape}.")
  k_tiles, k_label = jax.random.split(key)
  tiles = random_grid_tiles(k_tiles, image, grid=grid, cell=cell, tile=tile,
                            size=size, min_gap=min_gap)
  if normalize:
    tiles = normalize_tiles(tiles, eps=eps)
  label = jax.random.randint(k_label, (), 0, permutations.shape[0], jnp.int32)
  return shuffle_tiles(tiles, permutations[label]), label


def jigsaw_batch(key, images, permutations, **kwargs):
  """:func:`random_jigsaw` for every image of a batch ``[B, H, W, C]``.

  Returns:
    ``(tiles [B, T, tile, tile, C], labels [B] int32)``.
  """
  ops._check_batch(images)
  return ops.batch_apply(random_jigsaw, key, images, permutations=permutations,
                         **kwargs)


def random_patch_pair(key, image, *, cell: int, tile: int, size=None,
                      normalize: bool = True, eps: float = 1e-3,
                      min_gap: int = 0) -> tuple[jax.Array, jax.Array]:
  """One relative-position example (Doersch et al. 2015): the centre tile of a
  jittered ``3 x 3`` lattice and a uniformly chosen neighbour.

  Returns:
    ``(pair [2, tile, tile, C] float32 = (centre, neighbour), label int32)``
    with the neighbour in cell ``NEIGHBOR_CELLS[label]``.
  """
  k_tiles, k_label = jax.random.split(key)
  tiles = random_grid_tiles(k_tiles, image, grid=3, cell=cell, tile=tile,
                            size=size, min_gap=min_gap)
  if normalize:
    tiles = normalize_tiles(tiles, eps=eps)
  label = jax.random.randint(k_label, (), 0, 8, jnp.int32)
  neighbor = jnp.take(jnp.asarray(NEIGHBOR_CELLS, jnp.int32), label)
  pair = jnp.stack([tiles[CENTER_CELL], jnp.take(tiles, neighbor, axis=0)])
  return pair, label


def relative_position_batch(key, images, *, cell: int, tile: int, size=None,
                            normalize: bool = True, eps: float = 1e-3,
                            all_neighbors: bool = True, min_gap: int = 0):
  """Relative-position examples for a batch ``[B, H, W, C]``.

  With ``all_neighbors`` every image gives all 8 (centre, neighbour) pairs of
  one jittered lattice: returns ``(tiles [B, 9, tile, tile, C], labels [B, 8])``
  where pair ``j`` is ``(tiles[:, CENTER_CELL], tiles[:, NEIGHBOR_CELLS[j]])``
  and ``labels[:, j] = j`` (the 9 tiles go through the encoder once).
  Otherwise one random pair per image (:func:`random_patch_pair`): returns
  ``(pairs [B, 2, tile, tile, C], labels [B])``.
  """
  ops._check_batch(images)
  if not all_neighbors:
    return ops.batch_apply(random_patch_pair, key, images, cell=cell, tile=tile,
                           size=size, normalize=normalize, eps=eps,
                           min_gap=min_gap)

  def one(k, x):
    tiles = random_grid_tiles(k, x, grid=3, cell=cell, tile=tile, size=size,
                              min_gap=min_gap)
    return normalize_tiles(tiles, eps=eps) if normalize else tiles

  tiles = ops.batch_apply(one, key, images)
  labels = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32),
                            (images.shape[0], 8))
  return tiles, labels
