"""ResNets (He et al. 2016) in Flax Linen, with CIFAR and ImageNet stems.

The encoder maps ``[B, H, W, C]`` float images to pooled features ``[B, F]``
(F = 512 for ResNet-18/34, 2048 for ResNet-50). BatchNorm statistics are
computed over the whole (global) batch: under ``jax.jit`` with the batch
sharded over the mesh axis ``data``, the mean/variance reductions span every
device (SimCLR's "global BN").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from ssljax.config import check
from ssljax.models.conv import get_conv_impl
from ssljax.models.norm import BatchNorm

ModuleDef = Any


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34)."""
  filters: int
  strides: int = 1
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm
  expansion = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides, padding=1)(x)
    y = self.norm()(y, relu=True)
    y = self.conv(self.filters, (3, 3), padding=1)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), self.strides, name="proj_conv")(
          residual)
      residual = self.norm(name="proj_bn")(residual)
    # relu(residual + bn(y)), fused (ssljax.models.norm).
    return self.norm(scale_init=nn.initializers.zeros)(
        y, residual=residual, relu=True)


class BottleneckBlock(nn.Module):
  """1x1 - 3x3 - 1x1 bottleneck (ResNet-50), stride on the 3x3 (v1.5)."""
  filters: int
  strides: int = 1
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm
  expansion = 4

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.norm()(self.conv(self.filters, (1, 1))(x), relu=True)
    y = self.conv(self.filters, (3, 3), self.strides, padding=1)(y)
    y = self.norm()(y, relu=True)
    y = self.conv(self.filters * 4, (1, 1))(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters * 4, (1, 1), self.strides,
                           name="proj_conv")(residual)
      residual = self.norm(name="proj_bn")(residual)
    return self.norm(scale_init=nn.initializers.zeros)(
        y, residual=residual, relu=True)


class ResNet(nn.Module):
  """A ResNet encoder without the classifier: returns pooled features.

  Attributes:
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    block: ``BasicBlock`` or ``BottleneckBlock``.
    widths: filters per stage (default 64 * 2**i).
    stem: ``"cifar"`` (3x3 conv, stride 1, no max-pool; for 32x32 and smaller)
      or ``"imagenet"`` (7x7 conv stride 2 + 3x3 max-pool stride 2).
    stem_width: filters of the stem convolution (default ``widths[0]``).
    dtype: computation dtype (``jnp.bfloat16`` on accelerators); parameters
      stay float32.
    bn_momentum: running-average decay of BatchNorm statistics.
    first_stage_stride: stride of the first stage (1 in the standard nets; 2
      halves the resolution early, which makes 28x28 CPU runs several times
      cheaper: XLA:CPU's weight-gradient convolutions are slow at full
      resolution).
    conv_impl: the convolution: a name in the registry
      :data:`ssljax.models.conv.CONV_IMPLS` (``"xla"``:
      ``lax.conv_general_dilated``; ``import ssljax.cpu.conv`` adds the faster
      XLA:CPU ones ``"matmul"``, ``"cpu"`` and ``"onednn"``), ``"auto"``
      (``"xla"`` on GPU/TPU, the fastest registered one on CPU:
      :func:`ssljax.models.conv.resolve_conv_impl`), or a function with
      ``lax.conv_general_dilated``'s signature. All give the same values up
      to float rounding.
    out_width: if set, a final 1x1 convolution + BN + ReLU to this many
      channels before the pooling (the "head convolution" of MobileNet and
      EfficientNet): wider features for a fraction of the cost of a wider
      last stage. Features = ``out_width``.
  """
  stage_sizes: Sequence[int]
  block: ModuleDef = BasicBlock
  widths: Sequence[int] | None = None
  stem: str = "cifar"
  stem_width: int | None = None
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  first_stage_stride: int = 1
  conv_impl: str | Callable = "xla"
  out_width: int | None = None

  def __post_init__(self):
    positive = lambda xs: all(isinstance(v, int) and v >= 1 for v in xs)
    check(self,
          ("stage_sizes", lambda s: len(s) >= 1 and positive(s),
           "blocks per stage: a tuple of integers >= 1"),
          ("widths", lambda w: w is None or (
              len(w) == len(self.stage_sizes) and positive(w)),
           f"filters per stage: {len(self.stage_sizes)} integers >= 1, one "
           "per stage (stage_sizes)"),
          ("stem", lambda v: v in ("cifar", "imagenet"),
           "'cifar' or 'imagenet'"),
          ("stem_width", lambda v: v is None or v >= 1, "an integer >= 1"),
          ("bn_momentum", lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
          ("first_stage_stride", lambda v: v >= 1, "an integer >= 1"),
          ("out_width", lambda v: v is None or v >= 0,
           "must be >= 0 (0 or None: no head convolution)"))
    super().__post_init__()

  @property
  def features(self) -> int:
    if self.out_width:
      return self.out_width
    widths = self.widths or [64 * 2**i for i in range(len(self.stage_sizes))]
    return widths[-1] * self.block.expansion

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.ndim != 4:
      raise ValueError(f"ResNet expects images [B, H, W, C]; got {x.shape}.")
    widths = self.widths or [64 * 2**i for i in range(len(self.stage_sizes))]
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             conv_general_dilated=get_conv_impl(self.conv_impl),
                             kernel_init=nn.initializers.variance_scaling(
                                 2.0, "fan_out", "normal"))
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             dtype=self.dtype)
    x = x.astype(self.dtype)
    stem_width = self.stem_width or widths[0]
    if self.stem == "cifar":
      x = conv(stem_width, (3, 3), padding=1, name="stem_conv")(x)
      x = norm(name="stem_bn")(x, relu=True)
    elif self.stem == "imagenet":
      x = conv(stem_width, (7, 7), 2, padding=3, name="stem_conv")(x)
      x = norm(name="stem_bn")(x, relu=True)
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {self.stem!r}.")
    for i, (blocks, width) in enumerate(zip(self.stage_sizes, widths)):
      for j in range(blocks):
        strides = (self.first_stage_stride if i == 0 else 2) if j == 0 else 1
        x = self.block(width, strides, conv=conv, norm=norm)(x)
    if self.out_width:
      x = conv(self.out_width, (1, 1), name="out_conv")(x)
      x = norm(name="out_bn")(x, relu=True)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3),
                             block=BottleneckBlock)


def SmallResNet(widths: Sequence[int] = (32, 64, 128),
                stage_sizes: Sequence[int] = (1, 1, 1), **kw) -> ResNet:
  """A 3-stage ResNet for 28x28 / 32x32 CPU runs (CIFAR stem, 1 block a stage).

  Spatial sizes for 28x28 inputs: 28 -> 14 -> 7; features = widths[-1].
  """
  kw.setdefault("stem", "cifar")
  return ResNet(stage_sizes=tuple(stage_sizes), widths=tuple(widths),
                block=BasicBlock, **kw)
