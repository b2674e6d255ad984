"""Rotation prediction (RotNet; Gidaris et al. 2018, "Unsupervised
representation learning by predicting image rotations").

Every image of the batch is shown in all four rotations (0, 90, 180, 270
degrees counter-clockwise; :func:`ssljax.augment.rotations`) and the encoder +
classifier predicts which one, a 4-way softmax cross-entropy. Metric
``rotation_acc``: the fraction of the ``4B`` rotated images classified right.

    method = Rotation(model=TileClassifier(encoder, ProjectionMLP(out_dim=4)),
                      tx=optax.sgd(0.1, momentum=0.9))
    state = method.init(jax.random.key(0), (28, 28, 1))
    state, metrics = jax.jit(method.train_step)(state, images_uint8, key)

Config (``config.method = "rotation"``): ``encoder``, ``head`` (without
``out_dim``: 4), ``augment`` (:func:`ssljax.augment.simclr_view` arguments
applied before rotating; empty: none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from ssljax.augment import (batch_apply, normalize_images, rotations,
                            simclr_view, to_float)
from ssljax.config import build, kwargs_for
from ssljax.methods.base import register
from ssljax.methods.pretext import PretextMethod, pretext_model

__all__ = ["Rotation"]


@register("rotation")
@dataclasses.dataclass(frozen=True)
class Rotation(PretextMethod):
  """RotNet: 4-way rotation classification.

  Attributes (besides :class:`~ssljax.methods.pretext.PretextMethod`'s):
    augment: keyword arguments of :func:`ssljax.augment.simclr_view` applied
      to each image before it is rotated (e.g. a mild crop and flip; RotNet's
      CIFAR code uses random crops and flips); empty: no augmentation.
  """
  augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  metric_name = "rotation_acc"
  num_classes = 4

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Sections ``encoder``, ``head`` and ``augment``."""
    model = pretext_model(config, num_classes=cls.num_classes,
                          what="rotations")
    return build(cls, config, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std,
                 augment=kwargs_for(simclr_view, config.get("augment")))

  def task(self, images: jax.Array, key: jax.Array):
    """``(rotated [4B, 1, H, W, C], labels [4B])`` of a uint8 batch
    (the tile axis of length 1 feeds :class:`TileClassifier`)."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    x = to_float(images)
    if self.augment:
      x = batch_apply(simclr_view, key, x, **dict(self.augment))
    x = normalize_images(x, self.mean, self.std)
    rotated, labels = rotations(x)
    return rotated[:, None], labels
