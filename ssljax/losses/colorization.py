"""Colorization losses: the class-rebalanced soft-target cross-entropy of
Zhang, Isola & Efros 2016 ("Colorful image colorization", Eq. 2), its
rebalancing weights (Sec. 2.2), and the colour-cluster cross-entropy of video
colorization (Vondrick et al. 2018, "Tracking emerges by colorizing videos").

Pure functions of arrays (jnp; the prior and the weights, host constants
computed once, in numpy): no Flax, no state, no other ssljax module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PROB_FLOOR", "bin_accuracy", "colorization_loss",
           "rebalance_weights", "smooth_prior", "video_colorization_loss"]

#: Probabilities are clipped here before the log of
#: :func:`video_colorization_loss`.
PROB_FLOOR = 1e-6


def colorization_loss(logits, targets, *, class_weights=None) -> jax.Array:
  """Class-rebalanced multinomial cross-entropy (Zhang et al. 2016, Eq. 2).

  ``-(1 / P) sum_p w[argmax_q Z_pq] sum_q Z_pq log softmax(logits_p)_q``
  over the ``P`` pixels of the batch.

  Args:
    logits: ``[..., Q]`` predicted scores (any leading shape, e.g.
      ``[B, h, w, Q]``).
    targets: ``[..., Q]`` soft targets ``Z``
      (:func:`ssljax.augment.soft_encode_ab`).
    class_weights: ``[Q]`` (:func:`rebalance_weights`) or ``None`` (all 1).

  Returns:
    scalar float32.
  """
  if logits.shape != targets.shape or logits.ndim < 1:
    raise ValueError(f"logits and targets must both be [..., Q] with equal "
                     f"shapes; got {logits.shape} and {targets.shape}.")
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  ce = -jnp.sum(targets.astype(jnp.float32) * logp, axis=-1)
  if class_weights is not None:
    w = jnp.asarray(class_weights, jnp.float32)
    if w.shape != (logits.shape[-1],):
      raise ValueError(f"class_weights must be [Q={logits.shape[-1]}]; got "
                       f"{w.shape}.")
    ce = ce * w[jnp.argmax(targets, axis=-1)]
  return jnp.mean(ce)


def bin_accuracy(logits, targets) -> jax.Array:
  """Fraction of pixels whose top-scoring bin is the target's most likely
  (= nearest) bin; ``logits`` and ``targets`` ``[..., Q]``."""
  if logits.shape != targets.shape:
    raise ValueError(f"logits and targets must have equal shapes [..., Q]; "
                     f"got {logits.shape} and {targets.shape}.")
  return jnp.mean((jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
                  .astype(jnp.float32))


def smooth_prior(counts, bins, *, sigma: float = 5.0) -> np.ndarray:
  """The empirical bin distribution smoothed by a Gaussian over the ab plane
  (Zhang et al. 2016, Sec. 2.2):
  ``p~_q ∝ sum_r p_r exp(-|c_q - c_r|^2 / (2 sigma^2))``.

  Args:
    counts: ``[Q]`` non-negative pixel counts per bin.
    bins: ``[Q, 2]`` ab centres.
    sigma: the Gaussian's width in ab units (0: no smoothing).

  Returns:
    float64 ``[Q]``, summing to 1.
  """
  counts = np.asarray(counts, np.float64)
  bins = np.asarray(bins, np.float64)
  if counts.ndim != 1 or bins.shape != (counts.shape[0], 2):
    raise ValueError(f"counts [Q] and bins [Q, 2] must agree; got "
                     f"{counts.shape} and {bins.shape}.")
  if counts.sum() <= 0 or (counts < 0).any():
    raise ValueError("counts must be non-negative with a positive sum.")
  p = counts / counts.sum()
  if sigma > 0:
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    p = np.exp(-d2 / (2.0 * sigma ** 2)) @ p
  return p / p.sum()


def rebalance_weights(prior, *, lam: float = 0.5) -> np.ndarray:
  """Class-rebalancing weights ``w ∝ ((1 - lam) p~ + lam / Q)^-1``,
  normalized so that ``E_p~[w] = sum_q p~_q w_q = 1`` (Zhang et al. 2016,
  Eq. 4).

  Rare colours weigh more; ``lam = 1`` gives ``w = 1`` (no rebalancing),
  ``lam = 0`` inverts the prior.

  Args:
    prior: ``[Q]`` a distribution (:func:`smooth_prior`).
    lam: the mix with the uniform distribution, in ``[0, 1]`` (0.5).

  Returns:
    float32 ``[Q]``.
  """
  prior = np.asarray(prior, np.float64)
  if prior.ndim != 1 or (prior < 0).any() or not np.isclose(prior.sum(), 1.0):
    raise ValueError(f"prior must be a distribution [Q]; got shape "
                     f"{prior.shape}, sum {prior.sum():.4g}.")
  if not 0.0 <= lam <= 1.0:
    raise ValueError(f"lam must lie in [0, 1]; got {lam}.")
  mix = (1.0 - lam) * prior + lam / prior.shape[0]
  if (mix <= 0).any():
    raise ValueError("lam = 0 needs a prior without zeros (smooth it).")
  w = 1.0 / mix
  return (w / np.sum(prior * w)).astype(np.float32)


def video_colorization_loss(probs, targets) -> jax.Array:
  """Mean cross-entropy ``-log y_j[c*_j]`` of predicted colour distributions
  against the true colour clusters (Vondrick et al. 2018, Eq. 2).

  Probabilities are floored at :data:`PROB_FLOOR`: a colour no reference
  pixel has costs ``-log 1e-6 = 13.8``, not infinity.

  Args:
    probs: ``[..., K]`` distributions over the ``K`` colour clusters (the
      attention-weighted reference colours ``y_j = sum_i A_ij c_i``).
    targets: integer ``[...]`` the target pixels' own clusters.

  Returns:
    scalar float32.
  """
  if probs.shape[:-1] != targets.shape:
    raise ValueError(f"probs [..., K] and targets [...] must agree; got "
                     f"{probs.shape} and {targets.shape}.")
  p = jnp.take_along_axis(probs.astype(jnp.float32),
                          targets[..., None].astype(jnp.int32), -1)
  return -jnp.mean(jnp.log(jnp.maximum(p[..., 0], PROB_FLOOR)))
