"""Networks for contrastive predictive coding (CPC).

Sequences (van den Oord et al. 2018, sec. 3 / audio):
  ``CausalConvEncoder`` (g_enc, strided 1-D convolutions, x -> z_t),
  ``GRUContext`` (g_ar, z_<=t -> c_t) and ``StepPredictors`` (one linear map
  W_k per step k), joined in ``SequenceCPCModel``.

Image grids (Henaff et al. 2019, "CPC v2"):
  ``extract_patches`` cuts an image into overlapping patches (stride half a
  patch), ``PatchEncoder`` (a small ResNet with LayerNorm: no BatchNorm, so no
  information leaks between patches through batch statistics) maps each patch
  to z_ij, ``RowCausalContext`` (a PixelCNN-style masked-convolution stack)
  gives c_ij from the rows u <= i, and ``StepPredictors`` guess the rows below.
  Joined in ``ImageCPCModel``.

Every context network here is causal: c_t (c_ij) depends on z_<=t (the rows
u <= i) only, which the tests check through exact-zero gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssljax.config import check
from ssljax.models.conv import get_conv_impl

__all__ = ["CausalConvEncoder", "GRUContext", "GRID_CONTEXTS", "ImageCPCModel",
           "PATCH_ENCODERS", "PatchEncoder", "RowCausalContext",
           "RowCausalConv", "SEQUENCE_CONTEXTS", "SEQUENCE_ENCODERS",
           "SequenceCPCModel", "StepPredictors", "extract_patches",
           "grid_size"]


def _check_num_steps(module) -> None:
  check(module, ("num_steps", lambda k: isinstance(k, int) and k >= 1,
                 "prediction steps K: an integer >= 1; e.g. 12 (CPC audio) "
                 "or 3 (CPC v2 image grids)"))

# ---------------------------------------------------------------------------
# Shared: one linear predictor per step.


class StepPredictors(nn.Module):
  """``c [..., C] -> [..., K, D]``: ``W_k c`` for the K prediction steps.

  One ``C x D`` matrix per step (stored as one ``[C, K, D]`` kernel), no bias,
  as in CPC.
  """
  num_steps: int
  features: int

  @nn.compact
  def __call__(self, c):
    kernel = self.param("kernel", nn.initializers.lecun_normal(
        in_axis=0, out_axis=(1, 2)), (c.shape[-1], self.num_steps, self.features))
    return jnp.einsum("...c,ckd->...kd", c, kernel.astype(c.dtype))


# ---------------------------------------------------------------------------
# Sequences.


class CausalConvEncoder(nn.Module):
  """g_enc: strided 1-D convolutions, each padded on the left only.

  Layer ``i`` pads ``kernel - stride`` samples on the left and convolves with
  ``VALID`` padding, so output frame ``j`` sees inputs ``[j*s - (k - s),
  (j + 1) * s)``: ``z_t`` depends on samples before ``(t + 1) * prod(strides)``
  only. LayerNorm over channels (per frame, so frames do not mix) then ReLU
  after every convolution. CPC's audio encoder has strides (5, 4, 2, 2, 2)
  and kernels (10, 8, 4, 4, 4): 160 samples (10 ms at 16 kHz) per frame.

  Input ``[B, L]`` or ``[B, L, 1]`` with L a multiple of ``prod(strides)``;
  output ``[B, L / prod(strides), features[-1]]``.
  """
  features: Sequence[int] = (512, 512, 512, 512, 512)
  kernels: Sequence[int] = (10, 8, 4, 4, 4)
  strides: Sequence[int] = (5, 4, 2, 2, 2)
  use_norm: bool = True

  def __post_init__(self):
    super().__post_init__()
    same = len(self.features) == len(self.kernels) == len(self.strides)
    check(self,
          ("kernels", same, f"features {tuple(self.features)}, kernels "
           f"{tuple(self.kernels)} and strides {tuple(self.strides)} must have "
           "the same length (one per layer)"),
          ("kernels", lambda ks: all(k >= s for k, s in zip(ks, self.strides)),
           f"every kernel must be >= its stride {tuple(self.strides)}, or the "
           "layer skips inputs; e.g. (10, 8, 4, 4, 4) for strides "
           "(5, 4, 2, 2, 2)"))

  @property
  def downsample(self) -> int:
    out = 1
    for s in self.strides:
      out *= s
    return out

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train
    if x.ndim == 2:
      x = x[..., None]
    if x.ndim != 3:
      raise ValueError(f"CausalConvEncoder expects [B, L] or [B, L, C]; got "
                       f"{x.shape}.")
    if x.shape[1] % self.downsample:
      raise ValueError(f"sequence length {x.shape[1]} must be a multiple of the "
                       f"encoder's total stride {self.downsample} (the product "
                       f"of strides {tuple(self.strides)}): change the clip "
                       "length or the strides.")
    for i, (f, k, s) in enumerate(zip(self.features, self.kernels, self.strides)):
      x = jnp.pad(x, ((0, 0), (k - s, 0), (0, 0)))
      x = nn.Conv(f, (k,), strides=(s,), padding="VALID", name=f"conv{i}")(x)
      if self.use_norm:
        x = nn.LayerNorm(name=f"norm{i}")(x)
      x = nn.relu(x)
    return x


class GRUContext(nn.Module):
  """g_ar: a GRU over time (``nn.RNN``, i.e. ``nn.scan`` of a ``GRUCell``);
  ``z [B, T, F] -> c [B, T, features]`` with c_t a function of z_<=t."""
  features: int = 256

  @nn.compact
  def __call__(self, z):
    return nn.RNN(nn.GRUCell(self.features), name="gru")(z)


class SequenceCPCModel(nn.Module):
  """``x [B, L] -> (z [B,T,F], c [B,T,C], predictions [B,T,K,F])``."""
  encoder: nn.Module
  context: nn.Module
  num_steps: int = 12

  def __post_init__(self):
    super().__post_init__()
    _check_num_steps(self)

  def setup(self):
    self.predictors = StepPredictors(self.num_steps, self._z_features())

  def _z_features(self) -> int:
    return int(self.encoder.features[-1])

  def __call__(self, x, train: bool = True):
    z = self.encoder(x, train=train)
    c = self.context(z)
    return z, c, self.predictors(c)

  def encode(self, x, train: bool = False):
    """``(z, c)`` without the predictions."""
    z = self.encoder(x, train=train)
    return z, self.context(z)

  def context_from_z(self, z):
    return self.context(z)


# ---------------------------------------------------------------------------
# Image grids (CPC v2).


def grid_size(size: int, patch: int, stride: int) -> int:
  """Patches along one side: ``(size - patch) // stride + 1`` (must tile)."""
  if size < patch or (size - patch) % stride:
    raise ValueError(f"side {size} is not tiled by patches of {patch} at stride "
                     f"{stride}: need (size - patch) % stride == 0.")
  return (size - patch) // stride + 1


