"""View recipes: the SimCLR augmentation family T, per image and per batch."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ssljax.augment import ops
from ssljax.parallel.mesh import like_batch


def simclr_view(key, image, *, size=None, strength: float = 1.0,
                area_range: Sequence[float] = (0.08, 1.0),
                aspect_range: Sequence[float] = (3 / 4, 4 / 3),
                flip: bool = True, jitter_p: float = 0.8,
                grayscale_p: float = 0.2, blur_p: float = 0.5,
                blur_sigma: Sequence[float] = (0.1, 2.0),
                solarize_p: float = 0.0) -> jax.Array:
  """One SimCLR view t(x) of one image, t ~ T.

  random resized crop (area ``area_range``, aspect ``aspect_range``, bilinear
  resize to ``size``) -> horizontal flip p=0.5 -> colour jitter
  ``(0.8s, 0.8s, 0.8s, 0.2s)`` in random order with p = ``jitter_p`` ->
  grayscale p = ``grayscale_p`` -> Gaussian blur (kernel
  ``blur_kernel_size(output height)``, sigma ~ U(``blur_sigma``)) with p =
  ``blur_p`` (0 skips it; SimCLR blurs on ImageNet, not CIFAR) -> solarize p =
  ``solarize_p`` (BYOL; 0 in SimCLR).

  Reference: Chen et al. 2020 (SimCLR) appendix A; the official
  ``preprocess_for_train`` in ``simclr/tf2/data_util.py``.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float in [0, 1] or uint8, C in {1, 3}.
    size: static output ``(h, w)`` or int; default ``(H, W)``.
    strength: colour-jitter strength ``s``.
    area_range, aspect_range: crop ranges.
    flip: random horizontal flip (p = 0.5).
    jitter_p, grayscale_p, blur_p, solarize_p: op probabilities.
    blur_sigma: ``(min, max)`` blur sigma in pixels.

  Returns:
    ``[h, w, C]`` float32 in [0, 1].
  """
  ops._check_image(image)
  image = ops.to_float(image)
  k_crop, k_flip, k_jit, k_gray, k_blur, k_sol = jax.random.split(key, 6)
  x = ops.random_resized_crop(k_crop, image, size=size, area_range=area_range,
                              aspect_range=aspect_range)
  if flip:
    x = ops.random_flip_left_right(k_flip, x, p=0.5)
  x = ops.color_jitter(k_jit, x, brightness=0.8 * strength,
                       contrast=0.8 * strength, saturation=0.8 * strength,
                       hue=0.2 * strength, p=jitter_p, random_order=True)
  x = ops.random_grayscale(k_gray, x, p=grayscale_p)
  if not (isinstance(blur_p, (int, float)) and blur_p == 0):
    x = ops.random_gaussian_blur(
        k_blur, x, kernel_size=ops.blur_kernel_size(x.shape[0]),
        sigma_range=blur_sigma, p=blur_p)
  x = ops.random_solarize(k_sol, x, threshold=0.5, p=solarize_p)
  return jnp.clip(x, 0.0, 1.0).astype(jnp.float32)


def simclr_views(key, images, **kwargs):
  """Two independent SimCLR views of every image in a batch.

  Per-example keys (``jax.random.split``) get the batch's sharding
  (``like_batch``) before the ``vmap``, so a batch sharded over the ``data``
  mesh axis is augmented where it lives.

  Reference: Chen et al. 2020 (SimCLR), Algorithm 1.

  Args:
    key: PRNG key (e.g. ``fold_in(root_key, step)``).
    images: ``[B, H, W, C]`` uint8 or float in [0, 1], C in {1, 3}.
    **kwargs: keyword arguments of :func:`simclr_view` (both views alike).

  Returns:
    ``(view1, view2)``, each ``[B, h, w, C]`` float32 in [0, 1].
  """
  ops._check_batch(images)
  images = ops.to_float(images)
  k1, k2 = jax.random.split(key)
  batch = images.shape[0]
  # keys[i, v]: view v of example i; view v equals (up to float rounding)
  # batch_apply(simclr_view, (k1, k2)[v], images). One vmap over the views
  # inside the batch vmap traces (and compiles) the pipeline once, not twice.
  keys = jnp.stack([jax.random.split(k1, batch), jax.random.split(k2, batch)],
                   axis=1)
  keys = like_batch(keys, images)
  per_image = jax.vmap(lambda k, x: simclr_view(k, x, **kwargs),
                       in_axes=(0, None))
  views = ops.map_examples(per_image, keys, images)  # [B, 2, h, w, C]
  return views[:, 0], views[:, 1]


def normalized_views(key, images, *, mean, std, **kwargs):
  """Two :func:`simclr_views` of a batch, each normalized with ``mean`` /
  ``std`` (SimCLR's and MoCo's query / key views)."""
  v1, v2 = simclr_views(key, images, **kwargs)
  return (ops.normalize_images(v1, mean, std),
          ops.normalize_images(v2, mean, std))
