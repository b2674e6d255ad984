"""Contrastive predictive coding: sequences (van den Oord et al. 2018) and
image patch grids (CPC v2, Henaff et al. 2019).

Functional shape (both variants)::

    method = SequenceCPC(model=SequenceCPCModel(...), tx=optax.adam(2e-4))
    # or: SequenceCPC.from_config(config, tx=tx, schedule=schedule, data=spec)
    state = method.init(jax.random.key(0), (16000,))       # one [L] waveform
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, waveforms_int16, data_key)  # [B, L]

    method = ImageCPC(model=ImageCPCModel(...), tx=...)
    state = method.init(jax.random.key(0), (28, 28, 1))
    state, metrics = step(state, images_uint8, data_key)     # [B, H, W, C]

Config (``experiments/configs/cpc_audio.py``, ``cpc_fashion_mnist.py``):
``encoder`` (``name`` picks the encoder of
:data:`ssljax.models.cpc.SEQUENCE_ENCODERS` / ``PATCH_ENCODERS``, the other
keys are its fields), ``context`` (likewise, ``SEQUENCE_CONTEXTS`` /
``GRID_CONTEXTS``) and ``cpc`` (``num_steps``, the model's K, and the
method's fields).

``train_step`` folds ``state.step`` into ``data_key`` for its randomness
(sampled negatives, image flips), so a resumed run draws the same numbers as
an uninterrupted one. Metrics: ``loss``, ``mi_bound`` (``log N - L`` with N
the candidates per prediction), ``acc``, ``acc_k<k>`` / ``loss_k<k>`` for
every prediction step and ``lr`` when a schedule is given.

Neither network has BatchNorm (CPC v2 replaces it with LayerNorm, since batch
statistics leak information between the patches being contrasted); the state
is a :class:`~ssljax.methods.base.TrainState` with an empty ``batch_stats``.
Held-out prediction accuracy, probes and the other CPC evaluations are in
:mod:`ssljax.eval.cpc`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax import losses
from ssljax.config import ConfigReader, build, check
from ssljax.losses.cpc import NEGATIVE_MODES
from ssljax.methods.base import (Method, TrainState, apply_gradients,
                                 build_encoder, encoder_variables, register,
                                 step_key, train_state)
from ssljax.models.cpc import (GRID_CONTEXTS, PATCH_ENCODERS,
                               SEQUENCE_CONTEXTS, SEQUENCE_ENCODERS,
                               ImageCPCModel, SequenceCPCModel,
                               extract_patches, grid_size)

#: ``pool`` choices of :meth:`SequenceCPC.encode` (images: all but c_last).
FEATURE_POOLS = ("z", "c", "zc", "c_last")

def _params(variables_or_state) -> dict:
  return {"params": encoder_variables(variables_or_state)["params"]}


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


def _one_of(value, choices) -> str:
  hint = difflib.get_close_matches(str(value), choices, n=1)
  return (f"did you mean {hint[0]!r}? " if hint else "") + \
      f"must be one of {tuple(choices)}"


def build_context(config: ConfigReader, registry: Mapping[str, type]
                  ) -> nn.Module:
  """The context network of ``config.context``: ``name`` picks a class of
  ``registry`` (default: its first), the other keys are its fields."""
  section = config.get("context") or ConfigReader({})
  default = next(iter(registry))
  name = section.get("name", default)
  if name not in registry:
    section.problem("name", name, _one_of(name, list(registry)))
    name = default
  return build(registry[name], section)


class _CPCBase(Method):
  """What both variants share: the loss of ``_pairs(params, batch, key,
  augment) -> (predictions, targets, skip)``, the train step and the
  per-step prediction accuracy."""

  def _common_checks(self, pools):
    check(self,
          ("negatives", lambda n: n in NEGATIVE_MODES,
           _one_of(self.negatives, NEGATIVE_MODES)),
          ("num_negatives", lambda m: self.negatives != "sampled" or (
              m is not None and m >= 1),
           "negatives='sampled' needs num_negatives >= 1 (negatives drawn "
           "per step); e.g. 256"),
          ("pool", lambda p: p in pools, _one_of(self.pool, pools)))

  def _loss_and_stats(self, params, batch, key, augment: bool = True):
    preds, targets, skip = self._pairs(params, batch, key, augment)
    num_negatives = self.num_negatives or None
    loss_k, acc_k = losses.cpc_infonce_per_step(
        preds, targets, negatives=self.negatives, skip=skip,
        num_negatives=num_negatives,
        key=(jax.random.fold_in(key, 1) if self.negatives == "sampled" else None))
    n = losses.cpc_num_candidates(targets.shape[0], targets.shape[1],
                                  negatives=self.negatives,
                                  num_negatives=num_negatives)
    return jnp.mean(loss_k), (loss_k, acc_k, n)

  def loss(self, params, batch, key):
    """Scalar CPC loss of one batch and ``(loss_k [K], acc_k [K], N)``."""
    return self._loss_and_stats(params, batch, key)

  def train_step(self, state: TrainState, batch: jax.Array, key: jax.Array
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One CPC step on a global batch. Pure: jit with ``donate_argnums=0``."""
    self._check_batch(batch)
    (loss, (loss_k, acc_k, n)), grads = jax.value_and_grad(
        self._loss_and_stats, has_aux=True)(state.params, batch,
                                            step_key(key, state))
    metrics = {"loss": loss,
               "mi_bound": losses.mutual_information_lower_bound(loss, n),
               "acc": jnp.mean(acc_k)}
    for k in range(acc_k.shape[0]):
      metrics[f"acc_k{k + 1}"] = acc_k[k]
      metrics[f"loss_k{k + 1}"] = loss_k[k]
    return apply_gradients(state, grads, tx=self.tx, metrics=metrics,
                           schedule=self.schedule)

  def prediction_accuracy(self, variables_or_state, batch: jax.Array,
                          key: jax.Array | None = None, *,
                          negatives: str | None = None
                          ) -> tuple[jax.Array, jax.Array]:
    """``(loss_k [K], acc_k [K])`` of a held-out batch, without augmentation.

    ``negatives`` overrides the training candidate set (e.g. ``"batch"`` to
    score a model trained with sampled negatives against every target of
    the batch); ``key`` only feeds sampled negatives. Over a whole held-out
    set: :func:`ssljax.eval.cpc.held_out_prediction_accuracy`.
    """
    self._check_batch(batch)
    method = self
    if negatives is not None and negatives != self.negatives:
      method = dataclasses.replace(self, negatives=negatives)
    key = jax.random.key(0) if key is None else key
    _, (loss_k, acc_k, _) = method._loss_and_stats(
        _params(variables_or_state)["params"], batch, key, augment=False)
    return loss_k, acc_k


