"""A convolution whose weight gradient is a matrix product (for XLA:CPU).

XLA:CPU lowers the weight gradient of a convolution to a "backward filter"
convolution plus layout transposes of the activations, and on small ResNets
that is where most of a CPU train step goes (BENCHMARKS.md, "Where the CPU
time goes"). :func:`conv_matmul_wgrad` is a drop-in for
``lax.conv_general_dilated`` (the ``conv_general_dilated`` attribute of
``flax.linen.Conv``) with the same forward pass and input gradient, whose
weight gradient is written as plain matrix products over shifted views of the
padded input::

    dW[i, j] = sum_{n, h, w} x_pad[n, s*h + i, s*w + j, :]^T  g[n, h, w, :]

either as one product of the im2col patches ``[N*Ho*Wo, kh*kw*Cin]`` with
``g`` (few input channels) or as ``kh*kw`` products of strided slices (many
input channels, where the patches would be large). The result is the same
gradient up to float summation order. Only the plain case is handled (NHWC /
HWIO, no dilation, one feature group); anything else falls back to
``lax.conv_general_dilated``. Select it with ``ResNet(conv_impl="matmul")``
(config ``encoder.conv_impl``); the default stays XLA's own.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
#: input channels below which the weight gradient uses one im2col product.
PATCHES_MAX_CIN = 128


def _is_nhwc(dimension_numbers, lhs_shape, rhs_shape) -> bool:
  if dimension_numbers is None:
    return False
  want = lax.conv_dimension_numbers(lhs_shape, rhs_shape, _NHWC)
  got = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  return want == got


def _shifted_views(xp, kh: int, kw: int, strides, out_hw):
  """The ``kh*kw`` strided views ``xp[:, s*h + i, s*w + j, :]`` ([N,Ho,Wo,C])."""
  n, _, _, c = xp.shape
  (sh, sw), (ho, wo) = strides, out_hw
  return [lax.slice(xp, (0, i, j, 0),
                    (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c),
                    (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]


def weight_gradient(x, g, kernel_shape, strides, padding):
  """``dL/dW`` of an NHWC/HWIO convolution from its input ``x`` and output
  cotangent ``g``, as matrix products (see the module docstring)."""
  kh, kw, cin, cout = kernel_shape
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  views = _shifted_views(xp, kh, kw, strides, g.shape[1:3])
  g2 = g.reshape(-1, cout)
  if cin < PATCHES_MAX_CIN:
    patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
    dw = patches.reshape(-1, kh * kw * cin).T @ g2
  else:
    dw = jnp.stack([v.reshape(-1, cin).T @ g2 for v in views])
  return dw.reshape(kernel_shape).astype(g.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, padding, precision):
  return lax.conv_general_dilated(x, w, strides, padding,
                                  dimension_numbers=_NHWC, precision=precision)


def _conv_fwd(x, w, strides, padding, precision):
  return _conv(x, w, strides, padding, precision), (x, w)


def _conv_bwd(strides, padding, precision, res, g):
  x, w = res
  _, input_vjp = jax.vjp(
      lambda xx: lax.conv_general_dilated(xx, w, strides, padding,
                                          dimension_numbers=_NHWC,
                                          precision=precision), x)
  (dx,) = input_vjp(g)
  return dx, weight_gradient(x, g, w.shape, strides, padding)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_matmul_wgrad(lhs, rhs, window_strides, padding, lhs_dilation=None,
                      rhs_dilation=None, dimension_numbers=None,
                      feature_group_count=1, batch_group_count=1,
                      precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated`` with a matrix-product weight gradient
  (module docstring); same signature, same values."""
  plain = (
      all(d == 1 for d in (lhs_dilation or (1,)))
      and all(d == 1 for d in (rhs_dilation or (1,)))
      and feature_group_count == 1 and batch_group_count == 1
      and preferred_element_type is None and lhs.ndim == 4
      and _is_nhwc(dimension_numbers, lhs.shape, rhs.shape))
  if not plain:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2],
                                  window_strides, padding)
  padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  return _conv(lhs, rhs, tuple(int(s) for s in window_strides), padding,
               precision)
