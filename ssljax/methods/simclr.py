"""SimCLR (Chen et al. 2020): two augmented views, a shared encoder f and
projection head g, NT-Xent over the 2N x 2N cosine similarities of the global
batch.

Functional shape::

    method = SimCLR(model=EncoderWithHead(...), tx=optax..., schedule=...)
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

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax import losses
from ssljax.augment import simclr_views, to_float


@flax.struct.dataclass
class SimCLRState:
  """Everything that changes during SimCLR training (a pytree)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def normalize_images(x: jax.Array, mean: Sequence[float], std: Sequence[float]
                     ) -> jax.Array:
  """``(x - mean) / std`` per channel, for float images in [0, 1]."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (x - mean) / std


@dataclasses.dataclass(frozen=True)
class SimCLR:
  """SimCLR: its static parts (model, optimizer, hyperparameters).

  Attributes:
    model: an ``EncoderWithHead`` returning ``(h, z)``.
    tx: the optax optimizer (e.g. ``make_optimizer("lars", schedule)``).
    temperature: NT-Xent temperature (0.5 CIFAR-size, 0.1 ImageNet).
    augment: keyword arguments of ``ssljax.augment.simclr_view``.
    mean, std: per-channel input normalization applied after augmentation.
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
    loss_block_size: ``None``: dense NT-Xent; an int: the memory-bounded
      blockwise NT-Xent (``ssljax.losses.nt_xent(block_size=...)``), for
      batches whose ``[2N, 2N]`` logits do not fit.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  temperature: float = 0.5
  augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None
  loss_block_size: int | None = None

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> SimCLRState:
    """Parameters, BN statistics and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    size = self.augment.get("size") or tuple(image_shape[:2])
    size = (size, size) if isinstance(size, int) else tuple(size)
    dummy = jnp.zeros((2, *size, image_shape[2]), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, dummy, train=True))(key)
    params = variables["params"]
    return SimCLRState(step=jnp.zeros((), jnp.int32), params=params,
                       batch_stats=variables.get("batch_stats", {}),
                       opt_state=self.tx.init(params))

  def views(self, images: jax.Array, key: jax.Array):
    """Two normalized views ``[B, h, w, C]`` of a uint8 batch."""
    v1, v2 = simclr_views(key, images, **self.augment)
    return (normalize_images(v1, self.mean, self.std),
            normalize_images(v2, self.mean, self.std))

  def loss(self, params, batch_stats, v1: jax.Array, v2: jax.Array):
    """NT-Xent of the two views; both views go through one forward pass so
    BatchNorm statistics span all 2N images, as in the paper."""
    n = v1.shape[0]
    (_, z), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats},
        jnp.concatenate([v1, v2], axis=0), train=True, mutable=["batch_stats"])
    z1, z2 = z[:n].astype(jnp.float32), z[n:].astype(jnp.float32)
    loss = losses.nt_xent(z1, z2, temperature=self.temperature,
                          block_size=self.loss_block_size)
    return loss, (updates["batch_stats"], z1, z2)

  def train_step(self, state: SimCLRState, images: jax.Array, key: jax.Array
                 ) -> tuple[SimCLRState, dict[str, jax.Array]]:
    """One SimCLR step on a global uint8 batch ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. ``key`` is the run's data key;
    the step's key is ``fold_in(key, state.step)``.
    """
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    n = images.shape[0]
    v1, v2 = self.views(images, jax.random.fold_in(key, state.step))
    (loss, (batch_stats, z1, z2)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, v1, v2)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss,
               "mi_bound": losses.mutual_information_lower_bound(loss, 2 * n - 1),
               **similarity_stats(z1, z2)}
    if self.schedule is not None:
      metrics["lr"] = jnp.asarray(self.schedule(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of uint8 or [0,1] float images
    (BatchNorm in inference mode, running statistics)."""
    return frozen_features(self.model, self.mean, self.std, variables_or_state,
                           images)


def encoder_variables(variables_or_state) -> dict:
  """Flax variables (``params``, ``batch_stats``) of a method State, or the
  variables dict itself."""
  if isinstance(variables_or_state, Mapping):
    return variables_or_state
  return {"params": variables_or_state.params,
          "batch_stats": variables_or_state.batch_stats}


def frozen_features(model: nn.Module, mean: Sequence[float],
                    std: Sequence[float], variables_or_state,
                    images: jax.Array) -> jax.Array:
  """``model.encode`` features of uint8 or [0,1] float images, normalized with
  ``mean``/``std``, BatchNorm in inference mode (what every method's
  ``encode`` does for the evaluation protocol)."""
  x = normalize_images(to_float(images), mean, std)
  return model.apply(encoder_variables(variables_or_state), x, train=False,
                     method=type(model).encode)


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
