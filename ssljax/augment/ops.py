"""Key-first, pure, on-device image augmentations (one image at a time).

Every op takes ONE image ``[H, W, C]`` float32 in ``[0, 1]`` with ``C`` = 1
(grayscale, e.g. Fashion-MNIST) or 3 (RGB). ``random_*(key, image, *, ...)``
take the PRNG key first and keyword-only hyperparameters; ``adjust_*`` are
deterministic. Batch an op with ``jax.vmap`` over split keys, or use
:func:`batch_apply`, which also gives the per-example keys the batch's
sharding. All ops are jit-able and vmap-able: shapes are static, and random
decisions use ``jnp.where`` / ``lax.cond`` / ``lax.switch``.

The primitives dm-pix has (contrast, saturation, hue, grayscale, Gaussian blur,
solarize, flip) come from dm-pix; what it lacks (SimCLR's multiplicative
brightness, Inception-style crop boxes, crop-and-resize with a traced box, the
randomly ordered colour jitter) is written here.

References:
  Szegedy et al. 2015, "Going deeper with convolutions" (Inception crops).
  Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), appendix A, and its official code
    ``simclr/tf2/data_util.py``.
  Grill et al. 2020, "Bootstrap your own latent" (BYOL; solarization).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Number

import dm_pix as pix
import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from ssljax.parallel.mesh import like_batch

# dm-pix's rec601 luma weights (TensorFlow's tf.image.rgb_to_grayscale).
GRAYSCALE_WEIGHTS = (0.2989, 0.5870, 0.1140)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _check_image(image, name: str = "image") -> None:
  """Raise a ValueError unless ``image`` is ``[H, W, C]`` with C in {1, 3}."""
  shape = tuple(jnp.shape(image))
  if len(shape) != 3 or shape[-1] not in (1, 3):
    raise ValueError(
        f"{name} must be one image of shape [H, W, C] with C in {{1, 3}}, "
        f"got shape {shape}; batch with jax.vmap or batch_apply.")
  if shape[0] < 1 or shape[1] < 1:
    raise ValueError(f"{name} has an empty spatial dimension: shape {shape}.")


def _check_batch(images, name: str = "images") -> None:
  shape = tuple(jnp.shape(images))
  if len(shape) != 4 or shape[-1] not in (1, 3):
    raise ValueError(
        f"{name} must be a batch of shape [B, H, W, C] with C in {{1, 3}}, "
        f"got shape {shape}.")


def _check_prob(p, name: str = "p") -> None:
  if isinstance(p, Number) and not 0.0 <= p <= 1.0:
    raise ValueError(f"{name} must be a probability in [0, 1], got {p}.")


def _is_static_zero(x) -> bool:
  return isinstance(x, Number) and x == 0


def _uniforms(key, n: int) -> jax.Array:
  """``n`` U[0, 1) draws from ONE PRNG call.

  Each op draws all its random numbers at once: every separate threefry call
  is unrolled into the program, and on CPU each one costs ~0.3-0.5 s of XLA
  compile time under ``vmap``.
  """
  return jax.random.uniform(key, (n,), dtype=jnp.float32)


def _maybe_apply(u, p, fn: Callable, image):
  """``fn(image)`` if the U[0,1) draw ``u < p``, else ``image``.

  A static ``p`` of 0 or 1 skips the branch.
  """
  _check_prob(p)
  if isinstance(p, Number) and p <= 0:
    return image
  if isinstance(p, Number) and p >= 1:
    return fn(image)
  return lax.cond(u < p, fn, lambda x: x, image)


def to_float(images) -> jax.Array:
  """Convert images to float32 in ``[0, 1]``.

  Args:
    images: any shape (``[H, W, C]`` or ``[B, H, W, C]``); ``uint8`` (or any
      integer dtype) is divided by 255, a float input is cast to float32 and
      assumed to lie in ``[0, 1]`` already.

  Returns:
    float32 array of the same shape.
  """
  images = jnp.asarray(images)
  if jnp.issubdtype(images.dtype, jnp.integer) or images.dtype == jnp.bool_:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def normalize_images(x: jax.Array, mean, std) -> jax.Array:
  """``(x - mean) / std`` per channel (last axis), for float images in
  [0, 1]; ``mean`` / ``std`` have 1 or C entries."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if mean.ndim != 1 or mean.shape != std.shape or mean.shape[0] not in (
      1, x.shape[-1]):
    raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} "
                     f"need 1 or {x.shape[-1]} (the channels of images "
                     f"{tuple(x.shape)}) values each; set input_mean / "
                     "input_std to match the dataset's channels.")
  return (x - mean) / std


