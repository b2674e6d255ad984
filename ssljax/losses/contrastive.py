"""Contrastive losses: InfoNCE, SimCLR's NT-Xent, and the InfoNCE MI bound.

All similarities are cosine similarities (embeddings are L2-normalized inside).
A batch sharded over the device mesh gives the global-batch loss: the operands
are gathered (``ssljax.losses._sharding.replicate``, re-exported as
``ssljax.parallel.replicate``) before the N x N logits are
formed, so every device sees negatives from every device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.losses._sharding import DATA_AXIS, replicate
from ssljax.losses.blockwise import masked_logsumexp

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
             temperature: float, block_size: int | None = None) -> jax.Array:
  """InfoNCE (van den Oord et al. 2018, eq. 4) with cosine similarity.

  ``L = mean_n -log( exp(s+_n/T) / (exp(s+_n/T) + sum_m exp(s-_nm/T)) )``
  with ``s+_n = cos(query_n, positive_n)`` and ``s-_nm = cos(query_n, neg_m)``.

  Args:
    query: ``[N, D]``.
    positive: ``[N, D]``, one positive per query.
    negatives: ``[M, D]`` shared by all queries (a MoCo queue), or
      ``[N, M, D]`` per query.
    temperature: softmax temperature T > 0.
    block_size: ``None`` (default): the dense ``[N, 1 + M]`` logits. An int:
      the memory-bounded path for shared ``[M, D]`` negatives, ``block_size``
      queries at a time with a custom VJP (:mod:`ssljax.losses.blockwise`),
      peak ``block_size x M`` logits; equal to the dense loss and gradient to
      float tolerance. Per-query ``[N, M, D]`` negatives are already as large
      as their logits, so they take the dense path only.

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
  _check_block_size(block_size)
  if block_size is not None:
    if negatives.ndim != 2 or negatives.shape[1] != d:
      raise ValueError(
          f"info_nce(block_size={block_size}) needs shared negatives [M, {d}]; "
          f"got {negatives.shape}. Per-query negatives [N, M, D] use the dense "
          "path: pass block_size=None.")
    q = l2_normalize(query)
    s_pos = jnp.sum(q * l2_normalize(positive), axis=-1) / temperature
    lse = masked_logsumexp(q, l2_normalize(replicate(negatives)),
                           jnp.full((n,), -1, jnp.int32), s_pos,
                           1.0 / temperature, int(block_size))
    return jnp.mean(lse - s_pos)
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