@register("cpc_sequence")
@dataclasses.dataclass(frozen=True)
class SequenceCPC(_CPCBase):
  """CPC on 1-D sequences (raw audio).

  ``W_k c_t`` predicts ``z_{t+k}``, k = 1..K, as in the paper (no skip): the
  encoder is causal (``z_t`` sees samples before ``(t + 1) * prod(strides)``)
  and the GRU context ``c_t`` sees ``z_<=t``, so every target holds
  ``prod(strides)`` samples the context has not seen (the receptive fields
  of neighbouring frames overlap in the past, as the paper's do).

  Attributes:
    model: a ``SequenceCPCModel`` (causal conv encoder, GRU context, K
      predictors; CPC audio: K = 12, GRU 256).
    tx: the optax optimizer (CPC: Adam, lr 2e-4).
    negatives: candidate set of ``ssljax.losses.cpc_infonce``.
    num_negatives: M, for ``negatives="sampled"`` (0 / None otherwise).
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

  def __post_init__(self):
    self._common_checks(FEATURE_POOLS)
    check(self, ("input_scale", lambda s: s > 0,
                 "must be > 0: integer waveforms are multiplied by it; e.g. "
                 "1/32768 for int16"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``encoder`` (``causal_conv``), ``context`` (``gru``) and ``cpc``
    (``num_steps``, ``negatives``, ``num_negatives``, ``input_scale``,
    ``pool``)."""
    section = config.get("cpc")
    model = build(SequenceCPCModel, section,
                  encoder=build_encoder(config, registry=SEQUENCE_ENCODERS),
                  context=build_context(config, SEQUENCE_CONTEXTS))
    return build(cls, section, model=model, tx=tx, schedule=schedule)

  def init(self, key: jax.Array, input_shape: Sequence[int]) -> TrainState:
    """Parameters and optimizer state for sequences of shape ``(L,)``."""
    if len(input_shape) != 1:
      raise ValueError(f"SequenceCPC takes sequences of shape (L,); got "
                       f"input_shape {tuple(input_shape)} (images: use "
                       "method 'cpc_image').")
    dummy = jnp.zeros((2, *input_shape), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, dummy))(key)
    return train_state(variables, self.tx)

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
    z, c = self.representations(variables_or_state, x)
    return _pool(z, c, self.pool, (1,))

  def representations(self, variables_or_state, x: jax.Array):
    """``(z [B, T, F], c [B, T, C])``."""
    return self.model.apply(_params(variables_or_state), self.inputs(x),
                            method=type(self.model).encode)