# ----------------------------------------------------------------------------
# geometry: crops and flips
# ----------------------------------------------------------------------------


def sample_crop_box(key, height: int, width: int, *,
                    area_range: Sequence[float] = (0.08, 1.0),
                    aspect_range: Sequence[float] = (3 / 4, 4 / 3),
                    max_attempts: int = 10):
  """Sample an Inception-style crop box inside a ``height x width`` image.

  Each of ``max_attempts`` proposals (drawn at once, vectorized) takes an area
  fraction ~ U(area_range) and an aspect ratio ``w / h`` log-uniform in
  ``aspect_range``; ``h`` and ``w`` are rounded to whole pixels. The first
  proposal that fits inside the image is used, with its top-left corner uniform
  over the valid positions. If none fits, the fall-back is torchvision's: a
  centred crop of the whole image, its aspect clipped to ``aspect_range``.

  Reference: Szegedy et al. 2015 (Inception); torchvision
  ``RandomResizedCrop.get_params``; SimCLR uses area (0.08, 1), aspect
  (3/4, 4/3).

  Args:
    key: PRNG key.
    height, width: static image size in pixels.
    area_range: ``(min, max)`` fraction of the image area.
    aspect_range: ``(min, max)`` of ``crop_w / crop_h``.
    max_attempts: static number of proposals.

  Returns:
    ``(top, left, crop_h, crop_w)``: int32 scalars with
    ``0 <= top``, ``top + crop_h <= height`` and likewise for the width.
  """
  height, width = int(height), int(width)
  if height < 1 or width < 1:
    raise ValueError(f"image size must be positive, got ({height}, {width}).")
  lo_a, hi_a = (float(a) for a in area_range)
  lo_r, hi_r = (float(r) for r in aspect_range)
  if not 0 < lo_a <= hi_a:
    raise ValueError(f"area_range must satisfy 0 < min <= max, got {area_range}.")
  if not 0 < lo_r <= hi_r:
    raise ValueError(
        f"aspect_range must satisfy 0 < min <= max, got {aspect_range}.")
  if max_attempts < 1:
    raise ValueError(f"max_attempts must be >= 1, got {max_attempts}.")

  u_area, u_ratio, u_top, u_left = _uniforms(key, 4 * max_attempts).reshape(
      4, max_attempts)
  area = height * width * (lo_a + (hi_a - lo_a) * u_area)
  log_lo, log_hi = math.log(lo_r), math.log(hi_r)
  ratio = jnp.exp(log_lo + (log_hi - log_lo) * u_ratio)
  crop_w = jnp.round(jnp.sqrt(area * ratio)).astype(jnp.int32)
  crop_h = jnp.round(jnp.sqrt(area / ratio)).astype(jnp.int32)
  fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
  # Uniform integer offsets in [0, size - crop] for every proposal.
  span_h = jnp.maximum(height - crop_h + 1, 1).astype(jnp.float32)
  span_w = jnp.maximum(width - crop_w + 1, 1).astype(jnp.float32)
  top = jnp.minimum(jnp.floor(u_top * span_h), span_h - 1).astype(jnp.int32)
  left = jnp.minimum(jnp.floor(u_left * span_w), span_w - 1).astype(jnp.int32)

  first = jnp.argmax(fits)  # index of the first True (0 if none)
  any_fits = jnp.any(fits)

  # Fall-back (static): centre crop, aspect clipped to aspect_range.
  in_ratio = width / height
  if in_ratio < lo_r:
    fb_w, fb_h = width, int(round(width / lo_r))
  elif in_ratio > hi_r:
    fb_h, fb_w = height, int(round(height * hi_r))
  else:
    fb_h, fb_w = height, width
  fb_h, fb_w = min(max(fb_h, 1), height), min(max(fb_w, 1), width)
  fb_top, fb_left = (height - fb_h) // 2, (width - fb_w) // 2

  pick = lambda v, fb: jnp.where(any_fits, v[first], jnp.int32(fb))
  return (pick(top, fb_top), pick(left, fb_left), pick(crop_h, fb_h),
          pick(crop_w, fb_w))


