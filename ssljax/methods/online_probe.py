"""An online linear probe that any method trains during pre-training.

A linear classifier on the method's frozen features (``method.encode``, under
``jax.lax.stop_gradient``), updated in the same jitted step as the method,
from the labels of the pre-training batch. Its training-batch accuracy is the
cheap accuracy curve of a run (``probe_acc`` in ``metrics.jsonl``); the
self-supervised update never sees the labels (the gradient of the probe's
loss does not reach the encoder, a tested property). This is the "online
linear evaluation" of SimCLR's and solo-learn's training logs; the offline
protocol (``ssljax.eval.linear``) stays the figure to report.

    method = OnlineProbe(SimCLR(...), num_classes=10)     # or config:
    # c.online_probe = ml_collections.ConfigDict(dict(lr=0.1))
    # (OnlineProbe.from_config(config, method=method, data=spec))
    state = method.init(key, image_shape)
    state, metrics = jax.jit(method.train_step, donate_argnums=0)(
        state, {"image": images, "label": labels}, key)
    metrics["probe_loss"], metrics["probe_acc"]

Features are those of the encoder *before* this step's update, in inference
mode (BatchNorm running statistics), on the un-augmented batch: what the
offline probe sees. The cost is one extra encoder forward pass per step.
Labels < 0 (unlabelled examples, e.g. STL-10's ``unlabelled`` split) are
left out of the probe's loss and accuracy.

The wrapped state (:class:`OnlineProbeState`) exposes ``params``,
``batch_stats`` and ``step`` of the method's state, so checkpoints, the
evaluation protocol and the monitors work on it unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax

from ssljax.config import ConfigReader, build, check
from ssljax.methods.base import Method

_INNER_FIELDS = ("params", "batch_stats", "step")


@dataclasses.dataclass(frozen=True)
class OnlineProbeState:
  """The method's state (``inner``) plus the probe's ``W, b`` and optimizer
  state."""
  inner: Any
  probe: Any
  probe_opt_state: Any

  @property
  def params(self):
    return self.inner.params

  @property
  def batch_stats(self):
    return getattr(self.inner, "batch_stats", {})

  @property
  def step(self):
    return self.inner.step

  def replace(self, **changes) -> "OnlineProbeState":
    """``dataclasses.replace``; ``params``, ``batch_stats`` and ``step`` go to
    the inner state (what the training loop's non-finite guard replaces)."""
    inner = {k: changes.pop(k) for k in _INNER_FIELDS if k in changes}
    new = dataclasses.replace(self, **changes)
    if inner:
      new = dataclasses.replace(new, inner=new.inner.replace(**inner))
    return new


jax.tree_util.register_dataclass(
    OnlineProbeState, data_fields=["inner", "probe", "probe_opt_state"],
    meta_fields=[])


def probe_loss(probe, features, labels):
  """Mean softmax cross-entropy of ``features @ W + b`` over the labelled
  (``>= 0``) examples, and their accuracy; ``(loss, accuracy)``."""
  logits = features @ probe["w"] + probe["b"]
  valid = (labels >= 0).astype(jnp.float32)
  count = jnp.maximum(valid.sum(), 1.0)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.maximum(labels, 0))
  hits = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return jnp.sum(ce * valid) / count, jnp.sum(hits * valid) / count


