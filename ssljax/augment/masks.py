"""Inpainting masks (context encoder; Pathak et al. 2016, "Context encoders:
feature learning by inpainting", section 3.3).

A mask is a float32 ``[H, W, 1]`` array with ``M = 1`` where pixels are
dropped (the hole the network fills) and ``0`` where they are kept. Three
region shapes, as in the paper:

* :func:`center_mask` - one centred block (the paper: half the image side);
* :func:`random_block_mask` - several random, possibly overlapping rectangles,
  added until they cover ``coverage`` of the image (the paper: "up to 1/4");
* :func:`random_region_mask` - random blob-shaped regions: coarse Gaussian
  noise upsampled (bicubic, as two small matrix products) to the image size and thresholded at its top
  ``coverage`` quantile (the paper cuts random PASCAL segmentation shapes; the
  thresholded smooth noise gives blobs of the same kind without a dataset).

Key-first and pure, one mask per image as the other augmentations
(``random_*(key, image, *, ...)``; only the image's shape is read);
:func:`inpainting_masks` batches them (one key per example, following the
batch's sharding). The reconstruction weights with the paper's heavier
"overlap" band along the hole's edge, :func:`border_weights`, belong to the
loss (:mod:`ssljax.losses.inpainting`) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment.ops import batch_apply
from ssljax.losses.inpainting import border_weights

__all__ = [
    "MASK_KINDS",
    "apply_mask",
    "border_weights",
    "center_mask",
    "inpainting_masks",
    "random_block_mask",
    "random_region_mask",
]

#: ``kind`` values of :func:`inpainting_masks`.
MASK_KINDS = ("center", "random_blocks", "random_regions")


def _hw(image) -> tuple[int, int]:
  shape = getattr(image, "shape", None)
  if shape is None or len(shape) != 3:
    raise ValueError(f"expected one image [H, W, C]; got shape {shape}.")
  return int(shape[0]), int(shape[1])


def _check_fraction(name: str, value: float) -> None:
  if not 0.0 < float(value) <= 1.0:
    raise ValueError(f"{name} must lie in (0, 1]; got {value}.")


def center_mask(image, *, size: float = 0.5) -> jax.Array:
  """The centred block hole (deterministic).

  Args:
    image: ``[H, W, C]`` (only the shape is used).
    size: hole side as a fraction of the image side; the block is
      ``round(size * H) x round(size * W)`` pixels at rows
      ``(H - h) // 2 ... + h`` and columns ``(W - w) // 2 ... + w``.

  Returns:
    float32 ``[H, W, 1]``, 1 in the hole.
  """
  height, width = _hw(image)
  _check_fraction("size", size)
  h = max(1, round(size * height))
  w = max(1, round(size * width))
  top, left = (height - h) // 2, (width - w) // 2
  rows = (jnp.arange(height) >= top) & (jnp.arange(height) < top + h)
  cols = (jnp.arange(width) >= left) & (jnp.arange(width) < left + w)
  return (rows[:, None] & cols[None, :]).astype(jnp.float32)[..., None]


def random_block_mask(key: jax.Array, image, *, coverage: float = 0.25,
                      num_blocks: int = 16,
                      size_range: Sequence[float] = (0.15, 0.35)) -> jax.Array:
  """Random rectangles added one by one until they cover ``coverage``.

  ``num_blocks`` candidate rectangles with sides drawn uniformly (integers)
  from ``size_range`` (fractions of the image side, height and width
  independently) at uniform positions inside the image; the mask is the union
  of the first ``k`` of them, ``k`` the smallest count whose union covers at
  least ``coverage`` (all of them if none does). The covered fraction thus
  lies in ``[coverage, coverage + one block)`` almost always (the defaults on
  28x28: 0.25-0.37).

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` (only the shape is used).
    coverage: target fraction of the image to drop.
    num_blocks: number of candidate rectangles (static).
    size_range: ``(min, max)`` block side as a fraction of the image side.

  Returns:
    float32 ``[H, W, 1]``, 1 in the holes.
  """
  height, width = _hw(image)
  _check_fraction("coverage", coverage)
  lo_f, hi_f = size_range
  if not 0.0 < lo_f <= hi_f <= 1.0:
    raise ValueError(f"size_range must satisfy 0 < min <= max <= 1; got "
                     f"{tuple(size_range)}.")
  if num_blocks < 1:
    raise ValueError(f"num_blocks must be >= 1; got {num_blocks}.")

  def uniform_int(u, lo, hi):          # integers lo..hi from u in [0, 1)
    return jnp.minimum(lo + jnp.floor(u * (hi - lo + 1)).astype(jnp.int32), hi)

  u = jax.random.uniform(key, (4, num_blocks))
  h = uniform_int(u[0], max(1, round(lo_f * height)), max(1, round(hi_f * height)))
  w = uniform_int(u[1], max(1, round(lo_f * width)), max(1, round(hi_f * width)))
  top = uniform_int(u[2], 0, height - h)
  left = uniform_int(u[3], 0, width - w)
  r = jnp.arange(height)[None, :]
  c = jnp.arange(width)[None, :]
  rows = (r >= top[:, None]) & (r < (top + h)[:, None])          # [K, H]
  cols = (c >= left[:, None]) & (c < (left + w)[:, None])        # [K, W]
  blocks = rows[:, :, None] & cols[:, None, :]                   # [K, H, W]
  index = jnp.arange(num_blocks)
  # The first block covering each pixel (K: none); the union of the first n
  # blocks is then ``first < n``.
  first = jnp.min(jnp.where(blocks, index[:, None, None], num_blocks), axis=0)
  covered = jnp.mean(first[None] <= index[:, None, None], axis=(1, 2))
  reached = covered >= coverage                                  # n = index + 1
  n = jnp.where(reached.any(), jnp.argmax(reached), num_blocks - 1) + 1
  return (first < n).astype(jnp.float32)[..., None]


def random_region_mask(key: jax.Array, image, *, coverage: float = 0.25,
                       grid: int = 4) -> jax.Array:
  """Random blob-shaped regions covering ``coverage`` of the image.

  Standard normal noise on a ``grid x grid`` lattice, upsampled (bicubic) to
  ``[H, W]``, thresholded at its ``k``-th largest value, ``k = round(coverage
  * H * W)``: exactly ``k`` pixels are dropped (barring ties), in one or a few
  smooth blobs; a larger ``grid`` gives more, smaller blobs.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` (only the shape is used).
    coverage: fraction of the image to drop.
    grid: side of the coarse noise lattice (>= 2).

  Returns:
    float32 ``[H, W, 1]``, 1 in the holes.
  """
  height, width = _hw(image)
  _check_fraction("coverage", coverage)
  if grid < 2:
    raise ValueError(f"grid must be >= 2; got {grid}.")
  noise = jax.random.normal(key, (grid, grid), jnp.float32)
  smooth = (_cubic_upsample_matrix(grid, height) @ noise
            @ _cubic_upsample_matrix(grid, width).T)
  k = max(1, round(coverage * height * width))
  threshold = jax.lax.top_k(smooth.reshape(-1), k)[0][-1]
  return (smooth >= threshold).astype(jnp.float32)[..., None]


def _cubic_upsample_matrix(n: int, size: int) -> np.ndarray:
  """``[size, n]`` bicubic interpolation weights (Keys, a = -0.5; half-pixel
  centres; taps beyond the edge dropped and each row renormalized)."""
  centres = (np.arange(size) + 0.5) * n / size - 0.5
  dist = np.abs(centres[:, None] - np.arange(n)[None, :])
  a = -0.5
  w = np.where(dist <= 1, (a + 2) * dist**3 - (a + 3) * dist**2 + 1,
               np.where(dist < 2, a * (dist**3 - 5 * dist**2 + 8 * dist - 4), 0.0))
  return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def inpainting_masks(key: jax.Array, images: jax.Array, *, kind: str = "center",
                     **kwargs) -> jax.Array:
  """One mask per image of a batch ``[B, H, W, C]`` -> float32 ``[B, H, W, 1]``.

  ``kind``: ``"center"`` (:func:`center_mask`; the same hole for every image,
  ``key`` unused), ``"random_blocks"`` (:func:`random_block_mask`) or
  ``"random_regions"`` (:func:`random_region_mask`); ``kwargs`` go to that
  function. Random masks use one key per example (``split(key, B)``).
  """
  if images.ndim != 4:
    raise ValueError(f"images must be a batch [B, H, W, C]; got {images.shape}.")
  if kind == "center":
    m = center_mask(images[0], **kwargs)
    return jnp.broadcast_to(m, (images.shape[0], *m.shape))
  fns = {"random_blocks": random_block_mask,
         "random_regions": random_region_mask}
  if kind not in fns:
    raise ValueError(f"mask kind must be one of {MASK_KINDS}; got {kind!r}.")
  return batch_apply(fns[kind], key, images, **kwargs)


def apply_mask(x: jax.Array, mask: jax.Array, fill: float = 0.0) -> jax.Array:
  """``(1 - M) x + M fill``: the context the generator sees (``fill`` in the
  units of ``x``; 0 in normalized units is the dataset mean)."""
  return (1.0 - mask) * x + mask * fill