def _size(image, size) -> tuple[int, int]:
  if size is None:
    return int(image.shape[0]), int(image.shape[1])
  if isinstance(size, int):
    return size, size
  size = tuple(int(s) for s in size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"size must be an int or (height, width), got {size}.")
  return size


def crop_and_resize(image, box, *, size=None, method: str = "bilinear",
                    antialias: bool = True) -> jax.Array:
  """Crop ``box`` from ``image`` and resize it to ``size`` (traced box is fine).

  Implemented with ``jax.image.scale_and_translate`` (pixel centres at
  ``i + 0.5``), so the box may be a traced value and the output shape stays
  static: output pixel ``i`` samples the input at ``top + (i + 0.5) * crop_h /
  out_h - 0.5``. A box of the whole image with ``size`` = image size returns the
  image; a box resized to its own size returns the exact pixel slice.

  Args:
    image: ``[H, W, C]`` float.
    box: ``(top, left, crop_h, crop_w)`` in pixels (int or float scalars).
    size: output ``(h, w)`` (static); default the input ``(H, W)``.
    method: ``jax.image`` method, default ``"bilinear"``.
    antialias: widen the kernel when down-scaling (like PIL / torchvision v2).

  Returns:
    ``[h, w, C]`` float32.
  """
  _check_image(image)
  image = to_float(image)
  out_h, out_w = _size(image, size)
  top, left, crop_h, crop_w = (jnp.asarray(b, jnp.float32) for b in box)
  scale = jnp.stack([out_h / crop_h, out_w / crop_w])
  translation = -jnp.stack([top, left]) * scale
  out = jax.image.scale_and_translate(
      image, (out_h, out_w, image.shape[-1]), (0, 1), scale, translation,
      method=method, antialias=antialias)
  return out.astype(jnp.float32)


def random_resized_crop(key, image, *, size=None,
                        area_range: Sequence[float] = (0.08, 1.0),
                        aspect_range: Sequence[float] = (3 / 4, 4 / 3),
                        max_attempts: int = 10,
                        antialias: bool = True) -> jax.Array:
  """Inception-style random resized crop (SimCLR's crop).

  Samples a box with :func:`sample_crop_box` and resizes it bilinearly to
  ``size`` with :func:`crop_and_resize`.

  Reference: Szegedy et al. 2015; Chen et al. 2020 (SimCLR) appendix A.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float in [0, 1], C in {1, 3}.
    size: static output ``(h, w)`` or int; default ``(H, W)``.
    area_range, aspect_range, max_attempts: see :func:`sample_crop_box`.
    antialias: see :func:`crop_and_resize`.

  Returns:
    ``[h, w, C]`` float32 in [0, 1].
  """
  _check_image(image)
  box = sample_crop_box(key, image.shape[0], image.shape[1],
                        area_range=area_range, aspect_range=aspect_range,
                        max_attempts=max_attempts)
  return crop_and_resize(image, box, size=size, antialias=antialias)


def random_flip_left_right(key, image, *, p: float = 0.5) -> jax.Array:
  """Mirror the image horizontally (W axis) with probability ``p``.

  Reference: standard; SimCLR appendix A uses p = 0.5.

  Args:
    key: PRNG key.
    image: ``[H, W, C]``.
    p: flip probability.

  Returns:
    ``[H, W, C]``, same dtype.
  """
  _check_image(image)
  return _maybe_apply(_uniforms(key, 1)[0], p, pix.flip_left_right, image)


# ----------------------------------------------------------------------------
# colour
# ----------------------------------------------------------------------------


def adjust_brightness(image, factor) -> jax.Array:
  """SimCLR (v2 code) multiplicative brightness: ``image * factor``.

  dm-pix's (and ``tf.image``'s) ``adjust_brightness`` is *additive*
  (``image + delta``, SimCLR v1); SimCLR's official code defaults to the
  multiplicative form used here (``impl='simclrv2'``).

  Args:
    image: ``[H, W, C]`` float.
    factor: scalar multiplier.

  Returns:
    ``[H, W, C]``; not clipped (may leave [0, 1]).
  """
  _check_image(image)
  return image * jnp.asarray(factor, image.dtype)


