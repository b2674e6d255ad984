"""Robustness to common corruptions: on-device corruption ops and an accuracy
table over corruptions and severities.

Corruptions work on uint8 image batches ``[B, H, W, C]`` (C = 1 or 3) at
severity 0 (identity) to 5 and return uint8 (rounded, clipped to [0, 255]).
The noise, blur and contrast constants are CIFAR-10-C's (Hendrycks &
Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ``make_cifar_c.py``), sized for 28-32 pixel
images; occlusion is a random square cutout (DeVries & Taylor 2017,
"Improved Regularization of Convolutional Neural Networks with Cutout"),
rotation a small random-sign rotation with bilinear interpolation.

Each op is jitted once per corruption (the severity is traced); per-example
randomness comes from ``jax.random.split(key, B)``, batched with
:func:`ssljax.augment.map_examples` (so sharded batches stay sharded).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment import adjust_contrast, gaussian_blur, map_examples, to_float

#: Per-severity parameter of each corruption (severity s uses index s - 1).
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std, images in [0, 1]
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),        # sigma, pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),           # contrast factor
    "occlusion": (0.1, 0.2, 0.3, 0.4, 0.5),            # square side / min(H, W)
    "rotation": (6.0, 12.0, 18.0, 24.0, 30.0),         # |angle|, degrees
}
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMS)
MAX_SEVERITY = 5


@functools.partial(jax.jit, static_argnames="mode")
def rotate(image, degrees, *, mode: str = "constant", cval: float = 0.0
           ) -> jax.Array:
  """Rotate one image ``[H, W, C]`` counter-clockwise about its center.

  Bilinear interpolation (``jax.scipy.ndimage.map_coordinates``, order 1);
  pixels from outside the image are ``cval`` (``mode="constant"``) or follow
  ``mode`` (``"nearest"``, ``"reflect"``, ``"mirror"``, ``"wrap"``). The center
  is ``((H - 1) / 2, (W - 1) / 2)``, so on a square image 90 degrees is
  ``np.rot90(image)`` (up to float rounding).

  Args:
    image: ``[H, W, C]`` float.
    degrees: scalar angle (may be traced).
  """
  image = jnp.asarray(image)
  h, w = image.shape[:2]
  theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                      jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
  # output pixel (y, x) samples the input at the inverse rotation.
  rows = cy + cos * y + sin * x
  cols = cx + cos * x - sin * y
  sample = lambda ch: jax.scipy.ndimage.map_coordinates(
      ch, [rows, cols], order=1, mode=mode, cval=cval)
  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)


def _noise(key, image, std):
  return image + std * jax.random.normal(key, image.shape, image.dtype)


_BLUR_RADIUS = int(4 * max(SEVERITY_PARAMS["gaussian_blur"]) + 0.5)


def _blur(key, image, sigma):
  # Edge padding (as ImageNet-C's skimage blur, mode "nearest") instead of the
  # augmentation's zero padding, which would darken the borders; radius 4
  # sigma_max (skimage's truncate=4).
  del key
  r = _BLUR_RADIUS
  padded = jnp.pad(image, ((r, r), (r, r), (0, 0)), mode="edge")
  return gaussian_blur(padded, sigma, kernel_size=2 * r + 1)[r:-r, r:-r]


def _contrast(key, image, factor):
  del key
  return adjust_contrast(image, factor)


def _occlusion(key, image, fraction):
  h, w = image.shape[:2]
  side = jnp.round(fraction * min(h, w)).astype(jnp.int32)
  u = jax.random.uniform(key, (2,))
  top = jnp.floor(u[0] * (h - side + 1)).astype(jnp.int32)
  left = jnp.floor(u[1] * (w - side + 1)).astype(jnp.int32)
  rows = jnp.arange(h)[:, None, None]
  cols = jnp.arange(w)[None, :, None]
  inside = ((rows >= top) & (rows < top + side) &
            (cols >= left) & (cols < left + side))
  return jnp.where(inside, 0.0, image)


def _rotation(key, image, degrees):
  sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
  return rotate(image, sign * degrees)


_OPS = {"gaussian_noise": _noise, "gaussian_blur": _blur,
        "contrast": _contrast, "occlusion": _occlusion, "rotation": _rotation}


@functools.partial(jax.jit, static_argnames="name")
def _corrupt(name, key, images, severity):
  x = to_float(images)
  value = jnp.asarray(SEVERITY_PARAMS[name], jnp.float32)[
      jnp.clip(severity - 1, 0, MAX_SEVERITY - 1)]
  keys = jax.random.split(key, images.shape[0])
  out = map_examples(lambda k, im: _OPS[name](k, im, value), keys, x)
  out = jnp.round(jnp.clip(out, 0.0, 1.0) * 255.0).astype(jnp.uint8)
  return jnp.where(severity > 0, out, jnp.asarray(images, jnp.uint8))


def corrupt(name: str, key, images, severity) -> jax.Array:
  """Corrupt a uint8 batch ``[B, H, W, C]`` with ``name`` at ``severity``.

  Args:
    name: one of :data:`CORRUPTIONS` -- ``gaussian_noise`` (additive N(0, c^2)
      on [0, 1] pixels), ``gaussian_blur`` (sigma c, edge padding),
      ``contrast`` (``(x - m) c + m``, m the per-channel spatial mean),
      ``occlusion`` (a zeroed square of side ``round(c min(H, W))`` at a
      uniformly random position inside the image), ``rotation`` (by +-c
      degrees, random sign, black corners); c from :data:`SEVERITY_PARAMS`.
    key: PRNG key (split per example).
    images: ``[B, H, W, C]`` uint8.
    severity: int 0..5 (may be traced); 0 returns the images unchanged.

  Returns:
    ``[B, H, W, C]`` uint8.
  """
  if name not in _OPS:
    raise ValueError(f"unknown corruption {name!r}; choose from {CORRUPTIONS}.")
  shape = tuple(np.shape(images))
  if len(shape) != 4 or shape[-1] not in (1, 3):
    raise ValueError(f"images must be [B, H, W, C] with C in {{1, 3}}; got "
                     f"{shape}.")
  if isinstance(severity, (int, np.integer)) and not 0 <= severity <= MAX_SEVERITY:
    raise ValueError(f"severity must be in 0..{MAX_SEVERITY}; got {severity}.")
  if isinstance(severity, (int, np.integer)) and severity == 0:
    return jnp.asarray(images)
  return _corrupt(name, key, images, jnp.asarray(severity, jnp.int32))


def corrupt_dataset(name: str, key, images, severity: int, *,
                    batch_size: int = 1000) -> np.ndarray:
  """:func:`corrupt` a whole uint8 array ``[N, H, W, C]`` batch by batch.

  Batch ``i`` uses ``fold_in(key, i)``; the last partial batch is padded so
  one compiled program serves all. Returns a NumPy uint8 array.
  """
  images = np.asarray(images)
  n = len(images)
  batch_size = max(1, min(batch_size, n))
  out = []
  for i, start in enumerate(range(0, n, batch_size)):
    chunk = images[start:start + batch_size]
    real = len(chunk)
    if real < batch_size:
      chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - real, 0)])
    out.append(np.asarray(corrupt(name, jax.random.fold_in(key, i), chunk,
                                  severity))[:real])
  return np.concatenate(out)


def accuracy_fn(predict_fn: Callable, labels, *, batch_size: int = 1000
                ) -> Callable[[np.ndarray], float]:
  """``accuracy_of(images) = mean(predict_fn(images) == labels)``, batched.

  ``predict_fn(uint8 images [b, H, W, C]) -> [b]`` class ids (e.g. a frozen
  encoder followed by a linear probe's argmax).
  """
  labels = np.asarray(labels)

  def accuracy_of(images):
    preds = np.concatenate([np.asarray(predict_fn(images[i:i + batch_size]))
                            for i in range(0, len(images), batch_size)])
    return float(np.mean(preds == labels))

  return accuracy_of


def robustness_table(accuracy_of: Callable[[np.ndarray], float], images, *,
                     corruptions: Sequence[str] = CORRUPTIONS,
                     severities: Sequence[int] = (1, 2, 3, 4, 5),
                     seed: int = 0, batch_size: int = 1000) -> dict:
  """Clean and corrupted accuracies of a classifier.

  Args:
    accuracy_of: ``accuracy_of(uint8 images [N, H, W, C]) -> float``, the
      accuracy on the test set with its images replaced (same order); see
      :func:`accuracy_fn`.
    images: the clean test images ``[N, H, W, C]`` uint8.
    corruptions: names from :data:`CORRUPTIONS`.
    severities: ints in 1..5.
    seed: corruption ``c``, severity ``s`` draws from
      ``fold_in(fold_in(key(seed), CORRUPTIONS.index(c)), s)``.
    batch_size: corruption batch size (see :func:`corrupt_dataset`).

  Returns:
    ``{"clean": acc, "accuracy": {name: {severity: acc}},
    "relative": {name: {severity: acc / clean}},
    "mean_accuracy": {name: mean over severities},
    "mean_relative": mean of all relative accuracies}``
    (relative accuracies are nan when the clean accuracy is 0).
  """
  for name in corruptions:
    if name not in _OPS:
      raise ValueError(f"unknown corruption {name!r}; choose from {CORRUPTIONS}.")
  images = np.asarray(images)
  clean = float(accuracy_of(images))
  root = jax.random.key(seed)
  acc, rel = {}, {}
  for name in corruptions:
    key = jax.random.fold_in(root, CORRUPTIONS.index(name))
    acc[name], rel[name] = {}, {}
    for s in severities:
      corrupted = corrupt_dataset(name, jax.random.fold_in(key, s), images,
                                  int(s), batch_size=batch_size)
      a = float(accuracy_of(corrupted))
      acc[name][int(s)] = a
      rel[name][int(s)] = a / clean if clean > 0 else math.nan
  return {"clean": clean, "accuracy": acc, "relative": rel,
          "mean_accuracy": {k: float(np.mean(list(v.values())))
                            for k, v in acc.items()},
          "mean_relative": float(np.mean([r for v in rel.values()
                                          for r in v.values()]))}


def format_robustness_table(result: dict) -> str:
  """A text table of :func:`robustness_table`'s accuracies (percent)."""
  sev = sorted({s for v in result["accuracy"].values() for s in v})
  head = f"{'corruption':<16}" + "".join(f"{'s' + str(s):>8}" for s in sev)
  lines = [head + f"{'mean':>8}", "-" * (len(head) + 8),
           f"{'clean':<16}" + f"{100 * result['clean']:>7.2f}%"]
  for name, row in result["accuracy"].items():
    cells = "".join(f"{100 * row[s]:>7.2f}%" if s in row else f"{'':>8}"
                    for s in sev)
    lines.append(f"{name:<16}{cells}{100 * result['mean_accuracy'][name]:>7.2f}%")
  return "\n".join(lines)
