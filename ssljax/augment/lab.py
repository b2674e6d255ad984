"""CIE L*a*b* colour and the quantized colour spaces of colorization.

* :func:`rgb_to_lab` / :func:`lab_to_rgb`: sRGB (IEC 61966-2-1 gamma
  companding, primaries of Rec. 709) <-> CIE 1976 L*a*b* with the D65 white
  point (2 degree observer), the conversion scikit-image's ``rgb2lab`` does.
  Float RGB in ``[0, 1]`` (integer images are divided by 255), ``L`` in
  ``[0, 100]``; any leading shape ``[..., 3]``; pure ``jnp``, so they jit,
  vmap and differentiate.
* :func:`ab_gamut_bins`: the ``Q`` centres of the ab grid cells (spacing 10
  over ``[-110, 110]^2``) that sRGB colours fall in (Zhang et al. 2016,
  "Colorful image colorization", use the 313 bins of ImageNet's gamut; the
  sRGB gamut has 261).
* :func:`soft_encode_ab`: each ab value -> its ``k = 5`` nearest bins with
  Gaussian weights (sigma 5), normalized: the soft target ``Z`` of the paper.
* :func:`annealed_mean`: ``H(Z) = E[f_T(Z)]``, ``f_T(z) ∝ exp(log z / T)``
  (T = 0.38): the paper's point estimate of ab from a distribution over bins.
* :func:`quantize_l` / :func:`l_bin_centers`: ``L`` in 50 bins of width 2
  (the ab -> L half of the split-brain autoencoder, Zhang et al. 2017).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "AB_GRID",
    "AB_RANGE",
    "D65_WHITE",
    "SRGB_TO_XYZ",
    "XYZ_TO_SRGB",
    "ab_gamut_bins",
    "annealed_mean",
    "l_bin_centers",
    "lab_to_rgb",
    "nearest_ab_bin",
    "quantize_l",
    "rgb_to_lab",
    "soft_encode_ab",
]

#: Linear sRGB -> CIE XYZ (D65), IEC 61966-2-1; its rows sum to the white.
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
#: CIE XYZ -> linear sRGB: the exact inverse of :data:`SRGB_TO_XYZ`.
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
#: The D65 reference white (2 degree observer), ``Y = 1``.
D65_WHITE = (0.95047, 1.0, 1.08883)

_DELTA = 6.0 / 29.0

#: ab grid spacing and half-range of Zhang et al. 2016.
AB_GRID = 10.0
AB_RANGE = 110.0


def _matvec(m, v):
  """``m @ v`` over the last axis of ``v`` as explicit products and sums: a
  3x3 ``dot`` could run in reduced precision (TF32) on accelerators."""
  return [m[i][0] * v[..., 0] + m[i][1] * v[..., 1] + m[i][2] * v[..., 2]
          for i in range(3)]


def _check_last3(x, name: str) -> None:
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"{name} must have 3 channels in the last axis [..., 3]; "
                     f"got shape {x.shape}.")


def _rgb_to_lab(rgb, xp):
  # sRGB companding -> linear light. The power's base is clamped so that the
  # branch not taken stays finite (no NaN gradients through ``where``).
  lin = xp.where(rgb <= 0.04045, rgb / 12.92,
                 ((xp.maximum(rgb, 0.04045) + 0.055) / 1.055) ** 2.4)
  x, y, z = _matvec(SRGB_TO_XYZ.tolist(), lin)
  t = xp.stack([x / D65_WHITE[0], y / D65_WHITE[1], z / D65_WHITE[2]], -1)
  f = xp.where(t > _DELTA ** 3, xp.cbrt(xp.maximum(t, _DELTA ** 3)),
               t / (3 * _DELTA ** 2) + 4.0 / 29.0)
  big_l = 116.0 * f[..., 1] - 16.0
  a = 500.0 * (f[..., 0] - f[..., 1])
  b = 200.0 * (f[..., 1] - f[..., 2])
  return xp.stack([big_l, a, b], -1)


def rgb_to_lab(rgb) -> jax.Array:
  """sRGB -> CIE L*a*b* (D65).

  Args:
    rgb: ``[..., 3]``, float in ``[0, 1]`` or an integer image (divided by
      255).

  Returns:
    float32 ``[..., 3]``: ``L`` in ``[0, 100]``, ``a`` and ``b`` (about
    ``[-86, 98]`` and ``[-108, 95]`` over the sRGB gamut). White -> (100, 0,
    0), black -> (0, 0, 0), sRGB red -> (53.24, 80.09, 67.20).
  """
  rgb = jnp.asarray(rgb)
  _check_last3(rgb, "rgb")
  if jnp.issubdtype(rgb.dtype, jnp.integer):
    rgb = rgb.astype(jnp.float32) / 255.0
  return _rgb_to_lab(rgb.astype(jnp.float32), jnp)


def lab_to_rgb(lab, *, clip: bool = True) -> jax.Array:
  """CIE L*a*b* (D65) -> sRGB, the inverse of :func:`rgb_to_lab`.

  Args:
    lab: ``[..., 3]`` float (``L`` in ``[0, 100]``).
    clip: clip to ``[0, 1]`` (Lab values outside the sRGB gamut, e.g. a
      predicted ab with the wrong lightness, have no exact sRGB colour).

  Returns:
    float32 ``[..., 3]`` sRGB.
  """
  lab = jnp.asarray(lab, jnp.float32)
  _check_last3(lab, "lab")
  fy = (lab[..., 0] + 16.0) / 116.0
  fx = fy + lab[..., 1] / 500.0
  fz = fy - lab[..., 2] / 200.0
  f = jnp.stack([fx, fy, fz], -1)
  t = jnp.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0))
  xyz = t * jnp.asarray(D65_WHITE, jnp.float32)
  lin = jnp.stack(_matvec(XYZ_TO_SRGB.tolist(), xyz), -1)
  rgb = jnp.where(lin <= 0.0031308, 12.92 * lin,
                  1.055 * jnp.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055)
  return jnp.clip(rgb, 0.0, 1.0) if clip else rgb


# ---------------------------------------------------------------------------
# The quantized ab gamut.


def _srgb_samples() -> np.ndarray:
  """Every 8-bit colour on the six faces of the RGB cube plus the interior at
  every 8th level (float64 ``[M, 3]``): the ab extremes lie on the cube's
  surface; this set hits exactly the bins that all 256^3 colours hit (checked
  once, 261 bins at spacing 10; enumerating the cube takes ~20 s)."""
  v = np.arange(256) / 255.0
  g, b = np.meshgrid(v, v, indexing="ij")
  faces = []
  for value in (0.0, 1.0):
    for axis in range(3):
      cols = [g, b]
      cols.insert(axis, np.full_like(g, value))
      faces.append(np.stack(cols, -1).reshape(-1, 3))
  w = np.arange(0, 256, 8) / 255.0
  inner = np.stack(np.meshgrid(w, w, w, indexing="ij"), -1).reshape(-1, 3)
  return np.concatenate(faces + [inner])


@functools.lru_cache(maxsize=8)
def _gamut_bins(grid: float, ab_range: float) -> np.ndarray:
  n = int(round(ab_range / grid))
  ab = _rgb_to_lab(_srgb_samples(), np)[:, 1:]
  idx = np.round(ab / grid).astype(np.int64) + n
  inside = ((idx >= 0) & (idx <= 2 * n)).all(axis=1)
  hit = np.zeros((2 * n + 1, 2 * n + 1), bool)
  hit[idx[inside, 0], idx[inside, 1]] = True
  ia, ib = np.nonzero(hit)                      # row-major: by a, then b
  centers = np.stack([ia - n, ib - n], -1) * grid
  centers.setflags(write=False)
  return centers.astype(np.float32)


def ab_gamut_bins(grid: float = AB_GRID, ab_range: float = AB_RANGE
                  ) -> np.ndarray:
  """The in-gamut ab bins: float32 ``[Q, 2]`` centres ``(a, b)``.

  The centres of the cells of a square grid (spacing ``grid``, centres at
  multiples of ``grid`` in ``[-ab_range, ab_range]``) that the ab values of
  sRGB colours round to, sorted by ``a`` then ``b``. Deterministic (no
  random sampling); ``Q = 261`` at the default spacing 10 (Zhang et al.'s 313
  is the gamut of ImageNet's JPEGs, of which sRGB is a part). Contains the
  neutral bin ``(0, 0)``.
  """
  if grid <= 0 or ab_range < grid:
    raise ValueError(f"need grid > 0 and ab_range >= grid; got grid={grid}, "
                     f"ab_range={ab_range}.")
  return np.array(_gamut_bins(float(grid), float(ab_range)))


def _check_ab(ab, bins):
  ab = jnp.asarray(ab, jnp.float32)
  bins = jnp.asarray(bins, jnp.float32)
  if ab.ndim < 1 or ab.shape[-1] != 2:
    raise ValueError(f"ab must be [..., 2]; got shape {ab.shape}.")
  if bins.ndim != 2 or bins.shape[-1] != 2:
    raise ValueError(f"bins must be [Q, 2]; got shape {bins.shape}.")
  return ab, bins


def _sq_distances(ab, bins):
  """Squared distances ``[..., Q]`` (explicit differences: exact, unlike the
  ``|x|^2 - 2 x.c + |c|^2`` expansion)."""
  return ((ab[..., None, 0] - bins[:, 0]) ** 2
          + (ab[..., None, 1] - bins[:, 1]) ** 2)


def nearest_ab_bin(ab, bins) -> jax.Array:
  """Index (int32 ``[...]``) of the nearest bin of ``bins [Q, 2]`` to each
  ``ab [..., 2]`` (the hard quantization)."""
  ab, bins = _check_ab(ab, bins)
  return jnp.argmin(_sq_distances(ab, bins), axis=-1).astype(jnp.int32)


def soft_encode_ab(ab, bins, *, num_neighbors: int = 5, sigma: float = 5.0
                   ) -> jax.Array:
  """Soft-encode ab values over the bins (Zhang et al. 2016, Sec. 2.1).

  Each value's ``num_neighbors`` nearest bins get weights
  ``exp(-d^2 / (2 sigma^2))``, normalized to sum 1; all other bins get 0.

  Args:
    ab: ``[..., 2]``.
    bins: ``[Q, 2]`` bin centres (:func:`ab_gamut_bins`).
    num_neighbors: ``k`` (5 in the paper).
    sigma: Gaussian width in ab units (5 in the paper).

  Returns:
    float32 ``[..., Q]``, each row summing to 1.
  """
  ab, bins = _check_ab(ab, bins)
  q = bins.shape[0]
  if not 1 <= num_neighbors <= q:
    raise ValueError(f"num_neighbors must lie in [1, Q={q}]; got {num_neighbors}.")
  if sigma <= 0:
    raise ValueError(f"sigma must be > 0; got {sigma}.")
  d2 = _sq_distances(ab, bins)
  # The k nearest bins by k rounds of argmin (ties: the lower index, as
  # lax.top_k): on XLA:CPU, top_k with indices over [P, Q] is ~7x slower.
  iota = jnp.arange(q)
  chosen = jnp.zeros(d2.shape, bool)
  rest = d2
  for _ in range(num_neighbors):
    hit = iota == jnp.argmin(rest, axis=-1)[..., None]
    chosen = chosen | hit
    rest = jnp.where(hit, jnp.inf, rest)
  # Relative to the nearest bin: the normalization cancels the shift and no
  # weight underflows to 0 for values far from every bin.
  nearest = jnp.min(d2, axis=-1, keepdims=True)
  w = jnp.where(chosen, jnp.exp(-(d2 - nearest) / (2.0 * sigma ** 2)), 0.0)
  return w / jnp.sum(w, axis=-1, keepdims=True)


def annealed_mean(probs, bins, *, temperature: float = 0.38,
                  from_logits: bool = False) -> jax.Array:
  """Annealed-mean ab of a distribution over the bins (Zhang et al. 2016,
  Eq. 5): ``H(Z) = sum_q f_T(Z)_q c_q`` with ``f_T(z) = exp(log z / T) /
  sum exp(log z / T)``.

  ``T = 1`` is the mean of ``Z``; ``T -> 0`` tends to its mode; the paper's
  ``T = 0.38`` keeps the mean's spatial coherence and some of the mode's
  vibrancy.

  Args:
    probs: ``[..., Q]`` probabilities (or logits with ``from_logits``: then
      ``f_T = softmax(logits / T)``).
    bins: ``[Q, 2]`` bin centres.
    temperature: ``T > 0``.

  Returns:
    float32 ``[..., 2]`` ab.
  """
  probs = jnp.asarray(probs, jnp.float32)
  bins = jnp.asarray(bins, jnp.float32)
  if probs.ndim < 1 or bins.ndim != 2 or probs.shape[-1] != bins.shape[0]:
    raise ValueError(f"probs [..., Q] and bins [Q, 2] must agree on Q; got "
                     f"{probs.shape} and {bins.shape}.")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0; got {temperature}.")
  log_z = (jax.nn.log_softmax(probs, axis=-1) if from_logits
           else jnp.log(jnp.maximum(probs, 1e-30)))
  f = jax.nn.softmax(log_z / temperature, axis=-1)
  return jnp.stack([jnp.sum(f * bins[:, 0], -1), jnp.sum(f * bins[:, 1], -1)],
                   -1)


def l_bin_centers(num_bins: int = 50) -> np.ndarray:
  """Centres (float32 ``[num_bins]``) of ``num_bins`` equal bins over ``L`` in
  ``[0, 100]`` (``1, 3, ..., 99`` for 50 bins of width 2)."""
  width = 100.0 / num_bins
  return ((np.arange(num_bins) + 0.5) * width).astype(np.float32)


def quantize_l(lightness, *, num_bins: int = 50) -> jax.Array:
  """The bin (int32) of each ``L`` value in ``num_bins`` equal bins over
  ``[0, 100]``; values outside go to the first / last bin."""
  lightness = jnp.asarray(lightness, jnp.float32)
  if num_bins < 1:
    raise ValueError(f"num_bins must be >= 1; got {num_bins}.")
  idx = jnp.floor(lightness * (num_bins / 100.0)).astype(jnp.int32)
  return jnp.clip(idx, 0, num_bins - 1)