def adjust_contrast(image, factor) -> jax.Array:
  """Contrast: ``(image - mean) * factor + mean``, mean per channel over H, W.

  dm-pix / ``tf.image.adjust_contrast`` semantics (per-channel spatial mean);
  torchvision instead uses the mean of the grayscale image.

  Args:
    image: ``[H, W, C]`` float.
    factor: scalar multiplier.

  Returns:
    ``[H, W, C]``; not clipped.
  """
  _check_image(image)
  return pix.adjust_contrast(image, factor)


def adjust_saturation(image, factor) -> jax.Array:
  """Scale the HSV saturation by ``factor`` (clipped to [0, 1]); dm-pix.

  ``tf.image.adjust_saturation`` semantics. Identity for 1-channel images.

  Args:
    image: ``[H, W, C]`` float in [0, 1].
    factor: scalar multiplier.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  if image.shape[-1] == 1:
    return image
  return pix.adjust_saturation(image, factor)


def adjust_hue(image, delta) -> jax.Array:
  """Rotate the HSV hue by ``delta`` (fraction of the circle, wraps); dm-pix.

  ``tf.image.adjust_hue`` semantics: ``delta = 1/3`` maps red to green.
  Identity for 1-channel images.

  Args:
    image: ``[H, W, C]`` float in [0, 1].
    delta: scalar hue shift in [-1, 1] (SimCLR samples U[-0.2 s, 0.2 s]).

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  if image.shape[-1] == 1:
    return image
  return pix.adjust_hue(image, delta)


def _factor_range(strength, name):
  if isinstance(strength, Number) and strength < 0:
    raise ValueError(f"{name} must be >= 0, got {strength}.")
  return jnp.maximum(0.0, 1.0 - strength), 1.0 + strength


def _sample_jitter_params(u, *, brightness, contrast, saturation, hue,
                          random_order):
  """Factors ``(b, c, s, h)`` (float32 [4]) and the op order (int32 [4]).

  ``u``: 8 U[0, 1) draws, the first four give the factors; the order is the
  ``argsort`` of the last four (a uniform random permutation), or ``None``
  (static order b, c, s, h) when ``random_order`` is False.
  """
  params = []
  for i, (strength, name) in enumerate(((brightness, "brightness"),
                                        (contrast, "contrast"),
                                        (saturation, "saturation"))):
    lo, hi = _factor_range(strength, name)
    params.append(lo + (hi - lo) * u[i])
  if isinstance(hue, Number) and not 0 <= hue <= 0.5:
    raise ValueError(f"hue must be in [0, 0.5], got {hue}.")
  params.append(hue * (2.0 * u[3] - 1.0))
  order = jnp.argsort(u[4:8]).astype(jnp.int32) if random_order else None
  return jnp.stack(params).astype(jnp.float32), order


def _apply_jitter(image, params, order, *, active):
  """Apply the four colour ops in ``order`` with a clip after each.

  ``order``: int32 [4] permutation (``lax.switch`` per position; under
  ``vmap`` every branch is computed and selected) or ``None`` for the static
  order brightness, contrast, saturation, hue.
  """
  ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
  branches = [
      (lambda x, op=op, i=i: op(x, params[i])) if on else (lambda x: x)
      for i, (op, on) in enumerate(zip(ops, active))]
  for position in range(4):
    if order is None:
      if not active[position]:
        continue
      image = branches[position](image)
    else:
      image = lax.switch(order[position], branches, image)
    image = jnp.clip(image, 0.0, 1.0)
  return image


