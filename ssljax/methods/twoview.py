"""What the joint-embedding methods without negatives share: two augmented
views of each image, one encoder + projector (and, for BYOL and SimSiam, a
predictor), and the representation-health metrics that show collapse.

:class:`TwoViewMethod` is the base of BYOL, SimSiam, Barlow Twins and VICReg
(``ssljax.methods.byol`` / ``simsiam`` / ``barlow_twins`` / ``vicreg``). A
subclass sets its defaults and writes ``loss`` (and ``train_step`` when it has
more state, as BYOL's target network); ``init``, ``views``, ``embed`` and
``encode`` come from here.

Parameters are one tree ``{"net": <EncoderWithHead>, "predictor": <MLP>}``
(no ``predictor`` entry without one), so a single optimizer updates both;
``encode`` reads the encoder of ``net``. Both views go through one forward
pass, so BatchNorm statistics span all 2N views of the global batch.

Health metrics (logged every step, computed on device from the projections
of the first view, stop-gradient): ``effective_rank``, ``normalized_std``
(SimSiam's collapse monitor: about ``1/sqrt(D)`` when healthy, 0 when
collapsed), ``collapsed_dim_fraction`` and ``uniformity``
(``ssljax.losses.health``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax.augment import normalize_images, normalized_views
from ssljax.config import build
from ssljax.losses import health
from ssljax.methods.base import (Method, TrainState, build_encoder, build_head,
                                 compute_dtype, frozen_features, train_state)
from ssljax.methods.simclr import augment_from_config, view_size
from ssljax.models import EncoderWithHead, ProjectionMLP

__all__ = ["TwoViewMethod", "health_metrics", "net_trainable_features",
           "net_variables"]


def health_metrics(z: jax.Array) -> dict[str, jax.Array]:
  """Collapse diagnostics of projections ``[N, D]`` (no gradient)."""
  z = jax.lax.stop_gradient(z.astype(jnp.float32))
  report = health.collapse_report(z)
  return {"effective_rank": report["effective_rank"],
          "normalized_std": report["normalized_std"],
          "collapsed_dim_fraction": report["collapsed_dim_fraction"],
          "uniformity": health.uniformity(z)}


def net_trainable_features(model, mean, std, variables, images, train: bool):
  """Fine-tuning's features of float images in [0, 1]: the encoder of the
  ``net`` entry (BatchNorm in training mode when ``train``); returns the
  features and the whole ``batch_stats`` tree with ``net``'s updated."""
  net = net_variables(variables)
  x = normalize_images(images, mean, std)
  stats = variables.get("batch_stats", {})
  if not train:
    return model.apply(net, x, train=False, method=type(model).encode), stats
  feats, upd = model.apply(net, x, train=True, mutable=["batch_stats"],
                           method=type(model).encode)
  if "net" in variables["params"]:
    return feats, dict(stats, net=upd["batch_stats"])
  return feats, upd["batch_stats"]


def net_variables(variables_or_state) -> dict:
  """The ``net`` (encoder + projector) variables of a two-view method's
  state or variables dict."""
  if isinstance(variables_or_state, Mapping):
    params = variables_or_state["params"]
    stats = variables_or_state.get("batch_stats", {})
  else:
    params = variables_or_state.params
    stats = getattr(variables_or_state, "batch_stats", {})
  if "net" in params:          # a method state, not the encoder's own tree
    params, stats = params["net"], stats.get("net", {})
  return {"params": params, "batch_stats": stats}


