"""Projection heads and the encoder + head pair used by the methods."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssljax.config import check


class ProjectionMLP(nn.Module):
  """SimCLR's projection head g(.) (Chen et al. 2020, sec. 2.1; v2 appendix).

  ``num_layers`` Dense layers: the first ``num_layers - 1`` are
  Dense(hidden_dim) -> BatchNorm -> ReLU, the last is Dense(out_dim)
  (followed by a BatchNorm without scale when ``final_bn``, as in SimCLR v2).
  ``num_layers=1`` is MoCo v1's linear head. ``hidden_dim=None`` uses the
  input (encoder) width, as the paper does.
  """
  out_dim: int = 128
  hidden_dim: int | None = None
  num_layers: int = 2
  use_bn: bool = True
  final_bn: bool = False
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  def __post_init__(self):
    check(self,
          ("out_dim", lambda v: v >= 1, "an integer >= 1"),
          ("hidden_dim", lambda v: v is None or v >= 0,
           "an integer >= 0 (0 or None: the encoder width)"),
          ("num_layers", lambda v: v >= 1, "an integer >= 1 (1: linear)"),
          ("bn_momentum", lambda v: 0 <= v <= 1, "must lie in [0, 1]"))
    super().__post_init__()

  @nn.compact
  def __call__(self, h, train: bool = True):
    if h.ndim != 2:
      raise ValueError(f"ProjectionMLP expects features [B, F]; got {h.shape}.")
    hidden = self.hidden_dim or h.shape[-1]
    norm = lambda **kw: nn.BatchNorm(use_running_average=not train,
                                     momentum=self.bn_momentum, dtype=self.dtype,
                                     **kw)
    x = h.astype(self.dtype)
    for _ in range(self.num_layers - 1):
      x = nn.Dense(hidden, use_bias=not self.use_bn, dtype=self.dtype)(x)
      if self.use_bn:
        x = norm()(x)
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.final_bn, dtype=self.dtype)(x)
    if self.final_bn:
      x = norm(use_scale=False)(x)
    return x.astype(jnp.float32)


class EncoderWithHead(nn.Module):
  """``x -> (h, z)``: encoder features h and head output z = head(h)."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, x, train: bool = True):
    h = self.encoder(x, train=train)
    return h, self.head(h, train=train)

  def encode(self, x, train: bool = False):
    return self.encoder(x, train=train)