def color_jitter(key, image, *, brightness=0.8, contrast=0.8, saturation=0.8,
                 hue=0.2, p: float = 0.8, random_order: bool = True):
  """SimCLR colour jitter: brightness, contrast, saturation, hue in random order.

  With probability ``p`` (else the image is returned unchanged):
  brightness factor ~ U[max(0, 1-b), 1+b] (multiplicative), contrast factor ~
  U[max(0, 1-c), 1+c], saturation factor ~ U[max(0, 1-s), 1+s], hue delta ~
  U[-h, h]; the four ops run in a random permutation (``lax.switch`` per
  position; fixed order b, c, s, h if ``random_order=False``), clipping to
  [0, 1] after each. A strength that is a static 0 skips its op. Saturation
  and hue are identity on 1-channel images.

  Reference: Chen et al. 2020 (SimCLR) appendix A, ``color_jitter_rand`` in the
  official code; with strength s: ``(0.8s, 0.8s, 0.8s, 0.2s)``, p = 0.8.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float in [0, 1], C in {1, 3}.
    brightness, contrast, saturation, hue: jitter strengths (b, c, s, h).
    p: probability of applying the jitter at all.
    random_order: random permutation of the four ops per image.

  Returns:
    ``[H, W, C]`` float32 in [0, 1].
  """
  _check_image(image)
  u = _uniforms(key, 9)
  params, order = _sample_jitter_params(
      u[1:], brightness=brightness, contrast=contrast,
      saturation=saturation, hue=hue, random_order=random_order)
  active = tuple(not _is_static_zero(v)
                 for v in (brightness, contrast, saturation, hue))
  fn = lambda x: _apply_jitter(x, params, order, active=active)
  return _maybe_apply(u[0], p, fn, image)


def to_grayscale(image) -> jax.Array:
  """Luma grayscale keeping the channel count (dm-pix ``rgb_to_grayscale``).

  ITU-R BT.601 weights as dm-pix / TensorFlow use them: ``0.2989 R + 0.5870 G
  + 0.1140 B`` (note 0.2989, not 0.299), tiled to 3 channels. Identity for
  1-channel images.

  Args:
    image: ``[H, W, C]`` float.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  if image.shape[-1] == 1:
    return image
  return pix.rgb_to_grayscale(image, keep_dims=True, luma_standard="rec601")


def random_grayscale(key, image, *, p: float = 0.2) -> jax.Array:
  """Convert to (3-channel) grayscale with probability ``p``.

  Reference: SimCLR appendix A (p = 0.2); weights see :func:`to_grayscale`.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float; identity for C = 1.
    p: probability.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  if image.shape[-1] == 1:
    _check_prob(p)
    return image
  return _maybe_apply(_uniforms(key, 1)[0], p, to_grayscale, image)


