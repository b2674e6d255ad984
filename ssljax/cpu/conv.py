"""CPU convolutions for ``ResNet(conv_impl=...)``: drop-ins for
``lax.conv_general_dilated`` that XLA:CPU runs faster, registered in
:data:`ssljax.models.conv.CONV_IMPLS` when :mod:`ssljax.cpu` is imported.

- ``"matmul"`` (:func:`conv_matmul_wgrad`): the same forward pass and input
  gradient, the weight gradient as matrix products;
- ``"cpu"`` (:func:`conv_cpu`): per layer the formulation XLA:CPU runs
  fastest with its own convolution kernels;
- ``"onednn"`` (:func:`conv_onednn`): the few-channel layers on oneDNN
  (:mod:`ssljax.cpu.onednn`, XLA custom calls), the rest as ``"cpu"``.

``conv_impl="auto"`` picks ``"onednn"`` on the CPU platform where its kernels
build, else ``"cpu"`` (ranks given to :func:`register_conv_impl` below); on
GPU/TPU it is XLA's own convolution. All give the same values up to float
rounding.

The matmul weight gradient. XLA:CPU lowers the weight gradient of a
convolution to a "backward filter" convolution plus layout transposes of the
activations, and on small ResNets that is where most of a CPU train step goes
(BENCHMARKS.md, "Where the CPU time goes"). :func:`conv_matmul_wgrad` has the
same forward pass and input gradient as ``lax.conv_general_dilated`` (the
``conv_general_dilated`` attribute of ``flax.linen.Conv``), and writes the
weight gradient as plain matrix products over shifted views of the padded
input::

    dW[i, j] = sum_{n, h, w} x_pad[n, s*h + i, s*w + j, :]^T  g[n, h, w, :]

either as one product of the im2col patches ``[N*Ho*Wo, kh*kw*Cin]`` with
``g`` (few input channels) or as ``kh*kw`` products of strided slices (many
input channels, where the patches would be large). The result is the same
gradient up to float summation order. Only the plain case is handled (NHWC /
HWIO, no dilation, one feature group); anything else falls back to
``lax.conv_general_dilated``.

:func:`conv_cpu` goes further and picks, per layer, the formulation XLA:CPU
runs fastest with its own convolution kernels (:mod:`ssljax.cpu.xla_flags`):
a small stem's forward pass as broadcast products, the input gradient of a
few-channel strided kernel through space-to-depth, the weight gradient of 1x1
kernels and small stems as matrix products, XLA's convolution elsewhere
(BENCHMARKS.md, "Convolutions per layer").
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
from jax import lax

from ssljax.cpu import onednn
from ssljax.models.conv import register_conv_impl

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


def _lax_drop_in(inner, name: str, doc: str):
  """A function with ``lax.conv_general_dilated``'s signature that calls
  ``inner(x, w, strides, explicit padding, precision)`` in the plain
  NHWC/HWIO case (no dilation, one group, default output type) and
  ``lax.conv_general_dilated`` unchanged otherwise."""

  def conv(lhs, rhs, window_strides, padding, lhs_dilation=None,
           rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
           batch_group_count=1, precision=None, preferred_element_type=None):
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
    return inner(lhs, rhs, tuple(int(s) for s in window_strides), padding,
                 precision)

  conv.__name__ = conv.__qualname__ = name
  conv.__doc__ = doc
  return conv


conv_matmul_wgrad = _lax_drop_in(_conv, "conv_matmul_wgrad", """\
``lax.conv_general_dilated`` with a matrix-product weight gradient (module
docstring); same signature, same values.""")


def _space_to_depth_conv(x, w, strides, padding, precision):
  """A strided NHWC/HWIO convolution as a stride-1 VALID one on the
  space-to-depth input: the kernel is zero-padded to a multiple of the stride
  and its taps regrouped by phase, so ``y[h, w] = sum_{a, b} s2d(x)[h + a,
  w + b] . W'[a, b]`` with ``s*s*cin`` input channels. Same sums as the
  strided convolution (plus products with zero taps). Its input gradient is a
  stride-1 transposed convolution and reshapes, which XLA:CPU computes much
  faster than the dilated convolution of the strided one for few channels."""
  n, _, _, c = x.shape
  kh, kw, _, o = w.shape
  (sh, sw) = strides
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  ho = (xp.shape[1] - kh) // sh + 1
  wo = (xp.shape[2] - kw) // sw + 1
  kh2, kw2 = -(-kh // sh), -(-kw // sw)          # kernel size in phase steps
  xp = _pad_to(_pad_to(xp, 1, sh * (ho - 1 + kh2)), 2, sw * (wo - 1 + kw2))
  hp, wp = xp.shape[1] // sh, xp.shape[2] // sw
  xs = xp.reshape(n, hp, sh, wp, sw, c).transpose(0, 1, 3, 2, 4, 5)
  xs = xs.reshape(n, hp, wp, sh * sw * c)
  wz = jnp.pad(w, ((0, kh2 * sh - kh), (0, kw2 * sw - kw), (0, 0), (0, 0)))
  ws = wz.reshape(kh2, sh, kw2, sw, c, o).transpose(0, 2, 1, 3, 4, 5)
  ws = ws.reshape(kh2, kw2, sh * sw * c, o)
  return lax.conv_general_dilated(xs, ws, (1, 1), "VALID",
                                  dimension_numbers=_NHWC, precision=precision)


def _pad_to(x, axis: int, length: int):
  """Zero-pad (at the end) or slice ``x`` along ``axis`` to ``length``."""
  cur = x.shape[axis]
  if cur > length:
    return lax.slice_in_dim(x, 0, length, axis=axis)
  if cur < length:
    pads = [(0, 0)] * x.ndim
    pads[axis] = (0, length - cur)
    return jnp.pad(x, pads)
  return x


def _taps_conv(x, w, strides, padding, precision):
  """A convolution with very few input channels (an image stem) as a sum of
  ``kh*kw*cin`` broadcast products of shifted views: one elementwise fusion
  instead of a convolution kernel built for many channels."""
  del precision                       # elementwise products, summed in f32
  kh, kw, cin, _ = w.shape
  out_dtype = jnp.result_type(x.dtype, w.dtype)
  x, w = x.astype(jnp.float32), w.astype(jnp.float32)   # bf16 compute: f32 sums
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  ho = (xp.shape[1] - kh) // strides[0] + 1
  wo = (xp.shape[2] - kw) // strides[1] + 1
  views = _shifted_views(xp, kh, kw, strides, (ho, wo))
  terms = [views[i * kw + j][..., c:c + 1] * w[i, j, c]
           for i in range(kh) for j in range(kw) for c in range(cin)]
  out = terms[0]
  for term in terms[1:]:
    out = out + term
  return out.astype(out_dtype)


#: ``conv_cpu``: kernels with at most this many weights per output channel
#: (``kh*kw*cin``; a 3x3 stem on 1 or 3 channels): the forward pass as
#: broadcast products (:func:`_taps_conv`).
CPU_TAPS_MAX_K = 27
#: ``conv_cpu``: strided kernels with at most this many input channels take
#: the space-to-depth input gradient.
CPU_S2D_DX_MAX_CIN = 16
#: ``conv_cpu``: 1x1 kernels, and kernels with at most this many weights per
#: output channel (``kh*kw*cin``), take the matrix-product weight gradient.
CPU_MATMUL_DW_MAX_K = 32


def _lax_conv(x, w, strides, padding, precision):
  return lax.conv_general_dilated(x, w, strides, padding,
                                  dimension_numbers=_NHWC, precision=precision)


def _smaller_than_kernel(x, w) -> bool:
  """The input's feature map is smaller than the kernel (``H < kh`` or
  ``W < kw``): a 3x3 kernel on the 2x2 or 1x1 maps of a small crop's last
  stage. XLA:CPU's convolution runs such layers many times slower per FLOP
  than its larger ones: forward and both gradients of a 3x3, 256 -> 256
  kernel on 1,024 maps of 2x2 take 1.39 s, as im2col products 0.085 s
  (16x; ``benchmarks/small_map_conv.py``, ``BENCHMARKS.md``, "Convolutions
  on maps smaller than the kernel")."""
  return x.shape[1] < w.shape[0] or x.shape[2] < w.shape[1]


def _patches_conv(x, w, strides, padding, precision):
  """The convolution as one matrix product of the im2col patches
  ``[N*Ho*Wo, kh*kw*cin]`` with the kernel ``[kh*kw*cin, cout]``. Its
  gradients (through the slices and the product) are matrix products too.
  For small feature maps, where the patches are small."""
  kh, kw, cin, cout = w.shape
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  ho = (xp.shape[1] - kh) // strides[0] + 1
  wo = (xp.shape[2] - kw) // strides[1] + 1
  views = _shifted_views(xp, kh, kw, strides, (ho, wo))
  patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
  out = jnp.dot(patches.reshape(-1, kh * kw * cin),
                w.reshape(kh * kw * cin, cout), precision=precision)
  return out.reshape(x.shape[0], ho, wo, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_cpu(x, w, strides, padding, precision):
  kh, kw, cin, _ = w.shape
  if _smaller_than_kernel(x, w):
    return _patches_conv(x, w, strides, padding, precision)
  if kh * kw > 1 and kh * kw * cin <= CPU_TAPS_MAX_K:
    return _taps_conv(x, w, strides, padding, precision)
  return _lax_conv(x, w, strides, padding, precision)


def _conv_cpu_fwd(x, w, strides, padding, precision):
  return _conv_cpu(x, w, strides, padding, precision), (x, w)


def _conv_cpu_bwd(strides, padding, precision, res, g):
  x, w = res
  kh, kw, cin, _ = w.shape
  if _smaller_than_kernel(x, w):
    return jax.vjp(lambda xx, ww: _patches_conv(xx, ww, strides, padding,
                                                precision), x, w)[1](g)
  if strides != (1, 1) and kh * kw > 1 and cin <= CPU_S2D_DX_MAX_CIN:
    dx_of = lambda xx: _space_to_depth_conv(xx, w, strides, padding, precision)
  else:
    dx_of = lambda xx: _lax_conv(xx, w, strides, padding, precision)
  (dx,) = jax.vjp(dx_of, x)[1](g)
  if kh * kw == 1 or kh * kw * cin <= CPU_MATMUL_DW_MAX_K:
    dw = weight_gradient(x, g, w.shape, strides, padding)
  else:
    (dw,) = jax.vjp(lambda ww: _lax_conv(x, ww, strides, padding, precision),
                    w)[1](g)
  return dx, dw


_conv_cpu.defvjp(_conv_cpu_fwd, _conv_cpu_bwd)


conv_cpu = _lax_drop_in(_conv_cpu, "conv_cpu", """\
``lax.conv_general_dilated`` with, per layer, the formulation XLA:CPU
runs fastest (measured per layer in ``benchmarks/conv_layers.py``; XLA's
own convolution kernels, ``ssljax.cpu.xla_flags``):

- feature maps smaller than the kernel (:func:`_smaller_than_kernel`):
  forward pass and both gradients as matrix products of the im2col
  patches (:func:`_patches_conv`);
- forward pass: broadcast products for small stems (at most
  ``CPU_TAPS_MAX_K`` weights per output channel, :func:`_taps_conv`),
  XLA's elsewhere;
- input gradient: for strided kernels of at most ``CPU_S2D_DX_MAX_CIN``
  channels, the transposed stride-1 convolution of the space-to-depth
  input (:func:`_space_to_depth_conv`), XLA's elsewhere;
- weight gradient: matrix products (:func:`weight_gradient`) for 1x1
  kernels and small stems, XLA's elsewhere.

Same signature and values (up to float summation order); anything but the
plain NHWC/HWIO case without dilation or groups is passed to
``lax.conv_general_dilated`` unchanged.""")


#: ``conv_onednn``: layers with at most this many output channels run on
#: oneDNN; wider ones take :func:`conv_cpu`. It was 64 (XLA:CPU was as fast
#: on the wide layers of the small Fashion-MNIST ResNet, on an AMD EPYC).
#: On standard ResNets every layer is faster on oneDNN (2-core Intel Xeon,
#: 2026-12-07: the ResNet-18 SimCLR step 0.82x -> 1.015x eager PyTorch,
#: ResNet-50 0.90x -> 0.96x; benchmarks/results/resnet18_cpu_step_onednn_all.json,
#: resnet50_cpu_step_onednn_all.json), so every float32 layer goes there.
ONEDNN_MAX_COUT = 1 << 16
_warned: set = set()


def _conv_onednn(x, w, strides, padding, precision):
  if jax.default_backend() != "cpu":
    return _lax_conv(x, w, strides, padding, precision)
  if (x.dtype != jnp.float32 or w.dtype != jnp.float32
      or w.shape[3] > ONEDNN_MAX_COUT or _smaller_than_kernel(x, w)):
    return _conv_cpu(x, w, strides, padding, precision)
  if not onednn.available():
    reason = onednn.unavailable_reason()
    if reason not in _warned:
      _warned.add(reason)
      warnings.warn(f"conv_impl='onednn' falls back to conv_impl='cpu': {reason}",
                    stacklevel=2)
    return _conv_cpu(x, w, strides, padding, precision)
  return onednn.conv(x, w, strides, padding)


conv_onednn = _lax_drop_in(_conv_onednn, "conv_onednn", """\
``lax.conv_general_dilated`` whose layers (at most ``ONEDNN_MAX_COUT``
output channels: all of them since 2026-12-07; float32, on feature maps at
least as large as the kernel) run forward, input gradient
and weight gradient on oneDNN (``ssljax.cpu.onednn``: XLA FFI custom
calls), and whose other layers take :func:`conv_cpu`. Falls back to
:func:`conv_cpu` (one warning) where the oneDNN kernels cannot be built,
and to ``lax.conv_general_dilated`` on GPU/TPU backends. Same signature and
values (up to float summation order).""")


# The registry of ssljax.models.conv; "auto" takes, on the CPU platform, the
# highest cpu_rank whose kernels are available ("xla" has rank 0).
register_conv_impl("matmul", conv_matmul_wgrad)
register_conv_impl("cpu", conv_cpu, cpu_rank=1)
register_conv_impl("onednn", conv_onednn, cpu_rank=2,  # (looked up per call)
                   available=lambda: onednn.available())  # pylint: disable=unnecessary-lambda
