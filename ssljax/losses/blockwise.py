"""Row-blocked log-sum-exp over similarity logits, in O(rows_per_block x K) memory.

The dense contrastive losses materialize an ``[R, K]`` logit matrix (and
autodiff keeps it, or its softmax, for the backward pass): O(N^2) memory for
NT-Xent at batch N. :func:`masked_logsumexp` computes, for every row r,

    lse_r = log( sum_{k != exclude_r} exp(scale * rows_r . keys_k) + exp(extra_r) )

a block of ``block_size`` rows at a time (``lax.scan``), and has a custom VJP
that recomputes each block's logits from the saved ``lse`` instead of storing
them. Peak memory is ``block_size x K`` logits plus the inputs and their
gradients, for the forward and the backward pass.

Gradients (p_rk = exp(scale * rows_r . keys_k - lse_r), zero at k = exclude_r;
p_r,extra = exp(extra_r - lse_r); g = the cotangent of lse):

    d rows_r  = scale * g_r * sum_k p_rk keys_k
    d keys_k  = scale * sum_r g_r p_rk rows_r
    d extra_r = g_r * p_r,extra
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _pad_rows(x: jax.Array, total: int, value=0):
  pad = total - x.shape[0]
  if pad == 0:
    return x
  widths = [(0, pad)] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, widths, constant_values=value)


def _blocks(rows, exclude, extra, block_size):
  r = rows.shape[0]
  nb = -(-r // block_size)
  total = nb * block_size
  rows_b = _pad_rows(rows, total).reshape(nb, block_size, rows.shape[1])
  excl_b = _pad_rows(exclude, total, -1).reshape(nb, block_size)
  extra_b = _pad_rows(extra, total, -jnp.inf).reshape(nb, block_size)
  return rows_b, excl_b, extra_b, total


def _block_logits(rows_blk, excl_blk, keys, scale):
  logits = scale * (rows_blk @ keys.T)                     # [b, K]
  k = jnp.arange(keys.shape[0])
  return jnp.where(k[None, :] == excl_blk[:, None], -jnp.inf, logits)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def masked_logsumexp(rows: jax.Array, keys: jax.Array, exclude: jax.Array,
                     extra: jax.Array, scale: float, block_size: int) -> jax.Array:
  """``[R]`` log-sum-exp of ``scale * rows @ keys.T`` per row, blocked.

  Args:
    rows: ``[R, D]``.
    keys: ``[K, D]``.
    exclude: int ``[R]``: the key index left out of row r's sum (``-1``: none);
      NT-Xent passes each row's own index (no self-similarity).
    extra: ``[R]``: one more logit per row (``-inf``: none); InfoNCE passes
      the positive logit here when the keys are the negatives only.
    scale: multiplies the dot products (``1 / temperature``).
    block_size: rows per block (static).
  """
  return _forward(rows, keys, exclude, extra, scale, block_size)[0]


def _forward(rows, keys, exclude, extra, scale, block_size):
  r = rows.shape[0]
  rows_b, excl_b, extra_b, _ = _blocks(rows, exclude, extra, block_size)

  def body(_, blk):
    rb, eb, xb = blk
    logits = _block_logits(rb, eb, keys, scale)
    full = jnp.concatenate([logits, xb[:, None]], axis=1)
    return None, jax.nn.logsumexp(full, axis=1)

  _, lse = jax.lax.scan(body, None, (rows_b, excl_b, extra_b))
  lse = lse.reshape(-1)[:r]
  return lse, (rows, keys, exclude, extra, lse)


def _fwd(rows, keys, exclude, extra, scale, block_size):
  return _forward(rows, keys, exclude, extra, scale, block_size)


def _bwd(scale, block_size, res, g):
  rows, keys, exclude, extra, lse = res
  r = rows.shape[0]
  rows_b, excl_b, extra_b, total = _blocks(rows, exclude, extra, block_size)
  lse_b = _pad_rows(lse, total).reshape(-1, block_size)
  g_b = _pad_rows(g, total).reshape(-1, block_size)      # padded rows: g = 0

  def body(d_keys, blk):
    rb, eb, xb, lb, gb = blk
    logits = _block_logits(rb, eb, keys, scale)
    w = jnp.exp(logits - lb[:, None]) * gb[:, None]        # g_r * p_rk, [b, K]
    d_rows = scale * (w @ keys)
    d_keys = d_keys + scale * (w.T @ rb)
    d_extra = gb * jnp.exp(xb - lb)
    return d_keys, (d_rows, d_extra)

  d_keys, (d_rows, d_extra) = jax.lax.scan(
      body, jnp.zeros_like(keys), (rows_b, excl_b, extra_b, lse_b, g_b))
  d_rows = d_rows.reshape(-1, rows.shape[1])[:r]
  d_extra = d_extra.reshape(-1)[:r]
  d_exclude = np.zeros(exclude.shape, dtype=jax.dtypes.float0)
  return d_rows.astype(rows.dtype), d_keys.astype(keys.dtype), d_exclude, \
      d_extra.astype(extra.dtype)


masked_logsumexp.defvjp(_fwd, _bwd)
