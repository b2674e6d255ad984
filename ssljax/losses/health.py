"""Representation health: alignment, uniformity, effective rank, collapse.

Pure ``jnp`` functions on feature matrices ``[N, D]``, each jitted (one
compiled program per input shape; they also nest in an outer ``jax.jit``).
They sit with the losses, at the bottom of the layers, because both the
training steps (the collapse monitors BYOL, SimSiam, Barlow Twins and VICReg
log every step, ``ssljax.methods.twoview``) and the evaluation
(``ssljax.eval.health`` re-exports them) use them.

References:
  Wang & Isola 2020, "Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere" (alignment,
    uniformity; their reference code ``align_loss`` / ``uniform_loss``).
  Roy & Vetterli 2007, "The effective rank: a measure of effective
    dimensionality" (effective rank).
  Chen & He 2021, "Exploring Simple Siamese Representation Learning"
    (SimSiam; the std of L2-normalized outputs as a collapse monitor: about
    ``1/sqrt(D)`` when healthy, 0 when collapsed).
  Jing et al. 2022, "Understanding Dimensional Collapse in Contrastive
    Self-supervised Learning" (collapse shows in the singular values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssljax.losses.contrastive import l2_normalize


def _check_2d(name, x):
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [N, D]; got {x.shape}.")


@jax.jit
def alignment(z1, z2, *, alpha: float = 2.0) -> jax.Array:
  """Alignment ``E ||f(x) - f(y)||_2^alpha`` over positive pairs (Wang & Isola).

  Args:
    z1, z2: ``[N, D]`` features of the two views; row ``i`` of each is a
      positive pair. L2-normalized here.
    alpha: exponent (> 0; the paper uses 2).

  Returns:
    scalar in ``[0, 2^alpha]``; 0 when every pair is identical (lower is
    better).
  """
  z1, z2 = jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)
  _check_2d("z1", z1)
  if z1.shape != z2.shape:
    raise ValueError(f"z1 {z1.shape} and z2 {z2.shape} must have the same shape.")
  sq = jnp.sum(jnp.square(l2_normalize(z1) - l2_normalize(z2)), axis=-1)
  return jnp.mean(sq ** (alpha / 2))


@jax.jit
def uniformity(z, *, t: float = 2.0) -> jax.Array:
  """Uniformity ``log E exp(-t ||f(x) - f(y)||^2)`` over distinct pairs.

  The mean runs over the ``N (N - 1) / 2`` pairs ``i < j`` (``torch.pdist`` in
  Wang & Isola's code), computed with a log-sum-exp.

  Args:
    z: ``[N, D]`` features, N >= 2; L2-normalized here.
    t: temperature (the paper uses 2).

  Returns:
    scalar in ``[-2 t N / (N - 1), 0]`` (Jensen's inequality bounds it below);
    more negative = more uniform on the sphere; 0 when all features coincide.
  """
  z = l2_normalize(jnp.asarray(z, jnp.float32))
  _check_2d("z", z)
  n = z.shape[0]
  if n < 2:
    raise ValueError(f"uniformity needs at least 2 features; got {z.shape}.")
  sq = jnp.maximum(2.0 - 2.0 * (z @ z.T), 0.0)               # [N, N]
  upper = jnp.triu(jnp.ones((n, n), bool), k=1)
  logits = jnp.where(upper, -t * sq, -jnp.inf)
  return jax.nn.logsumexp(logits) - jnp.log(n * (n - 1) / 2)


@jax.jit
def effective_rank(features, *, eps: float = 1e-12) -> jax.Array:
  """Effective rank (Roy & Vetterli 2007) of the centered feature matrix.

  ``exp(H(p))`` with ``p_k = s_k / sum_k s_k`` the normalized singular values
  of ``features - mean`` and ``H`` the Shannon entropy (nats, 0 log 0 = 0).

  Args:
    features: ``[N, D]``.
    eps: singular-value sum floor (an all-constant matrix gives 1).

  Returns:
    scalar in ``[1, min(N - 1, D)]``: 1 for rank-1 (collapsed) features,
    about D for isotropic Gaussian features with N >> D.
  """
  x = jnp.asarray(features, jnp.float32)
  _check_2d("features", x)
  x = x - jnp.mean(x, axis=0, keepdims=True)
  s = jnp.linalg.svd(x, compute_uv=False)
  p = s / jnp.maximum(jnp.sum(s), eps)
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)),
                               0.0))
  return jnp.exp(entropy)


@jax.jit
def collapse_report(features, *, eps: float = 1e-4) -> dict[str, jax.Array]:
  """Collapse diagnostics of features ``[N, D]`` (scalars; jit-able).

  Returns:
    ``effective_rank``: :func:`effective_rank`;
    ``collapsed_dim_fraction``: fraction of the D dimensions whose std over
      the batch, after L2-normalizing each feature, is below ``eps``;
    ``normalized_std``: mean over dimensions of that std (SimSiam's monitor);
    ``normalized_std_reference``: ``1 / sqrt(D)``, its value for features
      spread uniformly on the sphere (0 means complete collapse).
  """
  x = jnp.asarray(features, jnp.float32)
  _check_2d("features", x)
  std = jnp.std(l2_normalize(x), axis=0)                     # [D]
  return {"effective_rank": effective_rank(x),
          "collapsed_dim_fraction": jnp.mean(std < eps),
          "normalized_std": jnp.mean(std),
          "normalized_std_reference": jnp.asarray(x.shape[1] ** -0.5,
                                                  jnp.float32)}
