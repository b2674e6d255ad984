"""Contrastive losses: InfoNCE, SimCLR's NT-Xent, and the InfoNCE MI bound.

All similarities are cosine similarities (embeddings are L2-normalized inside).
A batch sharded over the device mesh gives the global-batch loss: the operands
are gathered (``ssljax.parallel.mesh.replicate``) before the N x N logits are
formed, so every device sees negatives from every device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssljax.parallel.mesh import replicate

_EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = _EPS) -> jax.Array:
  """``x / max(||x||, sqrt(eps))`` along ``axis``."""
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps))


def cosine_similarity_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
  """``[N,D] x [M,D] -> [N,M]`` cosine similarities."""
  return l2_normalize(a) @ l2_normalize(b).T


def _check_2d(name: str, x: jax.Array) -> None:
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [N, D]; got {x.shape}.")


def info_nce(query: jax.Array, positive: jax.Array, negatives: jax.Array, *,
             temperature: float) -> jax.Array:
  """InfoNCE (van den Oord et al. 2018, eq. 4) with cosine similarity.

  ``L = mean_n -log( exp(s+_n/T) / (exp(s+_n/T) + sum_m exp(s-_nm/T)) )``
  with ``s+_n = cos(query_n, positive_n)`` and ``s-_nm = cos(query_n, neg_m)``.

  Args:
    query: ``[N, D]``.
    positive: ``[N, D]``, one positive per query.
    negatives: ``[M, D]`` shared by all queries (a MoCo queue), or
      ``[N, M, D]`` per query.
    temperature: softmax temperature T > 0.

  Returns:
    Scalar mean loss over the N queries. The logits are ``[N, 1 + M]`` with
    the positive at index 0, so ``log(1 + M) - L`` is the MI lower bound.
  """
  _check_2d("query", query)
  _check_2d("positive", positive)
  if query.shape != positive.shape:
    raise ValueError(f"query {query.shape} and positive {positive.shape} must "
                     "have the same shape [N, D].")
  n, d = query.shape
  if negatives.ndim == 2:
    if negatives.shape[1] != d:
      raise ValueError(f"negatives {negatives.shape} must be [M, {d}] to match "
                       f"query {query.shape}.")
    q = l2_normalize(query)
    s_neg = q @ l2_normalize(replicate(negatives)).T
  elif negatives.ndim == 3:
    if negatives.shape[0] != n or negatives.shape[2] != d:
      raise ValueError(f"negatives {negatives.shape} must be [{n}, M, {d}] to "
                       f"match query {query.shape}.")
    q = l2_normalize(query)
    s_neg = jnp.einsum("nd,nmd->nm", q, l2_normalize(negatives))
  else:
    raise ValueError("negatives must have shape [M, D] or [N, M, D]; got "
                     f"{negatives.shape}.")
  s_pos = jnp.sum(q * l2_normalize(positive), axis=-1, keepdims=True)
  logits = jnp.concatenate([s_pos, s_neg], axis=1) / temperature
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float) -> jax.Array:
  """SimCLR's NT-Xent loss (Chen et al. 2020, eq. 1 and Alg. 1).

  With ``z = concat(z1, z2)`` (2N rows) and cosine similarities ``s_ij``,
  ``l(i, j) = -log( exp(s_ij/T) / sum_{k != i} exp(s_ik/T) )`` where j is the
  other view of i (``i + N`` and back); the result is the mean over the 2N
  anchors, ``1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)]`` as in the paper.
  The official SimCLR code returns twice this value (``loss_a + loss_b``,
  each a mean over N).

  Args:
    z1, z2: ``[N, D]`` projections of the two views. When they are sharded over
      the mesh axis ``data`` the loss is still the global-batch loss: every
      anchor is contrasted with all 2N - 2 other examples of the global batch.
    temperature: T > 0 (0.5 for CIFAR-size, 0.1 for ImageNet in the paper).

  Returns:
    Scalar loss.
  """
  _check_2d("z1", z1)
  _check_2d("z2", z2)
  if z1.shape != z2.shape:
    raise ValueError(f"z1 {z1.shape} and z2 {z2.shape} must have the same "
                     "shape [N, D].")
  n = z1.shape[0]
  if n < 2:
    raise ValueError(f"nt_xent needs N >= 2 pairs (no negatives otherwise); got "
                     f"z1 of shape {z1.shape}.")
  # Gather the global batch (a no-op on one device or an Auto mesh, where the
  # compiler inserts the all-gather itself).
  z = l2_normalize(jnp.concatenate([replicate(z1), replicate(z2)], axis=0))
  logits = (z @ z.T) / temperature                           # [2N, 2N]
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  idx = jnp.arange(2 * n)
  positive = logits[idx, (idx + n) % (2 * n)]
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)


def mutual_information_lower_bound(loss: jax.Array, num_candidates: int
                                   ) -> jax.Array:
  """The InfoNCE bound ``I(x; c) >= log N - L`` (van den Oord et al. 2018).

  Args:
    loss: the InfoNCE loss L (mean, in nats).
    num_candidates: N, the number of candidates each query is scored against
      (one positive plus N - 1 negatives): ``1 + M`` for :func:`info_nce`,
      ``2N - 1`` for :func:`nt_xent` with batch N.
  """
  if num_candidates < 1:
    raise ValueError(f"num_candidates must be >= 1; got {num_candidates}.")
  return jnp.log(jnp.asarray(num_candidates, jnp.float32)) - loss
