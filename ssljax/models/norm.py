"""Batch normalization with the ReLU and the residual add fused in.

``flax.linen.BatchNorm`` followed by ``nn.relu`` (and, at the end of a ResNet
block, ``relu(residual + bn(x))``) is differentiated op by op: the backward
pass re-reads the activations in several passes, one per primitive of the
forward formula (the means, the centring, the scaling, the ReLU mask). On
CPU these memory-bound passes cost more than PyTorch's BatchNorm kernels
(``benchmarks/resnet_step_profile.py``).

:func:`batch_norm` computes the same function with a hand-written VJP, from
the textbook gradient (Ioffe & Szegedy 2015, sec. 3):

* forward: one pass for ``sum(x)`` and ``sum(x^2)``, one for
  ``y = relu(x * k + (bias - mean * k) [+ residual])``, ``k = scale / sigma``;
* backward, with ``g = dy * (y > 0)`` (the ReLU mask recomputed from the
  saved output): one pass for ``sum(g)`` and ``sum(g * x)``, one for
  ``dx = k * g + b * x + c`` with per-channel ``b``, ``c``;
  ``d_bias = sum(g)``, ``d_scale = (sum(g * x) - mean * sum(g)) / sigma``,
  ``d_residual = g``.

The statistics are reductions over every axis but the last (channels) of the
whole array, so under ``jax.jit`` with the batch sharded they span the global
batch, as ``nn.BatchNorm``'s do. The variance is ``E[x^2] - E[x]^2`` clipped
at 0, computed in float32 (flax's ``use_fast_variance``), and the running
averages follow flax's update, so :class:`BatchNorm` is a drop-in
replacement for ``nn.BatchNorm(axis=-1)`` with the same parameter and
``batch_stats`` names (checkpoints are interchangeable). Values and
gradients are tested against ``nn.BatchNorm`` + ``nn.relu`` and against
numpy written from the formula (tests/test_norm.py).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _count(x) -> int:
  return int(np.prod(x.shape[:-1]))


def _forward(x, scale, bias, residual, epsilon, relu, out_dtype):
  # The residual is not saved for the backward pass (only its dtype, static,
  # is needed there), so it need not stay alive until then.
  axes = tuple(range(x.ndim - 1))
  n = _count(x)
  xf = x.astype(jnp.float32)
  mean = jnp.sum(xf, axes) / n
  var = jnp.maximum(jnp.sum(xf * xf, axes) / n - mean * mean, 0.0)
  inv = jax.lax.rsqrt(var + epsilon)
  k = scale.astype(jnp.float32) * inv
  y = xf * k + (bias.astype(jnp.float32) - mean * k)
  if residual is not None:
    y = y + residual.astype(jnp.float32)
  if relu:
    y = jnp.maximum(y, 0.0)
  y = y.astype(out_dtype)
  return (y, mean, var), (x, y, mean, inv, scale, bias)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _batch_norm(x, scale, bias, residual, epsilon, relu, out_dtype,
                residual_dtype):
  del residual_dtype
  return _forward(x, scale, bias, residual, epsilon, relu, out_dtype)[0]


def _batch_norm_fwd(x, scale, bias, residual, epsilon, relu, out_dtype,
                    residual_dtype):
  del residual_dtype
  return _forward(x, scale, bias, residual, epsilon, relu, out_dtype)


def _batch_norm_bwd(epsilon, relu, out_dtype, residual_dtype, saved,
                    cotangents):
  del epsilon, out_dtype
  x, y, mean, inv, scale, bias = saved
  # The statistics are outputs for the running averages only: their
  # cotangents (zero in any training step) are not propagated.
  g = cotangents[0].astype(jnp.float32)
  if relu:
    g = jnp.where(y > 0, g, 0.0)
  axes = tuple(range(x.ndim - 1))
  n = _count(x)
  xf = x.astype(jnp.float32)
  sum_g = jnp.sum(g, axes)
  sum_gx = jnp.sum(g * xf, axes)
  d_bias = sum_g
  d_scale = inv * (sum_gx - mean * sum_g)
  k = scale.astype(jnp.float32) * inv
  b = -k * inv * d_scale / n
  c = -k * d_bias / n - b * mean
  dx = (g * k + xf * b + c).astype(x.dtype)
  d_residual = None if residual_dtype is None else g.astype(residual_dtype)
  return (dx, d_scale.astype(scale.dtype), d_bias.astype(bias.dtype),
          d_residual)


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array,
               residual: jax.Array | None = None, *, epsilon: float = 1e-5,
               relu: bool = False, dtype: Any = None):
  """Training-mode batch norm over all axes but the last, fused with ReLU.

  Returns ``(y, mean, var)``: ``y = [relu](bn(x) [+ residual])`` in
  ``dtype`` (default ``x.dtype``), and the batch mean and biased variance
  (float32) for the running averages. Differentiable in ``x``, ``scale``,
  ``bias`` and ``residual`` (see the module docstring); the returned
  statistics carry no gradient.
  """
  if x.ndim < 2:
    raise ValueError(f"batch_norm expects [..., C] with a batch axis; got "
                     f"shape {x.shape}.")
  if residual is not None and residual.shape != x.shape:
    raise ValueError(f"residual shape {residual.shape} != x shape {x.shape}.")
  out_dtype = jnp.dtype(dtype or x.dtype)
  return _batch_norm(x, scale, bias, residual, float(epsilon), bool(relu),
                     out_dtype,
                     None if residual is None else jnp.dtype(residual.dtype))


class BatchNorm(nn.Module):
  """``nn.BatchNorm`` (channels last) whose call can fuse a residual and ReLU.

  ``BatchNorm(...)(x, residual=r, relu=True)`` is
  ``nn.relu(nn.BatchNorm(...)(x) + r)``; with neither it is
  ``nn.BatchNorm(...)(x)``. Same attributes (the subset ssljax uses), same
  ``params`` (``scale``, ``bias``) and ``batch_stats`` (``mean``, ``var``).
  """
  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  use_bias: bool = True
  use_scale: bool = True
  bias_init: Callable = nn.initializers.zeros
  scale_init: Callable = nn.initializers.ones

  @nn.compact
  def __call__(self, x, residual=None, relu: bool = False,
               use_running_average: bool | None = None):
    use_ra = nn.merge_param("use_running_average", self.use_running_average,
                            use_running_average)
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean",
                            lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable("batch_stats", "var",
                           lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = (self.param("scale", self.scale_init, (c,), self.param_dtype)
             if self.use_scale else jnp.ones((c,), self.param_dtype))
    bias = (self.param("bias", self.bias_init, (c,), self.param_dtype)
            if self.use_bias else jnp.zeros((c,), self.param_dtype))
    out_dtype = self.dtype or jnp.promote_types(x.dtype, self.param_dtype)
    if use_ra:
      k = scale.astype(jnp.float32) * jax.lax.rsqrt(ra_var.value + self.epsilon)
      y = x.astype(jnp.float32) * k + (bias.astype(jnp.float32)
                                       - ra_mean.value * k)
      if residual is not None:
        y = y + residual.astype(jnp.float32)
      if relu:
        y = jnp.maximum(y, 0.0)
      return y.astype(out_dtype)
    y, mean, var = batch_norm(x, scale, bias, residual, epsilon=self.epsilon,
                              relu=relu, dtype=out_dtype)
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * mean
      ra_var.value = m * ra_var.value + (1 - m) * var
    return y