def extract_patches(images: jax.Array, patch: int, stride: int) -> jax.Array:
  """``[B, H, W, C] -> [B, gh, gw, patch, patch, C]``: the patch at grid
  position (i, j) is ``images[:, i*stride : i*stride + patch, j*stride : ...]``.
  CPC v2 uses ``stride = patch // 2`` (overlapping by half)."""
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C]; got {images.shape}.")
  gh = grid_size(images.shape[1], patch, stride)
  gw = grid_size(images.shape[2], patch, stride)
  rows = jnp.arange(gh)[:, None] * stride + jnp.arange(patch)[None, :]   # [gh, p]
  cols = jnp.arange(gw)[:, None] * stride + jnp.arange(patch)[None, :]   # [gw, p]
  x = images[:, rows[:, :, None, None], cols[None, None, :, :]]  # [B,gh,p,gw,p,C]
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5))


class _PreActBlock(nn.Module):
  """LayerNorm -> ReLU -> 3x3 conv, twice, plus the identity."""
  features: int
  conv_impl: str | Callable = "xla"

  @nn.compact
  def __call__(self, x):
    conv = get_conv_impl(self.conv_impl)
    y = nn.relu(nn.LayerNorm(reduction_axes=(-3, -2, -1))(x))
    y = nn.Conv(self.features, (3, 3), padding=1,
                conv_general_dilated=conv)(y)
    y = nn.relu(nn.LayerNorm(reduction_axes=(-3, -2, -1))(y))
    y = nn.Conv(self.features, (3, 3), padding=1,
                kernel_init=nn.initializers.zeros,
                conv_general_dilated=conv)(y)
    return x + y


