"""The networks of the colorization methods.

* :class:`ColorNet`: a library encoder on the lightness ``L`` and a small
  per-pixel head classifying each cell's colour (Zhang et al. 2016,
  "Colorful image colorization"; hypercolumn features as in Larsson et al.
  2016, "Learning representations for automatic colorization");
* :class:`SplitBrainNet`: two disjoint :class:`ColorNet` s, ``L -> ab`` and
  ``ab -> L`` (Zhang et al. 2017, "Split-brain autoencoders");
* :class:`EmbeddingNet`: the per-frame embedding CNN of video colorization
  (Vondrick et al. 2018, "Tracking emerges by colorizing videos").

The methods that train them are in :mod:`ssljax.methods.colorization` and
:mod:`ssljax.methods.video_colorization`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["ColorNet", "EmbeddingNet", "SplitBrainNet"]


def _encoder_maps(encoder: nn.Module, x, train: bool):
  """``(pooled, maps)``: the encoder's output and, in call order, the 4-D
  outputs of every sub-module it called (convolutions, norms, blocks)."""
  maps = []

  def grab(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if (context.method_name == "__call__" and hasattr(out, "ndim")
        and out.ndim == 4):
      maps.append(out)
    return out

  with nn.intercept_methods(grab):
    pooled = encoder(x, train=train)
  return pooled, maps


class ColorNet(nn.Module):
  """Encoder + per-pixel classifier.

  The encoder returns pooled features (what ``encode`` gives a linear
  probe); the head reads its feature maps by intercepting the outputs of the
  encoder's sub-modules (``flax.linen.intercept_methods``, no change to the
  encoder): with ``hypercolumn=True`` the last map of every resolution, else
  only the last one. Each is projected by a 1x1 convolution, resized
  (bilinear) to ``H / out_stride x W / out_stride`` and summed, then BN-ReLU,
  a 3x3 convolution, BN-ReLU and a 1x1 convolution to ``num_classes``
  logits.

  Attributes:
    encoder: a library encoder (``ssljax.models.get_encoder(...)``) whose ``__call__(x,
      train)`` runs convolutional sub-modules and returns pooled features.
    num_classes: logits per pixel (``Q`` ab bins, or 50 L bins).
    hidden_dim: channels of the head.
    out_stride: the logits are ``[B, H / out_stride, W / out_stride, Q]``.
    hypercolumn: read the last feature map of every resolution (True) or
      only the encoder's last map (False, as in Zhang et al.).
    dtype: computation dtype of the head; logits are float32.
  """
  encoder: nn.Module
  num_classes: int
  hidden_dim: int = 64
  out_stride: int = 2
  hypercolumn: bool = True
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.ndim != 4:
      raise ValueError(f"ColorNet expects images [B, H, W, C]; got {x.shape}.")
    b, h, w = x.shape[:3]
    s = int(self.out_stride)
    if s < 1 or h % s or w % s:
      raise ValueError(f"out_stride={self.out_stride} must divide the image "
                       f"size {h}x{w}.")
    _, maps = _encoder_maps(self.encoder, x, train)
    if not maps:
      raise ValueError("the encoder called no sub-module with a 4-D output: "
                       "ColorNet needs a convolutional encoder.")
    if self.hypercolumn:
      last = {}
      for m in maps:                             # last map of each size
        last[m.shape[1:3]] = m
      chosen = list(last.values())
    else:
      chosen = [maps[-1]]
    out_hw = (h // s, w // s)
    # He-normal (fan-out, untruncated, as the library ResNet; quick
    # to compile on XLA:CPU, unlike the truncated normal).
    conv = functools.partial(nn.Conv, dtype=self.dtype, use_bias=False,
                             kernel_init=nn.initializers.variance_scaling(
                                 2.0, "fan_out", "normal"))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             dtype=self.dtype)
    y = None
    for i, m in enumerate(chosen):
      p = conv(self.hidden_dim, (1, 1), name=f"lateral_{i}")(m)
      if p.shape[1:3] != out_hw:
        p = jax.image.resize(p, (b, *out_hw, p.shape[-1]), "bilinear")
      y = p if y is None else y + p
    y = nn.relu(norm(name="fuse_bn")(y))
    y = conv(self.hidden_dim, (3, 3), padding=1, name="conv")(y)
    y = nn.relu(norm(name="conv_bn")(y))
    # Small logits at the start: nearly uniform predictions.
    logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     kernel_init=nn.initializers.normal(0.01),
                     name="logits")(y)
    return logits.astype(jnp.float32)

  def encode(self, x, train: bool = False):
    return self.encoder(x, train=train)


class SplitBrainNet(nn.Module):
  """Two disjoint sub-networks: ``l_net`` (L -> ab bins) and ``ab_net``
  (ab -> L bins); ``encode`` concatenates their encoders' features."""
  l_net: ColorNet
  ab_net: ColorNet

  def __call__(self, l_input, ab_input, train: bool = True):
    return self.l_net(l_input, train=train), self.ab_net(ab_input, train=train)

  def encode(self, l_input, ab_input, train: bool = False):
    return jnp.concatenate([self.l_net.encode(l_input, train=train),
                            self.ab_net.encode(ab_input, train=train)], -1)


class EmbeddingNet(nn.Module):
  """The per-frame network of video colorization: a small CNN from gray
  ``[N, H, W, 1]`` to embeddings ``[N, H / 4, W / 4, embed_dim]``: a 3x3 convolution, then per stage a stride-2 3x3
  convolution and a 3x3 one, then dilated 3x3 convolutions (dilation 2, 4:
  a wider receptive field at 1/4 resolution) and a 1x1 projection; GroupNorm
  and ReLU after every convolution but the last (no BatchNorm: nothing
  mixes across the batch or the frames of a clip).

  Attributes:
    widths: channels of the stem and of each stride-2 stage (the number of
      stages sets the stride ``2 ** (len(widths) - 1)``).
    dilations: dilated convolutions at the last resolution.
    embed_dim: ``D``.
    groups: GroupNorm groups.
  """
  widths: Sequence[int] = (32, 64, 64)
  dilations: Sequence[int] = (2, 4)
  embed_dim: int = 64
  groups: int = 8

  @property
  def stride(self) -> int:
    return 2 ** (len(self.widths) - 1)

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train                                   # no batch statistics
    if x.ndim != 4:
      raise ValueError(f"EmbeddingNet expects [N, H, W, C]; got {x.shape}.")
    s = self.stride
    if x.shape[1] % s or x.shape[2] % s:
      raise ValueError(f"frame size {x.shape[1]}x{x.shape[2]} must be a "
                       f"multiple of the stride {s}.")
    # He-normal, untruncated: quick to compile on XLA:CPU.
    conv = functools.partial(nn.Conv, kernel_init=nn.initializers.variance_scaling(
        2.0, "fan_in", "normal"))

    def block(y, width, name, **kw):
      y = conv(width, (3, 3), padding="SAME", name=name, **kw)(y)
      y = nn.GroupNorm(num_groups=min(self.groups, width), name=name + "_gn")(y)
      return nn.relu(y)

    y = block(x, self.widths[0], "stem")
    for i, width in enumerate(self.widths[1:]):
      y = block(y, width, f"down{i}", strides=2)
      y = block(y, width, f"conv{i}")
    for i, d in enumerate(self.dilations):
      y = block(y, self.widths[-1], f"dilated{i}", kernel_dilation=d)
    return nn.Conv(self.embed_dim, (1, 1), name="embed",
                   kernel_init=nn.initializers.variance_scaling(
                       1.0, "fan_in", "normal"))(y).astype(jnp.float32)
