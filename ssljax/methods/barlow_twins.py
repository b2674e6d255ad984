"""Barlow Twins (Zbontar et al. 2021): two views, an encoder + projector; the
cross-correlation matrix of the two views' embeddings, each dimension
standardized over the global batch, is pushed to the identity:
``L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2`` (the paper's eq. 1-2,
``ssljax.losses.barlow_twins_loss``; lambda 5e-3). The statistics span the
global batch, not each device's share.

The paper's shapes (ImageNet): a 3-layer projector 8192-8192-8192
(``head`` config section), LARS.
"""

from __future__ import annotations

import dataclasses

from ssljax import losses
from ssljax.config import build, check
from ssljax.methods.base import TrainState, loss_step, register, step_key
from ssljax.methods.twoview import TwoViewMethod, health_metrics


@register("barlow_twins")
@dataclasses.dataclass(frozen=True)
class BarlowTwins(TwoViewMethod):
  """Barlow Twins. ``lambda_``: weight of the off-diagonal (redundancy
  reduction) term (paper 5e-3); config key ``lambda_``."""
  lambda_: float = 5e-3

  def __post_init__(self):
    check(self, ("lambda_", lambda v: v >= 0, "must be >= 0; the paper's 5e-3"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``lambda_``, ``encoder``, ``head`` (projector), ``augment``,
    ``compute_dtype``."""
    return build(cls, config, **cls.common_fields(config, tx=tx,
                                                  schedule=schedule, data=data))

  def loss(self, params, batch_stats, v1, v2):
    z1, z2, _, _, new_stats = self.embed(params, batch_stats, v1, v2)
    return losses.barlow_twins_loss(z1, z2, lambda_=self.lambda_), (
        new_stats, z1)

  def train_step(self, state: TrainState, images, key):
    """One Barlow Twins step on a global uint8 batch ``[N, H, W, C]``."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    v1, v2 = self.views(images, step_key(key, state))
    return loss_step(self, state, v1, v2, metrics=lambda loss, z1: {
        "loss": loss, **health_metrics(z1)})
