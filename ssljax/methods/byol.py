"""BYOL (Grill et al. 2020): an online network (encoder, projector, predictor)
predicts the projection of the other view by a target network, the EMA of
the online encoder + projector; no negatives.

Per step (the paper's sec. 3.1-3.2 and its Algorithm 1):

1. two views; online projections ``z`` and predictions ``p = q(z)``; target
   projections ``z'`` from the target network (no gradient);
2. the symmetric normalized MSE ``L = ||p1^ - z2'^||^2 + ||p2^ - z1'^||^2``
   (``2 - 2 cos`` per term, mean over the batch;
   ``ssljax.losses.byol_symmetric_loss``), stop-gradient on the target;
3. an optimizer step (LARS in the paper) on the online network;
4. the target update ``xi <- tau xi + (1 - tau) theta`` with the online
   parameters after this step, ``tau`` following the cosine schedule from
   ``base_momentum`` (0.996) to 1 over training
   (``ssljax.methods.ema.momentum_schedule``).

The target network's BatchNorm running statistics come from its own forward
passes (its parameters are the EMA). The paper's shapes: projector
4096 -> 256, predictor 4096 -> 256 (``head`` / ``predictor`` config sections).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp

from ssljax import losses
from ssljax.config import build, check
from ssljax.methods.base import apply_gradients, register, step_key
from ssljax.methods.ema import ema_update, momentum_schedule
from ssljax.methods.twoview import TwoViewMethod, health_metrics


@flax.struct.dataclass
class BYOLState:
  """``step``, ``params`` (``{"net", "predictor"}``), ``batch_stats``,
  ``opt_state``, and the target network: ``target_params`` /
  ``target_batch_stats`` (the structure of ``params["net"]``)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  target_params: Any
  target_batch_stats: Any


@register("byol")
@dataclasses.dataclass(frozen=True)
class BYOL(TwoViewMethod):
  """BYOL. Attributes beyond :class:`TwoViewMethod`'s:

  base_momentum: the target EMA momentum at step 0 (paper 0.996).
  total_steps: steps of the cosine momentum schedule (the run's length).
  """
  base_momentum: float = 0.996
  total_steps: int = 1
  uses_predictor = True

  def __post_init__(self):
    check(self,
          ("base_momentum", lambda m: 0 <= m <= 1, "must lie in [0, 1]; the "
           "paper's 0.996"),
          ("total_steps", lambda t: t >= 1, "must be >= 1"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``base_momentum``, ``encoder``, ``head`` (projector),
    ``predictor``, ``augment``, ``compute_dtype``."""
    return build(cls, config, total_steps=max(1, data.num_steps),
                 **cls.common_fields(config, tx=tx, schedule=schedule,
                                     data=data))

  def momentum_at(self, step):
    return momentum_schedule(self.base_momentum, self.total_steps)(step)

  def init(self, key, image_shape) -> BYOLState:
    s = super().init(key, image_shape)
    # The target starts as a copy (own buffers: the state is donated) of the
    # online encoder + projector.
    copy = lambda tree: jax.tree.map(jnp.copy, tree)
    return BYOLState(step=s.step, params=s.params, batch_stats=s.batch_stats,
                     opt_state=s.opt_state, target_params=copy(s.params["net"]),
                     target_batch_stats=copy(s.batch_stats["net"]))

  def targets(self, target_params, target_batch_stats, v1, v2):
    """Target projections of both views (no gradient) and the target's new
    BatchNorm statistics."""
    n = v1.shape[0]
    (_, z), upd = self.model.apply(
        {"params": target_params, "batch_stats": target_batch_stats},
        jnp.concatenate([v1, v2], axis=0), train=True, mutable=["batch_stats"])
    z = jax.lax.stop_gradient(z.astype(jnp.float32))
    return z[:n], z[n:], upd["batch_stats"]

  def loss(self, params, batch_stats, v1, v2, t1, t2):
    """The symmetric BYOL loss of the online predictions against the target
    projections ``t1``, ``t2``."""
    z1, _, p1, p2, new_stats = self.embed(params, batch_stats, v1, v2,
                                          predict=True)
    loss = losses.byol_symmetric_loss(p1, p2, t1, t2)
    return loss, (new_stats, z1)

  def train_step(self, state: BYOLState, images, key):
    """One BYOL step on a global uint8 batch ``[N, H, W, C]``."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    v1, v2 = self.views(images, step_key(key, state))
    t1, t2, target_stats = self.targets(state.target_params,
                                        state.target_batch_stats, v1, v2)
    (loss, (batch_stats, z1)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, v1, v2, t1,
                                 t2)
    m = self.momentum_at(state.step)
    metrics = {"loss": loss, "momentum": m, **health_metrics(z1)}
    new, metrics = apply_gradients(state, grads, tx=self.tx, metrics=metrics,
                                   schedule=self.schedule,
                                   batch_stats=batch_stats,
                                   target_batch_stats=target_stats)
    return new.replace(target_params=ema_update(
        state.target_params, new.params["net"], m)), metrics
