"""VICReg (Bardes et al. 2022): two views, an encoder + projector ("expander");
``L = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]`` with the
invariance ``s`` (mean squared error), the variance hinge ``v`` (on the std of
each dimension over the batch, eps 1e-4) and the covariance ``c`` (the squared
off-diagonal covariances divided by d); weights 25 / 25 / 1 (the paper's
eq. 1-6, ``ssljax.losses.vicreg_loss``). The statistics span the global
batch. The three terms are logged (``invariance``, ``variance``,
``covariance``).

The paper's shapes (ImageNet): a 3-layer expander 8192-8192-8192 (``head``
config section), LARS.
"""

from __future__ import annotations

import dataclasses

from ssljax import losses
from ssljax.config import build, check
from ssljax.methods.base import TrainState, loss_step, register, step_key
from ssljax.methods.twoview import TwoViewMethod, health_metrics


@register("vicreg")
@dataclasses.dataclass(frozen=True)
class VICReg(TwoViewMethod):
  """VICReg. ``sim_coeff`` (lambda), ``std_coeff`` (mu), ``cov_coeff`` (nu):
  the paper's 25 / 25 / 1; ``std_coeff=0`` removes the variance term (the
  ablation that collapses)."""
  sim_coeff: float = 25.0
  std_coeff: float = 25.0
  cov_coeff: float = 1.0

  def __post_init__(self):
    check(self,
          ("sim_coeff", lambda v: v >= 0, "must be >= 0; the paper's 25"),
          ("std_coeff", lambda v: v >= 0, "must be >= 0; the paper's 25"),
          ("cov_coeff", lambda v: v >= 0, "must be >= 0; the paper's 1"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``sim_coeff``, ``std_coeff``, ``cov_coeff``, ``encoder``,
    ``head`` (expander), ``augment``, ``compute_dtype``."""
    return build(cls, config, **cls.common_fields(config, tx=tx,
                                                  schedule=schedule, data=data))

  def loss(self, params, batch_stats, v1, v2):
    z1, z2, _, _, new_stats = self.embed(params, batch_stats, v1, v2)
    loss, terms = losses.vicreg_loss(z1, z2, sim_coeff=self.sim_coeff,
                                     std_coeff=self.std_coeff,
                                     cov_coeff=self.cov_coeff)
    return loss, (new_stats, (z1, terms))

  def train_step(self, state: TrainState, images, key):
    """One VICReg step on a global uint8 batch ``[N, H, W, C]``."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    v1, v2 = self.views(images, step_key(key, state))
    return loss_step(self, state, v1, v2, metrics=lambda loss, aux: {
        "loss": loss, **aux[1], **health_metrics(aux[0])})
