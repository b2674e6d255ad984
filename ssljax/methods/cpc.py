"""Contrastive predictive coding: sequences (van den Oord et al. 2018) and
image patch grids (CPC v2, Henaff et al. 2019).

Functional shape (both variants)::

    method = SequenceCPC(model=SequenceCPCModel(...), tx=optax.adam(2e-4))
    state = method.init(jax.random.key(0), (16000,))       # one [L] waveform
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, waveforms_int16, data_key)  # [B, L]

    method = ImageCPC(model=ImageCPCModel(...), tx=...)
    state = method.init(jax.random.key(0), (28, 28, 1))
    state, metrics = step(state, images_uint8, data_key)     # [B, H, W, C]

``train_step`` folds ``state.step`` into ``data_key`` for its randomness
(sampled negatives, image flips), so a resumed run draws the same numbers as
an uninterrupted one. Metrics: ``loss``, ``mi_bound`` (``log N - L`` with N
the candidates per prediction), ``acc_k<k>`` for every prediction step and
``lr`` when a schedule is given.

Neither network has BatchNorm (CPC v2 replaces it with LayerNorm, since batch
statistics leak information between the patches being contrasted); the state
keeps an empty ``batch_stats`` so the evaluation code treats every method
alike.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax import losses
from ssljax.models.cpc import extract_patches, grid_size

FEATURE_POOLS = ("z", "c", "zc", "c_last")


@flax.struct.dataclass
class CPCState:
  """Everything that changes during CPC training (a pytree)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def _variables(variables_or_state) -> dict:
  if isinstance(variables_or_state, CPCState):
    return {"params": variables_or_state.params}
  return {"params": variables_or_state["params"]}


def _pool(z: jax.Array, c: jax.Array, how: str, axes: tuple[int, ...]
          ) -> jax.Array:
  """Pooled frozen features: mean of z, of c, both concatenated, or the last
  context vector (sequences)."""
  if how == "z":
    return jnp.mean(z, axis=axes)
  if how == "c":
    return jnp.mean(c, axis=axes)
  if how == "zc":
    return jnp.concatenate([jnp.mean(z, axis=axes), jnp.mean(c, axis=axes)], -1)
  if how == "c_last":
    if axes != (1,):
      raise ValueError("pool='c_last' is for sequences only.")
    return c[:, -1]
  raise ValueError(f"pool must be one of {FEATURE_POOLS}; got {how!r}.")


