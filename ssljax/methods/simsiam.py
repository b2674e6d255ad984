"""SimSiam (Chen & He 2021): two views, an encoder + projector ``f`` and a
predictor ``h``; ``L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``D`` the
negative cosine similarity (the paper's eq. 1-2, Algorithm 1); no negatives,
no momentum encoder. The stop-gradient is what prevents collapse (the paper's
sec. 4.1): ``stop_gradient=False`` reproduces that experiment, and the
``normalized_std`` health metric (``ssljax.methods.twoview``) shows it, going
to 0 without the stop-gradient and staying near ``1/sqrt(D)`` with it.

The paper's shapes (ImageNet): a 3-layer projector 2048-2048-2048 with BN on
its output, and a bottleneck predictor 2048 -> 512 -> 2048
(``head`` / ``predictor`` config sections); SGD, lr 0.05 x B/256.
"""

from __future__ import annotations

import dataclasses

import jax

from ssljax import losses
from ssljax.config import build
from ssljax.methods.base import TrainState, loss_step, register, step_key
from ssljax.methods.twoview import TwoViewMethod, health_metrics


@register("simsiam")
@dataclasses.dataclass(frozen=True)
class SimSiam(TwoViewMethod):
  """SimSiam. ``stop_gradient``: True (the method); False only to show the
  collapse it prevents."""
  stop_gradient: bool = True
  uses_predictor = True

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``stop_gradient``, ``encoder``, ``head`` (projector),
    ``predictor``, ``augment``, ``compute_dtype``."""
    return build(cls, config, **cls.common_fields(config, tx=tx,
                                                  schedule=schedule, data=data))

  def loss(self, params, batch_stats, v1, v2):
    z1, z2, p1, p2, new_stats = self.embed(params, batch_stats, v1, v2,
                                           predict=True)
    loss = losses.simsiam_loss(p1, p2, z1, z2,
                               stop_gradient=self.stop_gradient)
    return loss, (new_stats, z1)

  def train_step(self, state: TrainState, images, key):
    """One SimSiam step on a global uint8 batch ``[N, H, W, C]``."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    v1, v2 = self.views(images, step_key(key, state))
    return loss_step(self, state, v1, v2, metrics=lambda loss, z1: {
        "loss": loss, **health_metrics(z1)})