def blur_kernel_size(side: int) -> int:
  """SimCLR's blur kernel size for an image side: odd, about side / 10, >= 3.

  The official code passes ``kernel_size = side // 10`` and builds a kernel of
  ``2 * (kernel_size // 2) + 1`` taps (224 -> 23); tiny images get 3.
  """
  side = int(side)
  if side < 1:
    raise ValueError(f"side must be positive, got {side}.")
  return max(3, 2 * ((side // 10) // 2) + 1)


def gaussian_blur(image, sigma, *, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur with zero ("SAME") padding; dm-pix.

  Kernel taps ``exp(-x^2 / (2 sigma^2))`` for ``x`` in ``[-r, r]``, ``r =
  kernel_size // 2``, normalized to sum 1; zero padding as in SimCLR's official
  TF code (borders darken slightly; torchvision reflects instead).

  Args:
    image: ``[H, W, C]`` float.
    sigma: scalar standard deviation in pixels (may be traced).
    kernel_size: static odd int.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  _check_kernel_size(kernel_size)
  return pix.gaussian_blur(image, sigma, kernel_size, padding="SAME")


def _check_kernel_size(kernel_size):
  if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 != 1:
    raise ValueError(
        f"kernel_size must be a static odd positive int, got {kernel_size!r}.")


def random_gaussian_blur(key, image, *, kernel_size: int,
                         sigma_range: Sequence[float] = (0.1, 2.0),
                         p: float = 0.5) -> jax.Array:
  """Gaussian blur with sigma ~ U(sigma_range), applied with probability ``p``.

  Reference: SimCLR appendix A (kernel 10% of the side, sigma in [0.1, 2],
  p = 0.5); BYOL uses p = 1.0 / 0.1 for its two views.

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float.
    kernel_size: static odd int, e.g. ``blur_kernel_size(H)``.
    sigma_range: ``(min, max)`` sigma in pixels.
    p: probability.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  _check_kernel_size(kernel_size)
  lo, hi = sigma_range
  if isinstance(lo, Number) and not 0 < lo <= hi:
    raise ValueError(f"sigma_range must satisfy 0 < min <= max, got {sigma_range}.")
  u = _uniforms(key, 2)
  sigma = lo + (hi - lo) * u[1]
  fn = lambda x: gaussian_blur(x, sigma, kernel_size=kernel_size)
  return _maybe_apply(u[0], p, fn, image)


def random_solarize(key, image, *, threshold: float = 0.5,
                    p: float = 0.0) -> jax.Array:
  """Solarize (``x < threshold ? x : 1 - x``, dm-pix) with probability ``p``.

  Reference: BYOL (Grill et al. 2020) uses p = 0 / 0.2 on its two views;
  SimCLR does not solarize (default p = 0).

  Args:
    key: PRNG key.
    image: ``[H, W, C]`` float in [0, 1].
    threshold: inversion threshold.
    p: probability.

  Returns:
    ``[H, W, C]``.
  """
  _check_image(image)
  return _maybe_apply(_uniforms(key, 1)[0], p,
                      lambda x: pix.solarize(x, threshold), image)


# ----------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------


def _explicit_batch_axis(images):
  """The explicit mesh axis the leading dim of ``images`` is sharded over."""
  try:
    sharding = jax.typeof(images).sharding
  except Exception:  # pragma: no cover - very old JAX
    return None
  mesh = getattr(sharding, "mesh", None)
  if mesh is None or mesh.empty:
    return None
  spec = sharding.spec
  if len(spec) == 0 or spec[0] is None:
    return None
  return spec[0]


def map_examples(fn: Callable, keys, images):
  """``jax.vmap(fn)(keys, images)``, run per shard if the batch is sharded.

  Under an explicit-sharding mesh (``make_data_mesh(explicit=True)``) some
  vmapped primitives are sharding type errors (the batching rule of dm-pix's
  depthwise convolution reshapes the sharded batch axis into the feature
  axis). Per-example augmentation needs no communication, so on an explicitly
  sharded batch the ``vmap`` runs inside ``jax.shard_map`` over the batch
  axis, on each device's local examples; the keys first get the batch's
  sharding (``like_batch``). Elsewhere (no mesh, ``Auto`` axes) it is a plain
  ``vmap`` and the compiler propagates the sharding.

  Args:
    fn: ``fn(key, image) -> pytree`` for one example.
    keys: ``[B, ...]`` PRNG keys (leading axis = batch).
    images: ``[B, ...]``.

  Returns:
    ``fn``'s outputs stacked over the batch (leading axis ``B``).
  """
  mapped = jax.vmap(fn)
  axis = _explicit_batch_axis(images)
  if axis is None:
    return mapped(keys, images)
  keys = like_batch(keys, images)
  mesh = jax.typeof(images).sharding.mesh
  spec = P(axis)
  # check_vma=False: no collectives inside, and JAX 0.10's varying-axes check
  # rejects jnp.clip (clamp with unvarying scalar bounds) under lax.cond.
  return jax.shard_map(mapped, mesh=mesh, in_specs=(spec, spec),
                       out_specs=spec, check_vma=False)(keys, images)


def batch_apply(fn: Callable, key, images, **kwargs):
  """``jax.vmap`` a key-first op ``fn(key, image, **kwargs)`` over a batch.

  One key per example (``jax.random.split(key, B)``); the keys get the batch's
  sharding (:func:`ssljax.parallel.mesh.like_batch`) and an explicitly sharded
  batch is augmented shard by shard (:func:`map_examples`).

  Args:
    fn: e.g. ``random_resized_crop`` or ``simclr_view``.
    key: PRNG key.
    images: ``[B, H, W, C]``.
    **kwargs: keyword hyperparameters passed to ``fn``.

  Returns:
    ``fn``'s output stacked over the batch, ``[B, ...]``.
  """
  _check_batch(images)
  keys = jax.random.split(key, images.shape[0])
  keys = like_batch(keys, images)  # (map_examples re-checks; a no-op then)
  return map_examples(lambda k, x: fn(k, x, **kwargs), keys, images)