class _CPCBase:
  """The train step shared by both variants; subclasses provide
  ``_pairs(params, batch, key, augment) -> (predictions, targets, skip)``."""

  def _loss_and_stats(self, params, batch, key, augment: bool = True):
    preds, targets, skip = self._pairs(params, batch, key, augment)
    loss_k, acc_k = losses.cpc_infonce_per_step(
        preds, targets, negatives=self.negatives, skip=skip,
        num_negatives=self.num_negatives,
        key=(jax.random.fold_in(key, 1) if self.negatives == "sampled" else None))
    n = losses.cpc_num_candidates(targets.shape[0], targets.shape[1],
                                  negatives=self.negatives,
                                  num_negatives=self.num_negatives)
    return jnp.mean(loss_k), (loss_k, acc_k, n)

  def loss(self, params, batch, key):
    """Scalar CPC loss of one batch and ``(loss_k [K], acc_k [K], N)``."""
    return self._loss_and_stats(params, batch, key)

  def train_step(self, state: CPCState, batch: jax.Array, key: jax.Array
                 ) -> tuple[CPCState, dict[str, jax.Array]]:
    """One CPC step on a global batch. Pure: jit with ``donate_argnums=0``."""
    self._check_batch(batch)
    step_key = jax.random.fold_in(key, state.step)
    (loss, (loss_k, acc_k, n)), grads = jax.value_and_grad(
        self._loss_and_stats, has_aux=True)(state.params, batch, step_key)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss,
               "mi_bound": losses.mutual_information_lower_bound(loss, n),
               "acc": jnp.mean(acc_k)}
    for k in range(acc_k.shape[0]):
      metrics[f"acc_k{k + 1}"] = acc_k[k]
      metrics[f"loss_k{k + 1}"] = loss_k[k]
    if self.schedule is not None:
      metrics["lr"] = jnp.asarray(self.schedule(state.step), jnp.float32)
    return state.replace(step=state.step + 1, params=params,
                         opt_state=opt_state), metrics

  def prediction_accuracy(self, variables_or_state, batch: jax.Array,
                          key: jax.Array | None = None, *,
                          negatives: str | None = None
                          ) -> tuple[jax.Array, jax.Array]:
    """``(loss_k [K], acc_k [K])`` of a held-out batch, without augmentation.

    ``negatives`` overrides the training candidate set (e.g. ``"batch"`` to
    score a model trained with sampled negatives against every target of
    the batch); ``key`` only feeds sampled negatives.
    """
    self._check_batch(batch)
    method = self
    if negatives is not None and negatives != self.negatives:
      method = dataclasses.replace(self, negatives=negatives)
    params = _variables(variables_or_state)["params"]
    key = jax.random.key(0) if key is None else key
    _, (loss_k, acc_k, _) = method._loss_and_stats(params, batch, key,
                                                   augment=False)
    return loss_k, acc_k

  def held_out_prediction_accuracy(self, variables_or_state, inputs, *,
                                   batch_size: int, mesh=None,
                                   max_batches: int | None = None,
                                   negatives: str | None = "batch"
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-step ``(loss_k [K], acc_k [K])`` of :meth:`prediction_accuracy`
    over the consecutive full batches of host ``inputs`` (at most
    ``max_batches``), each batch placed on ``mesh``'s ``data`` axis (default:
    all devices); with ``negatives="batch"`` every prediction is scored
    against all targets of its batch, whatever the training candidate set."""
    # pylint: disable=import-outside-toplevel
    from ssljax.parallel import (data_sharding, make_data_mesh,
                                 replicated_sharding)
    mesh = make_data_mesh() if mesh is None else mesh
    count = len(inputs) // batch_size
    if max_batches:
      count = min(count, int(max_batches))
    if count == 0:
      raise ValueError(f"{len(inputs)} held-out examples make no full batch of "
                       f"{batch_size}: lower batch_size.")
    fn = jax.jit(functools.partial(self.prediction_accuracy,
                                   negatives=negatives))
    variables = jax.device_put({"params": _variables(variables_or_state)["params"]},
                               replicated_sharding(mesh))
    losses_k, accs_k = [], []
    with jax.set_mesh(mesh):
      for i in range(count):
        x = np.asarray(inputs[i * batch_size:(i + 1) * batch_size])
        loss_k, acc_k = fn(variables, jax.device_put(x, data_sharding(mesh, x.ndim)))
        losses_k.append(np.asarray(loss_k))
        accs_k.append(np.asarray(acc_k))
    return np.mean(losses_k, 0), np.mean(accs_k, 0)


@dataclasses.dataclass(frozen=True)
class SequenceCPC(_CPCBase):
  """CPC on 1-D sequences (raw audio).

  Attributes:
    model: a ``SequenceCPCModel`` (causal conv encoder, GRU context, K
      predictors; CPC audio: K = 12, GRU 256).
    tx: the optax optimizer (CPC: Adam, lr 2e-4).
    negatives: candidate set of ``ssljax.losses.cpc_infonce``.
    num_negatives: M, for ``negatives="sampled"``.
    input_scale: integer waveforms are multiplied by it (int16: 1 / 32768).
    pool: frozen features of :meth:`encode`: ``"c"`` (mean context),
      ``"z"``, ``"zc"`` or ``"c_last"``.
    schedule: the learning-rate schedule, only to report ``lr``.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  negatives: str = "batch"
  num_negatives: int | None = None
  input_scale: float = 1.0 / 32768.0
  pool: str = "c"
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def init(self, key: jax.Array, input_shape: Sequence[int]) -> CPCState:
    """Parameters and optimizer state for sequences of shape ``(L,)``."""
    if len(input_shape) != 1:
      raise ValueError(f"input_shape must be (L,); got {tuple(input_shape)}.")
    dummy = jnp.zeros((2, *input_shape), jnp.float32)
    params = jax.jit(lambda k: self.model.init(k, dummy)["params"])(key)
    return CPCState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats={}, opt_state=self.tx.init(params))

  def inputs(self, x: jax.Array) -> jax.Array:
    """Float waveforms: integers scaled by ``input_scale``."""
    if jnp.issubdtype(x.dtype, jnp.integer):
      return x.astype(jnp.float32) * self.input_scale
    return x.astype(jnp.float32)

  def _check_batch(self, batch):
    if batch.ndim != 2:
      raise ValueError(f"SequenceCPC expects waveforms [B, L]; got {batch.shape}.")

  def _pairs(self, params, batch, key, augment=True):
    del key, augment
    z, _, preds = self.model.apply({"params": params}, self.inputs(batch))
    return preds, z, 0

  def encode(self, variables_or_state, x: jax.Array) -> jax.Array:
    """Frozen features ``[B, F]`` of waveforms ``[B, L]``, pooled over time."""
    z, c = self.model.apply(_variables(variables_or_state), self.inputs(x),
                            method=type(self.model).encode)
    return _pool(z, c, self.pool, (1,))

  def representations(self, variables_or_state, x: jax.Array):
    """``(z [B, T, F], c [B, T, C])``."""
    return self.model.apply(_variables(variables_or_state), self.inputs(x),
                            method=type(self.model).encode)