@register("cpc_image")
@dataclasses.dataclass(frozen=True)
class ImageCPC(_CPCBase):
  """CPC v2 on image patch grids.

  The image (in [0, 1], zero-padded by ``pad`` pixels per side, normalized)
  is cut into a grid of ``patch_size`` patches at ``patch_stride`` (CPC v2:
  half a patch); ``c_ij`` sees the rows ``u <= i`` and ``W_k c_ij`` predicts
  ``z_{i+skip+k+1, j}``, scored against every patch of the (global) batch.
  For 28x28 Fashion-MNIST, ``pad=2``, 8-pixel patches at stride 4 give the
  paper's 7x7 grid.

  The first target row must share no pixel with the context's last row:
  ``(skip + 1) * patch_stride >= patch_size`` (half-overlapping patches:
  ``skip >= 1``; CPC v2 skips 2 rows). With ``skip = 0`` the context would
  see half of every first-step target.

  Attributes:
    model: an ``ImageCPCModel``.
    tx: the optax optimizer.
    patch_size, patch_stride, pad: the grid.
    skip: rows skipped before the first predicted row (offsets ``skip + 1
      ... skip + K``).
    negatives, num_negatives: as for ``ssljax.losses.cpc_infonce``.
    flip: random horizontal flip of each training image.
    mean, std: per-channel input normalization (after the [0, 1] scaling).
    pool: frozen features of :meth:`encode` (``"z"``: mean patch embedding,
      ``"c"``, ``"zc"``).
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

  def __post_init__(self):
    self._common_checks(FEATURE_POOLS[:3])
    p, s = self.patch_size, self.patch_stride
    check(self,
          ("patch_size", lambda v: v >= 1, "must be >= 1; e.g. 8"),
          ("patch_stride", lambda v: 1 <= v <= p,
           f"must lie in [1, patch_size={p}]; e.g. {max(p // 2, 1)} (CPC v2: "
           "half a patch)"),
          ("pad", lambda v: v >= 0, "must be >= 0; e.g. 2 (28 -> 32 pixels)"),
          ("skip", lambda k: s >= 1 and (k + 1) * s >= p,
           f"the context of row i would see pixels of its first target row "
           f"i + skip + 1: patches of {p} at stride {s} need (skip + 1) * "
           f"patch_stride >= patch_size, i.e. skip >= {-(-p // max(s, 1)) - 1}"
           "; e.g. 2 (CPC v2)"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``encoder`` (``patch_encoder``), ``context`` (``row_causal``)
    and ``cpc`` (``num_steps``, ``patch_size``, ``patch_stride``, ``pad``,
    ``skip``, ``negatives``, ``num_negatives``, ``flip``, ``pool``); the
    normalization is the data's."""
    section = config.get("cpc")
    model = build(ImageCPCModel, section,
                  encoder=build_encoder(config, registry=PATCH_ENCODERS),
                  context=build_context(config, GRID_CONTEXTS))
    return build(cls, section, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std)

  def grid(self, image_shape: Sequence[int]) -> tuple[int, int]:
    """Grid rows and columns for ``[H, W, C]`` images; a ValueError naming
    the fix when the patches do not tile the padded image or the rows cannot
    hold ``skip`` plus the prediction steps."""
    h, w = image_shape[0] + 2 * self.pad, image_shape[1] + 2 * self.pad
    try:
      gh = grid_size(h, self.patch_size, self.patch_stride)
      gw = grid_size(w, self.patch_size, self.patch_stride)
    except ValueError as e:
      raise ValueError(
          f"the padded {h}x{w} image ({image_shape[0]}x{image_shape[1]} + 2 * "
          f"pad {self.pad}) is not tiled by patches of {self.patch_size} at "
          f"stride {self.patch_stride}: {e} Change --config.cpc.pad, "
          "patch_size or patch_stride.") from None
    steps = self.model.num_steps
    if gh <= self.skip + steps:
      raise ValueError(
          f"a grid of {gh} rows cannot hold skip={self.skip} rows plus "
          f"num_steps={steps} prediction steps (need rows > skip + num_steps):"
          f" lower --config.cpc.num_steps or --config.cpc.skip, or use "
          "smaller patches.")
    return gh, gw

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
    """Parameters and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    self.grid(image_shape)
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, self.patches(dummy)))(key)
    return train_state(variables, self.tx)

  def patches(self, images: jax.Array) -> jax.Array:
    """uint8 or [0,1] float ``[B, H, W, C]`` -> normalized patches ``[B, gh,
    gw, p, p, C]``."""
    self.grid(images.shape[1:])
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
    z, c = self.representations(variables_or_state, images)
    return _pool(z, c, self.pool, (1, 2))

  def trainable_features(self, variables, images: jax.Array, train: bool):
    """Fine-tuning's features (``ssljax.eval.finetune``): :meth:`encode` of
    float images in [0, 1] with ``train`` passed on; the patch encoder has
    LayerNorm only, so no statistics change."""
    z, c = self.model.apply({"params": variables["params"]},
                            self.patches(images), train=train,
                            method=type(self.model).encode)
    return _pool(z, c, self.pool, (1, 2)), variables.get("batch_stats", {})

  def representations(self, variables_or_state, images: jax.Array):
    """``(z [B, gh, gw, D], c [B, gh, gw, C])``."""
    return self.model.apply(_params(variables_or_state), self.patches(images),
                            method=type(self.model).encode)
