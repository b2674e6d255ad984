"""Upside-down prediction: a toy pretext task added as ONE module.

Each image is shown upright or flipped vertically and the encoder + a 2-way
head say which (softmax cross-entropy; metric ``flip_acc``). It is the worked
example of ``docs/adding_a_method.md``; ``tests/test_adding_a_method.py``
registers, validates, trains, resumes and evaluates it without touching any
other file of ssljax. Its config is ``docs/examples/flip_config.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax.augment import normalize_images, to_float
from ssljax.config import build, check
from ssljax.methods import (Method, TrainState, build_encoder, build_head,
                            frozen_features, loss_step, register, step_key,
                            train_state)
from ssljax.models import EncoderWithHead


@register("flip")
@dataclasses.dataclass(frozen=True)
class FlipPrediction(Method):
  """Config keys: ``encoder``, ``head`` (its ``out_dim`` is fixed to 2) and
  ``flip.p`` (the probability of showing an image flipped)."""
  model: nn.Module
  tx: optax.GradientTransformation
  p: float = 0.5
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable | None = None

  def __post_init__(self):
    check(self, ("p", lambda p: 0 < p < 1, "must lie in (0, 1), e.g. 0.5"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    model = EncoderWithHead(encoder=build_encoder(config),
                            head=build_head(config, out_dim=2))
    return build(cls, config.get("flip"), model=model, tx=tx,
                 schedule=schedule, mean=data.mean, std=data.std)

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    return train_state(self.model.init(key, dummy, train=True), self.tx)

  def loss(self, params, batch_stats, x, labels):
    (_, logits), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True,
        mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    acc = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss.mean(), (updates["batch_stats"], acc)

  def train_step(self, state: TrainState, images: jax.Array, key: jax.Array):
    labels = jax.random.bernoulli(step_key(key, state), self.p,
                                  images.shape[:1]).astype(jnp.int32)
    x = normalize_images(to_float(images), self.mean, self.std)
    x = jnp.where(labels[:, None, None, None] == 1, x[:, ::-1], x)
    return loss_step(self, state, x, labels,
                     metrics=lambda loss, acc: {"loss": loss, "flip_acc": acc})

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    return frozen_features(self.model, self.mean, self.std, variables_or_state,
                           images)