@dataclasses.dataclass(frozen=True)
class TwoViewMethod(Method):
  """Two views, ``net = EncoderWithHead(encoder, projector)`` and an optional
  predictor MLP. Subclasses define ``loss`` (and may override
  ``train_step``).

  Attributes:
    model: the ``EncoderWithHead`` (encoder + projector).
    predictor: a ``ProjectionMLP`` on the projections, or None.
    tx: the optax optimizer.
    augment: keyword arguments of ``ssljax.augment.simclr_view``.
    mean, std: per-channel input normalization.
    schedule: the learning-rate schedule (reported as ``lr``).
  """
  model: nn.Module
  tx: optax.GradientTransformation
  predictor: nn.Module | None = None
  augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  #: Whether ``from_config`` builds a predictor (config ``predictor``).
  uses_predictor = False

  @classmethod
  def modules(cls, config) -> dict:
    """``model`` (``encoder`` + ``head``) and, when the method has one,
    ``predictor`` (config ``predictor``: ``ProjectionMLP`` fields; its
    ``out_dim`` defaults to the projector's)."""
    head = build_head(config)
    out = {"model": EncoderWithHead(encoder=build_encoder(config), head=head)}
    if cls.uses_predictor:
      section = config.get("predictor")
      fixed = {"dtype": compute_dtype(config)}
      if section is None or "out_dim" not in section:
        fixed["out_dim"] = head.out_dim
      out["predictor"] = build(ProjectionMLP, section, **fixed)
    return out

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
    """Parameters, BN statistics and optimizer state for ``[H, W, C]``."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    dummy = jnp.zeros((2, *view_size(self.augment, image_shape),
                       image_shape[2]), jnp.float32)
    return train_state(jax.jit(lambda k: self.init_variables(k, dummy))(key),
                       self.tx)

  def init_variables(self, key, dummy) -> dict:
    k_net, k_pred = jax.random.split(key)
    net = self.model.init(k_net, dummy, train=True)
    params = {"net": net["params"]}
    stats = {"net": net.get("batch_stats", {})}
    if self.predictor is not None:
      _, z = self.model.apply(net, dummy, train=False)
      pred = self.predictor.init(k_pred, z, train=True)
      params["predictor"] = pred["params"]
      stats["predictor"] = pred.get("batch_stats", {})
    return {"params": params, "batch_stats": stats}

  def views(self, images: jax.Array, key: jax.Array):
    """Two normalized views ``[B, h, w, C]`` of a uint8 batch."""
    return normalized_views(key, images, mean=self.mean, std=self.std,
                            **self.augment)

  def embed(self, params, batch_stats, v1, v2, *, predict: bool = False):
    """One forward pass of both views: ``(z1, z2, p1, p2, new_batch_stats)``
    (``p`` is None without ``predict``), float32."""
    n = v1.shape[0]
    (_, z), updates = self.model.apply(
        {"params": params["net"], "batch_stats": batch_stats["net"]},
        jnp.concatenate([v1, v2], axis=0), train=True, mutable=["batch_stats"])
    new_stats = dict(batch_stats, net=updates["batch_stats"])
    p = None
    if predict:
      p, pred_updates = self.predictor.apply(
          {"params": params["predictor"],
           "batch_stats": batch_stats["predictor"]},
          z, train=True, mutable=["batch_stats"])
      new_stats["predictor"] = pred_updates["batch_stats"]
      p = p.astype(jnp.float32)
    z = z.astype(jnp.float32)
    return (z[:n], z[n:], None if p is None else p[:n],
            None if p is None else p[n:], new_stats)

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of uint8 or [0, 1] float images
    (BatchNorm in inference mode)."""
    return frozen_features(self.model, self.mean, self.std,
                           net_variables(variables_or_state), images)

  def trainable_features(self, variables, images: jax.Array, train: bool):
    """Fine-tuning's features (``ssljax.eval.finetune``): see
    :func:`net_trainable_features`."""
    return net_trainable_features(self.model, self.mean, self.std, variables,
                                  images, train)

  @classmethod
  def common_fields(cls, config, *, tx, schedule, data) -> dict:
    """The fields every two-view method builds the same way."""
    return dict(tx=tx, schedule=schedule, mean=data.mean, std=data.std,
                augment=augment_from_config(config), **cls.modules(config))
