"""SimCLR (Chen et al. 2020): two augmented views, a shared encoder f and
projection head g, NT-Xent over the 2N x 2N cosine similarities of the global
batch.

Functional shape::

    method = SimCLR(model=EncoderWithHead(...), tx=optax..., schedule=...)
    # or: SimCLR.from_config(config, tx=tx, schedule=schedule, data=spec)
    state = method.init(jax.random.key(0), image_shape=(28, 28, 1))
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, data_key)

``train_step`` folds ``state.step`` into ``data_key`` for its augmentation
randomness, so a resumed run draws exactly the views an uninterrupted run
would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax import losses
from ssljax.augment import normalized_views, simclr_view
from ssljax.config import build, check, kwargs_for
from ssljax.methods.base import (Method, TrainState, build_encoder, build_head,
                                 frozen_features, loss_step, register,
                                 step_key, train_state)
from ssljax.models import EncoderWithHead


def view_size(augment: Mapping[str, Any], image_shape: Sequence[int]):
  """The ``(h, w)`` of the views ``simclr_view(**augment)`` makes."""
  size = augment.get("size") or tuple(image_shape[:2])
  return (size, size) if isinstance(size, int) else tuple(size)


def augment_from_config(config) -> dict[str, Any]:
  """``config.augment``: keyword arguments of ``ssljax.augment.simclr_view``."""
  return kwargs_for(simclr_view, config.get("augment"))


@register("simclr")
@dataclasses.dataclass(frozen=True)
class SimCLR(Method):
  """SimCLR: its static parts (model, optimizer, hyperparameters).

  Attributes:
    model: an ``EncoderWithHead`` returning ``(h, z)``.
    tx: the optax optimizer (e.g. ``make_optimizer("lars", schedule)``).
    temperature: NT-Xent temperature (0.5 CIFAR-size, 0.1 ImageNet).
    augment: keyword arguments of ``ssljax.augment.simclr_view``.
    mean, std: per-channel input normalization applied after augmentation.
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
    loss_block_size: ``None`` or 0: dense NT-Xent; an int: the
      memory-bounded blockwise NT-Xent (``ssljax.losses.nt_xent(block_size=
      ...)``), for batches whose ``[2N, 2N]`` logits do not fit.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  temperature: float = 0.5
  augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None
  loss_block_size: int | None = None

  def __post_init__(self):
    check(self,
          ("temperature", lambda t: t > 0,
           "must be > 0 (the logits are divided by it); e.g. 0.1"),
          ("loss_block_size", lambda b: b is None or b >= 0,
           "0 or None computes the full 2N x 2N logits; else a block size"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``temperature``, ``loss_block_size``, ``encoder``, ``head``,
    ``augment`` (``simclr_view`` arguments), ``compute_dtype``."""
    model = EncoderWithHead(encoder=build_encoder(config),
                            head=build_head(config))
    return build(cls, config, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std,
                 augment=augment_from_config(config))

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
    """Parameters, BN statistics and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    dummy = jnp.zeros((2, *view_size(self.augment, image_shape),
                       image_shape[2]), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, dummy, train=True))(key)
    return train_state(variables, self.tx)

  def views(self, images: jax.Array, key: jax.Array):
    """Two normalized views ``[B, h, w, C]`` of a uint8 batch."""
    return normalized_views(key, images, mean=self.mean, std=self.std,
                            **self.augment)

  def loss(self, params, batch_stats, v1: jax.Array, v2: jax.Array):
    """NT-Xent of the two views; both views go through one forward pass so
    BatchNorm statistics span all 2N images, as in the paper."""
    n = v1.shape[0]
    (_, z), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats},
        jnp.concatenate([v1, v2], axis=0), train=True, mutable=["batch_stats"])
    z1, z2 = z[:n].astype(jnp.float32), z[n:].astype(jnp.float32)
    loss = losses.nt_xent(z1, z2, temperature=self.temperature,
                          block_size=self.loss_block_size or None)
    return loss, (updates["batch_stats"], (z1, z2))

  def train_step(self, state: TrainState, images: jax.Array, key: jax.Array
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SimCLR step on a global uint8 batch ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. ``key`` is the run's data key;
    the step's key is ``fold_in(key, state.step)``.
    """
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    n = images.shape[0]
    v1, v2 = self.views(images, step_key(key, state))
    return loss_step(self, state, v1, v2, metrics=lambda loss, z: {
        "loss": loss,
        "mi_bound": losses.mutual_information_lower_bound(loss, 2 * n - 1),
        **similarity_stats(*z)})

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of uint8 or [0,1] float images
    (BatchNorm in inference mode, running statistics)."""
    return frozen_features(self.model, self.mean, self.std, variables_or_state,
                           images)


def similarity_stats(z1: jax.Array, z2: jax.Array) -> dict[str, jax.Array]:
  """Mean cosine similarity of positive pairs and of all negative pairs."""
  z = jax.lax.stop_gradient(
      losses.l2_normalize(jnp.concatenate([z1, z2], axis=0)))
  n2 = z.shape[0]
  total = jnp.sum(jnp.sum(z, axis=0) ** 2)       # sum over all i, j of s_ij
  pos = jnp.sum(z[: n2 // 2] * z[n2 // 2:])      # sum over the N positive pairs
  diag = jnp.sum(z * z)                           # self-similarities
  neg = (total - diag - 2 * pos) / (n2 * (n2 - 2))
  return {"pos_sim": pos / (n2 // 2), "neg_sim": neg}