@dataclasses.dataclass(frozen=True)
class OnlineProbe(Method):
  """Wrap ``method`` (anything with ``init``, ``train_step(state, images,
  key)`` and ``encode(state, images) -> [B, F]``) with an online linear probe.

  Not registered: it wraps a registered method (``config.online_probe``).
  Its ``train_step(state, batch, key)`` takes the batch dict ``{"image",
  "label"}`` (``takes_labels``: the training loop passes it whole). Every
  other attribute is the wrapped method's.

  Attributes:
    method: the self-supervised method.
    num_classes: classes of the labels.
    lr, momentum, weight_decay: the probe's SGD (constant rate).
  """
  method: Any
  num_classes: int
  lr: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 0.0

  takes_labels: ClassVar[bool] = True

  def __post_init__(self):
    for name in ("init", "train_step", "encode"):
      if not callable(getattr(self.method, name, None)):
        raise TypeError(f"OnlineProbe needs a method with {name}(); "
                        f"{type(self.method).__name__} has none.")
    check(self,
          ("num_classes", lambda n: isinstance(n, int) and n >= 2,
           "classes of the labels: an integer >= 2 (default: the dataset's; "
           "set it for a dataset without known classes)"),
          ("lr", lambda v: v > 0, "the probe's SGD learning rate: > 0; e.g. "
           "0.1"),
          ("momentum", lambda v: v is None or 0.0 <= v < 1.0,
           "SGD momentum in [0, 1); e.g. 0.9 (0: none)"),
          ("weight_decay", lambda v: v >= 0, "must be >= 0; e.g. 0 or 1e-4"))

  @classmethod
  def from_config(cls, config, *, method, data, **unused):
    """``method`` with the probe of ``config.online_probe`` (keys ``lr``,
    ``momentum``, ``weight_decay``, ``num_classes``: default
    ``data.num_classes``)."""
    del unused
    section = config.get("online_probe") or ConfigReader({})
    return build(cls, section, method=method,
                 num_classes=section.get("num_classes") or data.num_classes)

  @property
  def name(self) -> str:
    """The wrapped method's registered name."""
    return getattr(self.method, "name", type(self.method).__name__)

  def __getattr__(self, name):
    # Only reached when normal lookup fails: the wrapped method's attributes
    # (model, mean, std, schedule, ...).
    if name == "method" or name.startswith("__"):
      raise AttributeError(name)
    return getattr(self.method, name)

  @property
  def tx(self) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(self.weight_decay),
                       optax.sgd(self.lr, momentum=self.momentum or None))

  def init(self, key: jax.Array, image_shape) -> OnlineProbeState:
    inner = self.method.init(key, image_shape)
    shape = tuple(1 if d is None else d for d in image_shape)
    feats = jax.eval_shape(
        lambda s: self.method.encode(s, jnp.zeros((1, *shape), jnp.uint8)),
        inner)
    width = feats.shape[-1]
    probe = {"w": jnp.zeros((width, self.num_classes), jnp.float32),
             "b": jnp.zeros((self.num_classes,), jnp.float32)}
    return OnlineProbeState(inner=inner, probe=probe,
                            probe_opt_state=self.tx.init(probe))

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    if isinstance(variables_or_state, OnlineProbeState):
      variables_or_state = variables_or_state.inner
    return self.method.encode(variables_or_state, images)

  def train_step(self, state: OnlineProbeState, batch, key: jax.Array
                 ) -> tuple[OnlineProbeState, dict[str, jax.Array]]:
    if not isinstance(batch, dict) or "label" not in batch:
      raise ValueError("OnlineProbe.train_step takes the batch dict "
                       "{'image': images, 'label': labels}; got "
                       f"{type(batch).__name__}.")
    images, labels = batch["image"], batch["label"]
    feats = jax.lax.stop_gradient(
        self.method.encode(state.inner, images)).astype(jnp.float32)
    inner, metrics = self.method.train_step(state.inner, images, key)
    (loss, acc), grads = jax.value_and_grad(probe_loss, has_aux=True)(
        state.probe, feats, labels)
    updates, opt_state = self.tx.update(grads, state.probe_opt_state,
                                        state.probe)
    probe = optax.apply_updates(state.probe, updates)
    metrics = {**metrics, "probe_loss": loss, "probe_acc": acc}
    return OnlineProbeState(inner=inner, probe=probe,
                            probe_opt_state=opt_state), metrics

  def predict(self, state: OnlineProbeState, images: jax.Array) -> jax.Array:
    """The probe's class predictions ``[B]`` for ``images``."""
    feats = self.encode(state, images).astype(jnp.float32)
    return jnp.argmax(feats @ state.probe["w"] + state.probe["b"], -1)