@dataclasses.dataclass(frozen=True)
class ImageCPC(_CPCBase):
  """CPC v2 on image patch grids.

  The image (in [0, 1], zero-padded by ``pad`` pixels per side, normalized)
  is cut into a grid of ``patch_size`` patches at ``patch_stride`` (CPC v2:
  half a patch); ``c_ij`` sees the rows ``u <= i`` and ``W_k c_ij`` predicts
  ``z_{i+skip+k+1, j}``, scored against every patch of the (global) batch.
  For 28x28 Fashion-MNIST, ``pad=2``, 8-pixel patches at stride 4 give the
  paper's 7x7 grid.

  Attributes:
    model: an ``ImageCPCModel``.
    tx: the optax optimizer.
    patch_size, patch_stride, pad: the grid.
    skip: rows skipped before the first predicted row (offsets ``skip + 1
      ... skip + K``).
    negatives, num_negatives: as for ``ssljax.losses.cpc_infonce``.
    flip: random horizontal flip of each training image.
    mean, std: per-channel input normalization (after the [0, 1] scaling).
    pool: frozen features of :meth:`encode` (``"z"``: mean patch embedding).
    schedule: the learning-rate schedule, only to report ``lr``.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  patch_size: int = 8
  patch_stride: int = 4
  pad: int = 2
  skip: int = 2
  negatives: str = "batch"
  num_negatives: int | None = None
  flip: bool = True
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  pool: str = "z"
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def grid(self, image_shape: Sequence[int]) -> tuple[int, int]:
    """Grid rows and columns for ``[H, W, C]`` images."""
    h, w = image_shape[0] + 2 * self.pad, image_shape[1] + 2 * self.pad
    return (grid_size(h, self.patch_size, self.patch_stride),
            grid_size(w, self.patch_size, self.patch_stride))

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> CPCState:
    """Parameters and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    gh, _ = self.grid(image_shape)
    if gh <= self.skip + self.model.num_steps:
      raise ValueError(f"a grid of {gh} rows cannot hold skip={self.skip} plus "
                       f"{self.model.num_steps} prediction steps.")
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    params = jax.jit(
        lambda k: self.model.init(k, self.patches(dummy))["params"])(key)
    return CPCState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats={}, opt_state=self.tx.init(params))

  def patches(self, images: jax.Array) -> jax.Array:
    """uint8 or [0,1] float ``[B, H, W, C]`` -> normalized patches ``[B, gh,
    gw, p, p, C]``."""
    x = images.astype(jnp.float32)
    if images.dtype == jnp.uint8:
      x = x / 255.0
    p = self.pad
    x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std,
                                                                jnp.float32)
    return extract_patches(x, self.patch_size, self.patch_stride)

  def _check_batch(self, batch):
    if batch.ndim != 4:
      raise ValueError(f"ImageCPC expects images [B, H, W, C]; got {batch.shape}.")
    if batch.dtype != jnp.uint8 and not jnp.issubdtype(batch.dtype, jnp.floating):
      raise ValueError(f"ImageCPC expects uint8 images (or float in [0, 1]); got "
                       f"dtype {batch.dtype}, shape {batch.shape}: cast with "
                       ".astype(np.uint8).")

  def _pairs(self, params, batch, key, augment: bool = True):
    if self.flip and augment:
      flip = jax.random.bernoulli(key, 0.5, (batch.shape[0],))
      batch = jnp.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
    z, _, preds = self.model.apply({"params": params}, self.patches(batch))
    b, gh, gw, d = z.shape
    # Each column is a sequence over rows, top to bottom.
    targets = jnp.transpose(z, (0, 2, 1, 3)).reshape(b * gw, gh, d)
    preds = jnp.transpose(preds, (0, 2, 1, 3, 4)).reshape(
        b * gw, gh, preds.shape[3], d)
    return preds, targets, self.skip

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen features ``[B, F]`` of uint8 or [0,1] float images, pooled over
    the patch grid."""
    z, c = self.model.apply(_variables(variables_or_state), self.patches(images),
                            method=type(self.model).encode)
    return _pool(z, c, self.pool, (1, 2))

  def representations(self, variables_or_state, images: jax.Array):
    """``(z [B, gh, gw, D], c [B, gh, gw, C])``."""
    return self.model.apply(_variables(variables_or_state), self.patches(images),
                            method=type(self.model).encode)