def _check_block_size(block_size) -> None:
  if block_size is not None and (not isinstance(block_size, (int, np.integer))
                                 or block_size < 1):
    raise ValueError(f"block_size must be None (dense) or a positive int; got "
                     f"{block_size!r}.")


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float,
            block_size: int | None = None, axis_name: str | None = None
            ) -> jax.Array:
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
    block_size: ``None`` (default): the dense ``[2N, 2N]`` logits. An int: the
      memory-bounded path, ``block_size`` anchors at a time against all 2N
      keys with a custom VJP (:mod:`ssljax.losses.blockwise`): peak memory
      O(N x block_size) instead of O(N^2), equal to the dense loss and its
      gradient to float tolerance. Under a mesh whose ``data`` axis has
      several devices (``jax.set_mesh``, as the training loop does), each
      device takes its own anchors against the gathered keys
      (``jax.shard_map``), so the global batch can grow with the devices.
    axis_name: for calls *inside* a ``shard_map`` over that axis: ``z1`` and
      ``z2`` are then the local shards, and the result is the global-batch
      loss (keys all-gathered, sums ``psum``-ed). Needs ``block_size``.

  Returns:
    Scalar loss.
  """
  _check_2d("z1", z1)
  _check_2d("z2", z2)
  if z1.shape != z2.shape:
    raise ValueError(f"z1 {z1.shape} and z2 {z2.shape} must have the same "
                     "shape [N, D].")
  n = z1.shape[0]
  _check_block_size(block_size)
  if axis_name is not None:
    if block_size is None:
      raise ValueError("nt_xent(axis_name=...) is the blockwise shard_map path; "
                       "pass block_size too.")
    return _nt_xent_local(z1, z2, temperature, int(block_size), axis_name)
  if n < 2:
    raise ValueError(f"nt_xent needs N >= 2 pairs (no negatives otherwise); got "
                     f"z1 of shape {z1.shape}.")
  if block_size is not None:
    mesh = jax.sharding.get_abstract_mesh()
    if (not mesh.empty and DATA_AXIS in mesh.axis_names
        and mesh.shape[DATA_AXIS] > 1):
      if n % mesh.shape[DATA_AXIS]:
        raise ValueError(f"nt_xent: batch {n} does not divide over the "
                         f"{mesh.shape[DATA_AXIS]} devices of axis "
                         f"'{DATA_AXIS}'.")
      spec = jax.sharding.PartitionSpec(DATA_AXIS)
      fn = jax.shard_map(
          functools.partial(_nt_xent_local, temperature=temperature,
                            block_size=int(block_size), axis_name=DATA_AXIS),
          mesh=mesh, in_specs=(spec, spec),
          out_specs=jax.sharding.PartitionSpec())
      return fn(z1, z2)
    z = l2_normalize(jnp.concatenate([z1, z2], axis=0))
    idx = jnp.arange(2 * n)
    lse = masked_logsumexp(z, z, idx, jnp.full((2 * n,), -jnp.inf, z.dtype),
                           1.0 / temperature, int(block_size))
    positive = jnp.sum(z * jnp.roll(z, n, axis=0), axis=1) / temperature
    return jnp.mean(lse - positive)
  # Gather the global batch (a no-op on one device or an Auto mesh, where the
  # compiler inserts the all-gather itself).
  z = l2_normalize(jnp.concatenate([replicate(z1), replicate(z2)], axis=0))
  logits = (z @ z.T) / temperature                           # [2N, 2N]
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  idx = jnp.arange(2 * n)
  positive = logits[idx, (idx + n) % (2 * n)]
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)


def _varying(x, axis_name):
  """``x`` typed as varying over ``axis_name`` inside shard_map."""
  aval = jax.typeof(x)
  mat = getattr(aval, "manual_axis_type", None)          # JAX 0.10
  varying = mat.varying if mat is not None else getattr(aval, "vma", ())
  if axis_name in varying:
    return x
  cast = getattr(jax.lax, "pcast", None)
  if cast is not None:
    return cast(x, axis_name, to="varying")
  return jax.lax.pvary(x, axis_name)


def _nt_xent_local(z1, z2, temperature, block_size, axis_name):
  """Inside shard_map: local anchors vs all-gathered keys, global mean."""
  n_local = z1.shape[0]
  shards = jax.lax.psum(1, axis_name)
  offset = jax.lax.axis_index(axis_name) * n_local
  n = n_local * shards
  keys = l2_normalize(jnp.concatenate(
      [jax.lax.all_gather(z1, axis_name, tiled=True),
       jax.lax.all_gather(z2, axis_name, tiled=True)], axis=0))   # [2N, D]
  a1, a2 = l2_normalize(z1), l2_normalize(z2)
  rows = jnp.concatenate([a1, a2], axis=0)                         # [2n, D]
  local = jnp.arange(n_local)
  own = jnp.concatenate([offset + local, n + offset + local])      # global ids
  # Every operand of the custom VJP varies over the axis, so that its
  # cotangents (which do) type-check; the transpose of that cast is the psum
  # of the key gradients over devices.
  keys, own = _varying(keys, axis_name), _varying(own, axis_name)
  extra = jnp.full((2 * n_local,), -jnp.inf, rows.dtype)
  extra = _varying(extra, axis_name)
  lse = masked_logsumexp(rows, keys, own, extra, 1.0 / temperature, block_size)
  pos = jnp.sum(a1 * a2, axis=1) / temperature     # the pair is on this device
  total = jnp.sum(lse) - 2.0 * jnp.sum(pos)
  return jax.lax.psum(total, axis_name) / (2 * n)


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