class PatchEncoder(nn.Module):
  """A small pre-activation ResNet with LayerNorm, shared over patches.

  ``[N, p, p, C] -> [N, features]``: a 3x3 stem, then per stage a stride-2
  3x3 convolution (the first stage keeps the resolution) and ``blocks``
  residual blocks; LayerNorm over each patch's (H, W, C), mean pool, linear
  projection to ``features``.

  ``conv_impl`` picks the convolution as for
  :class:`ssljax.models.ResNet` (:mod:`ssljax.models.conv`; ``"auto"``:
  XLA's own on GPU/TPU, the faster CPU formulations on a CPU); it changes
  how the values are computed, not the parameters.
  """
  widths: Sequence[int] = (32, 64)
  blocks: Sequence[int] = (0, 1)
  features: int = 64
  conv_impl: str | Callable = "xla"

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train
    if x.ndim != 4:
      raise ValueError(f"PatchEncoder expects [N, p, p, C]; got {x.shape}.")
    conv = get_conv_impl(self.conv_impl)
    x = nn.Conv(self.widths[0], (3, 3), padding=1, name="stem",
                conv_general_dilated=conv)(x)
    for i, (w, nb) in enumerate(zip(self.widths, self.blocks)):
      if i > 0:
        x = nn.relu(nn.LayerNorm(reduction_axes=(-3, -2, -1))(x))
        x = nn.Conv(w, (3, 3), strides=(2, 2), padding=1, name=f"down{i}",
                    conv_general_dilated=conv)(x)
      for _ in range(nb):
        x = _PreActBlock(w, conv_impl=self.conv_impl)(x)
    x = nn.relu(nn.LayerNorm(reduction_axes=(-3, -2, -1))(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.features, name="proj")(x)


class RowCausalConv(nn.Module):
  """A convolution over a grid ``[B, H, W, C]`` whose output row i sees input
  rows ``i - kh + 1 ... i`` only (rows above and the row itself): the kernel's
  rows below the centre are removed (PixelCNN's vertical mask), implemented as
  top padding ``kh - 1`` and ``VALID`` rows; columns are ``SAME``."""
  features: int
  kernel_size: tuple[int, int] = (2, 3)
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    x = jnp.pad(x, ((0, 0), (kh - 1, 0), ((kw - 1) // 2, kw // 2), (0, 0)))
    return nn.Conv(self.features, (kh, kw), padding="VALID",
                   kernel_init=self.kernel_init)(x)


class RowCausalContext(nn.Module):
  """g_ar for image grids: ``z [B, H, W, D] -> c [B, H, W, features]`` with
  ``c[:, i]`` a function of ``z[:, :i+1]`` (all columns), top to bottom.

  A 1x1 input projection, then ``num_blocks`` residual blocks
  ``x + conv1x1(relu(RowCausalConv(relu(x))))`` (each block widens the view by
  ``kh - 1`` rows above and ``kw - 1`` columns).
  """
  features: int = 64
  num_blocks: int = 3
  kernel_size: tuple[int, int] = (2, 3)

  @nn.compact
  def __call__(self, z):
    if z.ndim != 4:
      raise ValueError(f"RowCausalContext expects [B, H, W, D]; got {z.shape}.")
    x = nn.Dense(self.features, name="in_proj")(z)
    for i in range(self.num_blocks):
      y = RowCausalConv(self.features, tuple(self.kernel_size),
                        name=f"block{i}_conv")(nn.relu(x))
      y = nn.Dense(self.features, kernel_init=nn.initializers.zeros,
                   name=f"block{i}_out")(nn.relu(y))
      x = x + y
    return x


class ImageCPCModel(nn.Module):
  """``patches [B, gh, gw, p, p, C] -> (z [B,gh,gw,D], c [B,gh,gw,C'],
  predictions [B,gh,gw,K,D])``; ``predictions[:, i, j, k]`` guesses
  ``z[:, i + skip + k + 1, j]`` (the skip is the loss's business)."""
  encoder: nn.Module
  context: nn.Module
  num_steps: int = 3

  def __post_init__(self):
    super().__post_init__()
    _check_num_steps(self)

  def setup(self):
    self.predictors = StepPredictors(self.num_steps, int(self.encoder.features))

  def embed(self, patches, train: bool = True):
    b, gh, gw = patches.shape[:3]
    z = self.encoder(patches.reshape(b * gh * gw, *patches.shape[3:]), train=train)
    return z.reshape(b, gh, gw, z.shape[-1])

  def __call__(self, patches, train: bool = True):
    z = self.embed(patches, train=train)
    c = self.context(z)
    return z, c, self.predictors(c)

  def encode(self, patches, train: bool = False):
    z = self.embed(patches, train=train)
    return z, self.context(z)

  def context_from_z(self, z):
    return self.context(z)


# ---------------------------------------------------------------------------
# By ``config.encoder.name`` / ``config.context.name``.

#: Sequence encoders (g_enc) of ``SequenceCPC``.
SEQUENCE_ENCODERS = {"causal_conv": CausalConvEncoder}
#: Sequence context networks (g_ar) of ``SequenceCPC``.
SEQUENCE_CONTEXTS = {"gru": GRUContext}
#: Patch encoders of ``ImageCPC``.
PATCH_ENCODERS = {"patch_encoder": PatchEncoder}
#: Row-causal grid context networks of ``ImageCPC``.
GRID_CONTEXTS = {"row_causal": RowCausalContext}
