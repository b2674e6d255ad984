"""Shared parts of the classification pretext tasks (rotation, jigsaw,
relative patch position): their state, a tile classifier and one train step.

Each task turns a uint8 batch into ``(inputs, labels)`` on device (its
``task`` method) and trains ``encoder + head`` with softmax cross-entropy on
the pretext labels; the frozen ``encoder`` is what evaluation uses::

    method = Rotation(model=TileClassifier(encoder, head), tx=...)
    state = method.init(jax.random.key(0), image_shape=(28, 28, 1))
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, data_key)   # metrics["loss"], ...

``train_step`` folds ``state.step`` into ``data_key``, so a resumed run draws
the same pretext examples an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import normalize_tiles, to_float
from ssljax.methods.simclr import encoder_variables, normalize_images


@flax.struct.dataclass
class PretextState:
  """Everything that changes while a pretext classifier trains (a pytree)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


class TileClassifier(nn.Module):
  """A shared-weight encoder over the tiles of each example and a classifier
  over their concatenated features.

  ``tiles [B, T, h, w, C]`` -> encoder on all ``B * T`` tiles (one batch, so
  BatchNorm statistics span every tile) -> features ``[B, T, F]`` ->

  * ``groups=None``: ``head(concat over T) -> [B, K]`` (jigsaw: T = 9;
    rotation: T = 1; one relative-position pair: T = 2);
  * ``groups`` a static tuple of ``G`` index tuples of length ``m``:
    ``head(concat of f[:, group]) `` for each group -> ``[B, G, K]`` (all 8
    relative-position pairs of one lattice: groups ``((4, 0), (4, 1), ...)``).

  ``encode(x)`` is the encoder alone, for evaluation.
  """
  encoder: nn.Module
  head: nn.Module
  groups: tuple[tuple[int, ...], ...] | None = None

  def __call__(self, tiles, train: bool = True):
    if tiles.ndim != 5:
      raise ValueError(f"TileClassifier expects tiles [B, T, h, w, C]; got "
                       f"shape {tiles.shape}.")
    b, t = tiles.shape[:2]
    f = self.encoder(tiles.reshape(b * t, *tiles.shape[2:]), train=train)
    f = f.reshape(b, t, f.shape[-1])
    if self.groups is None:
      return self.head(f.reshape(b, -1), train=train)
    idx = np.asarray(self.groups, np.int32)                    # [G, m]
    if idx.ndim != 2 or idx.min() < 0 or idx.max() >= t:
      raise ValueError(f"groups must be G tuples of equal length with indices "
                       f"below T={t}; got {self.groups}.")
    g = f[:, idx]                                              # [B, G, m, F]
    logits = self.head(g.reshape(b * idx.shape[0], -1), train=train)
    return logits.reshape(b, idx.shape[0], logits.shape[-1])

  def encode(self, x, train: bool = False):
    return self.encoder(x, train=train)


def classification_metrics(logits, labels) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy and top-1 accuracy of ``logits [..., K]``
  against integer ``labels [...]``."""
  if logits.shape[:-1] != labels.shape:
    raise ValueError(f"logits {logits.shape} and labels {labels.shape} differ "
                     "in their leading dimensions.")
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  acc = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return loss, acc


@dataclasses.dataclass(frozen=True)
class PretextMethod:
  """Base of the pretext classifiers: subclasses define ``task`` (uint8
  images + key -> ``(inputs, labels)``), ``metric_name`` and, if they train
  on per-tile normalized inputs, ``per_image_norm = True``.

  Attributes:
    model: a :class:`TileClassifier` (or any module with ``__call__(inputs,
      train)`` -> logits and ``encode(x, train)``).
    tx: the optax optimizer.
    mean, std: per-channel input normalization (of images / tiles not
      normalized one by one).
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  metric_name = "task_acc"

  @property
  def per_image_norm(self) -> bool:
    return False

  def task(self, images: jax.Array, key: jax.Array):
    raise NotImplementedError

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> PretextState:
    """Parameters, BN statistics and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    inputs, _ = jax.eval_shape(
        self.task, jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8),
        jax.random.key(0))
    dummy = jnp.zeros(inputs.shape, inputs.dtype)
    # Not jitted: on XLA:CPU compiling the (truncated-normal) initializers
    # dominates, and op by op the compiled initializers are cached per
    # parameter shape, so models sharing layer shapes initialize quickly.
    variables = self.model.init(key, dummy, train=True)
    params = variables["params"]
    return PretextState(step=jnp.zeros((), jnp.int32), params=params,
                        batch_stats=variables.get("batch_stats", {}),
                        opt_state=self.tx.init(params))

  def loss(self, params, batch_stats, inputs, labels):
    """Cross-entropy of the pretext labels; returns ``(loss, (batch_stats,
    accuracy))``."""
    logits, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, inputs, train=True,
        mutable=["batch_stats"])
    loss, acc = classification_metrics(logits, labels)
    return loss, (updates["batch_stats"], acc)

  def train_step(self, state: PretextState, images: jax.Array, key: jax.Array
                 ) -> tuple[PretextState, dict[str, jax.Array]]:
    """One step on a global uint8 batch ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. The step's pretext examples come
    from ``fold_in(key, state.step)``. Metrics: ``loss``, the task accuracy
    (``metric_name``) and ``lr``.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be a batch [N, H, W, C] with C in {{1, 3}}; "
                       f"got {images.shape}.")
    inputs, labels = self.task(images, jax.random.fold_in(key, state.step))
    (loss, (batch_stats, acc)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, inputs, labels)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, self.metric_name: acc}
    if self.schedule is not None:
      metrics["lr"] = jnp.asarray(self.schedule(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics

  def preprocess(self, images: jax.Array) -> jax.Array:
    """Whole images as the encoder sees them at evaluation: float, then
    standardized one by one (tasks trained on normalized tiles) or with the
    dataset's ``mean`` / ``std``."""
    x = to_float(images)
    if self.per_image_norm:
      return normalize_tiles(x, eps=getattr(self, "eps", 1e-3))
    return normalize_images(x, self.mean, self.std)

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of whole uint8 or [0, 1] float
    images (BatchNorm in inference mode)."""
    return self.model.apply(encoder_variables(variables_or_state),
                            self.preprocess(images), train=False,
                            method=type(self.model).encode)
