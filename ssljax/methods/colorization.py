"""Colorization (Zhang, Isola & Efros 2016, "Colorful image colorization") and
split-brain autoencoders (Zhang, Isola & Efros 2017, "Split-brain
autoencoders: unsupervised learning by cross-channel prediction").

Colorization: an image in CIE Lab (:func:`ssljax.augment.rgb_to_lab`), the
lightness ``L`` is the input, the colour ``ab`` the target, as a
classification over the ``Q`` in-gamut ab bins (:func:`ab_gamut_bins`, grid
10; 261 for sRGB). Per pixel the target is the soft encoding ``Z`` (5 nearest
bins, Gaussian sigma 5) and the loss the class-rebalanced cross-entropy

    L = -(1 / P) sum_pixels w[argmax_q Z_q] sum_q Z_q log softmax(logits)_q,

``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``p~`` the empirical
distribution of the training pixels' bins smoothed by a Gaussian (sigma 5)
over the bin centres, ``lambda = 0.5``, normalized so ``sum_q p~_q w_q = 1``
(:func:`rebalance_weights`). Predictions decode with the annealed mean
(T = 0.38, :func:`ssljax.augment.annealed_mean`).

Architecture (:class:`ColorNet`): a library encoder (``ssljax.models.
get_encoder``: a ResNet) on the normalized ``L`` channel, and a small
per-pixel head. The encoder returns pooled features (what ``encode`` gives
the linear probe); the head reads its feature maps by intercepting the
outputs of the encoder's sub-modules (``flax.linen.intercept_methods``, no
change to the encoder): with ``hypercolumn=True`` (default) the last map of
every resolution (Larsson et al. 2016, "Learning representations for
automatic colorization"), else only the last one. Each is projected by a 1x1
convolution, resized (bilinear) to ``H / out_stride x W / out_stride`` and
summed, then BN-ReLU, a 3x3 convolution, BN-ReLU and a 1x1 convolution to
``Q`` logits. Predictions are made at that reduced resolution (the paper
predicts at 1/4); targets are the ab channels average-pooled to it, and a
predicted ab is upsampled (bilinear) to the input size for display and for
the ab error.

Split-brain (:class:`SplitBrain`): two disjoint :class:`ColorNet` s, ``L ->
ab`` (the colorization above) and ``ab -> L`` (``L`` quantized into 50 bins
of width 2, cross-entropy on the pooled ``L``'s bin); one jitted step
updates both with the sum of the two losses; ``encode`` concatenates the
two encoders' features. Class rebalancing of the ab half is off by default
(``class_weights=None``; ``rebalance_lambda`` in the config turns it on).

Usage::

    bins = ab_gamut_bins()
    weights = rebalance_weights(empirical_prior(train.images, bins))
    model = ColorNet(encoder=get_encoder("small_resnet"), num_classes=len(bins))
    method = Colorization(model=model, tx=optax.adam(1e-3), bins=bins,
                          class_weights=weights)
    state = method.init(jax.random.key(0), (32, 32, 3))
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, key)   # loss, ab_acc, lr
    rgb = method.colorize(state, gray_or_colour_images)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import batch_apply, random_flip_left_right, to_float
from ssljax.augment.lab import (ab_gamut_bins, annealed_mean, lab_to_rgb,
                                nearest_ab_bin, quantize_l, rgb_to_lab,
                                soft_encode_ab)
from ssljax.methods.pretext import PretextState, classification_metrics
from ssljax.methods.simclr import encoder_variables

__all__ = [
    "ColorNet",
    "Colorization",
    "ColorizationState",
    "SplitBrain",
    "SplitBrainNet",
    "ab_bin_counts",
    "bin_accuracy",
    "build_colorization",
    "colorization_loss",
    "empirical_prior",
    "rebalance_weights",
    "save_colorization_png",
    "smooth_prior",
]

#: step, params, batch_stats, opt_state (the pretext tasks' state).
ColorizationState = PretextState

#: Scale of the networks' inputs: ``(L - 50) / 50`` and ``ab / 110``.
L_CENTER, L_SCALE, AB_SCALE = 50.0, 50.0, 110.0


# ---------------------------------------------------------------------------
# Class rebalancing (Zhang et al. 2016, Sec. 2.2).


def ab_bin_counts(images, bins, *, chunk_pixels: int = 16384) -> np.ndarray:
  """How many pixels of ``images`` fall in each bin (nearest centre).

  Args:
    images: uint8 (or [0, 1] float) RGB ``[..., 3]`` on the host.
    bins: ``[Q, 2]`` ab centres.
    chunk_pixels: pixels per jitted chunk (memory ~ ``chunk_pixels * Q``).

  Returns:
    int64 ``[Q]``.
  """
  images = np.asarray(images)
  if images.ndim < 1 or images.shape[-1] != 3:
    raise ValueError(f"images must be RGB [..., 3]; got shape {images.shape}.")
  pixels = images.reshape(-1, 3)
  bins = np.asarray(bins, np.float32)
  q = bins.shape[0]

  @jax.jit
  def count(chunk, valid):
    idx = nearest_ab_bin(rgb_to_lab(chunk)[:, 1:], bins)
    return jnp.bincount(idx, weights=valid, length=q)

  total = np.zeros(q, np.float64)
  n = pixels.shape[0]
  for start in range(0, n, chunk_pixels):
    chunk = pixels[start:start + chunk_pixels]
    valid = np.ones(len(chunk), np.float32)
    if len(chunk) < chunk_pixels:              # one compiled shape
      pad = chunk_pixels - len(chunk)
      chunk = np.concatenate([chunk, np.zeros((pad, 3), chunk.dtype)])
      valid = np.concatenate([valid, np.zeros(pad, np.float32)])
    total += np.asarray(count(chunk, valid), np.float64)
  return np.round(total).astype(np.int64)


def smooth_prior(counts, bins, *, sigma: float = 5.0) -> np.ndarray:
  """The empirical bin distribution smoothed by a Gaussian over the ab plane:
  ``p~_q ∝ sum_r p_r exp(-|c_q - c_r|^2 / (2 sigma^2))`` (float64 ``[Q]``,
  sums to 1). ``sigma = 0``: no smoothing."""
  counts = np.asarray(counts, np.float64)
  bins = np.asarray(bins, np.float64)
  if counts.ndim != 1 or bins.shape != (counts.shape[0], 2):
    raise ValueError(f"counts [Q] and bins [Q, 2] must agree; got "
                     f"{counts.shape} and {bins.shape}.")
  if counts.sum() <= 0 or (counts < 0).any():
    raise ValueError("counts must be non-negative with a positive sum.")
  p = counts / counts.sum()
  if sigma > 0:
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
    p = np.exp(-d2 / (2.0 * sigma ** 2)) @ p
  return p / p.sum()


def empirical_prior(images, bins, *, sigma: float = 5.0) -> np.ndarray:
  """``smooth_prior(ab_bin_counts(images, bins), bins, sigma=sigma)``: the
  paper's ``p~`` from the training images' pixels."""
  return smooth_prior(ab_bin_counts(images, bins), bins, sigma=sigma)


def rebalance_weights(prior, *, lam: float = 0.5) -> np.ndarray:
  """Class-rebalancing weights ``w ∝ ((1 - lam) p~ + lam / Q)^-1``,
  normalized so that ``E_p~[w] = sum_q p~_q w_q = 1`` (float32 ``[Q]``).

  Rare colours weigh more; ``lam = 1`` gives ``w = 1`` (no rebalancing),
  ``lam = 0`` inverts the prior.
  """
  prior = np.asarray(prior, np.float64)
  if prior.ndim != 1 or (prior < 0).any() or not np.isclose(prior.sum(), 1.0):
    raise ValueError(f"prior must be a distribution [Q]; got shape "
                     f"{prior.shape}, sum {prior.sum():.4g}.")
  if not 0.0 <= lam <= 1.0:
    raise ValueError(f"lam must lie in [0, 1]; got {lam}.")
  mix = (1.0 - lam) * prior + lam / prior.shape[0]
  if (mix <= 0).any():
    raise ValueError("lam = 0 needs a prior without zeros (smooth it).")
  w = 1.0 / mix
  return (w / np.sum(prior * w)).astype(np.float32)


# ---------------------------------------------------------------------------
# The loss.


def colorization_loss(logits, targets, *, class_weights=None) -> jax.Array:
  """Class-rebalanced multinomial cross-entropy (Zhang et al. 2016, Eq. 2).

  ``-(1 / P) sum_p w[argmax_q Z_pq] sum_q Z_pq log softmax(logits_p)_q``
  over the ``P`` pixels of the batch.

  Args:
    logits: ``[..., Q]`` predicted scores (any leading shape, e.g.
      ``[B, h, w, Q]``).
    targets: ``[..., Q]`` soft targets ``Z`` (:func:`soft_encode_ab`).
    class_weights: ``[Q]`` (:func:`rebalance_weights`) or ``None`` (all 1).

  Returns:
    scalar float32.
  """
  if logits.shape != targets.shape or logits.ndim < 1:
    raise ValueError(f"logits and targets must both be [..., Q] with equal "
                     f"shapes; got {logits.shape} and {targets.shape}.")
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  ce = -jnp.sum(targets.astype(jnp.float32) * logp, axis=-1)
  if class_weights is not None:
    w = jnp.asarray(class_weights, jnp.float32)
    if w.shape != (logits.shape[-1],):
      raise ValueError(f"class_weights must be [Q={logits.shape[-1]}]; got "
                       f"{w.shape}.")
    ce = ce * w[jnp.argmax(targets, axis=-1)]
  return jnp.mean(ce)


def bin_accuracy(logits, targets) -> jax.Array:
  """Fraction of pixels whose top-scoring bin is the target's most likely
  (= nearest) bin."""
  return jnp.mean((jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
                  .astype(jnp.float32))


# ---------------------------------------------------------------------------
# Models.


def _encoder_maps(encoder: nn.Module, x, train: bool):
  """``(pooled, maps)``: the encoder's output and, in call order, the 4-D
  outputs of every sub-module it called (convolutions, norms, blocks)."""
  maps = []

  def grab(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if (context.method_name == "__call__" and hasattr(out, "ndim")
        and out.ndim == 4):
      maps.append(out)
    return out

  with nn.intercept_methods(grab):
    pooled = encoder(x, train=train)
  return pooled, maps


class ColorNet(nn.Module):
  """Encoder + per-pixel classifier (see the module docstring).

  Attributes:
    encoder: a library encoder (``get_encoder(...)``) whose ``__call__(x,
      train)`` runs convolutional sub-modules and returns pooled features.
    num_classes: logits per pixel (``Q`` ab bins, or 50 L bins).
    hidden_dim: channels of the head.
    out_stride: the logits are ``[B, H / out_stride, W / out_stride, Q]``.
    hypercolumn: read the last feature map of every resolution (True) or
      only the encoder's last map (False, as in Zhang et al.).
    dtype: computation dtype of the head; logits are float32.
  """
  encoder: nn.Module
  num_classes: int
  hidden_dim: int = 64
  out_stride: int = 2
  hypercolumn: bool = True
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    if x.ndim != 4:
      raise ValueError(f"ColorNet expects images [B, H, W, C]; got {x.shape}.")
    b, h, w = x.shape[:3]
    s = int(self.out_stride)
    if s < 1 or h % s or w % s:
      raise ValueError(f"out_stride={self.out_stride} must divide the image "
                       f"size {h}x{w}.")
    _, maps = _encoder_maps(self.encoder, x, train)
    if not maps:
      raise ValueError("the encoder called no sub-module with a 4-D output: "
                       "ColorNet needs a convolutional encoder.")
    if self.hypercolumn:
      last = {}
      for m in maps:                             # last map of each size
        last[m.shape[1:3]] = m
      chosen = list(last.values())
    else:
      chosen = [maps[-1]]
    out_hw = (h // s, w // s)
    # He-normal (fan-out, untruncated, as the library ResNet; quick
    # to compile on XLA:CPU, unlike the truncated normal).
    conv = functools.partial(nn.Conv, dtype=self.dtype, use_bias=False,
                             kernel_init=nn.initializers.variance_scaling(
                                 2.0, "fan_out", "normal"))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             dtype=self.dtype)
    y = None
    for i, m in enumerate(chosen):
      p = conv(self.hidden_dim, (1, 1), name=f"lateral_{i}")(m)
      if p.shape[1:3] != out_hw:
        p = jax.image.resize(p, (b, *out_hw, p.shape[-1]), "bilinear")
      y = p if y is None else y + p
    y = nn.relu(norm(name="fuse_bn")(y))
    y = conv(self.hidden_dim, (3, 3), padding=1, name="conv")(y)
    y = nn.relu(norm(name="conv_bn")(y))
    # Small logits at the start: nearly uniform predictions.
    logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     kernel_init=nn.initializers.normal(0.01),
                     name="logits")(y)
    return logits.astype(jnp.float32)

  def encode(self, x, train: bool = False):
    return self.encoder(x, train=train)


class SplitBrainNet(nn.Module):
  """Two disjoint sub-networks: ``l_net`` (L -> ab bins) and ``ab_net``
  (ab -> L bins); ``encode`` concatenates their encoders' features."""
  l_net: ColorNet
  ab_net: ColorNet

  def __call__(self, l_input, ab_input, train: bool = True):
    return self.l_net(l_input, train=train), self.ab_net(ab_input, train=train)

  def encode(self, l_input, ab_input, train: bool = False):
    return jnp.concatenate([self.l_net.encode(l_input, train=train),
                            self.ab_net.encode(ab_input, train=train)], -1)


# ---------------------------------------------------------------------------
# Shared pieces of the two methods.


def _lab(images) -> jax.Array:
  """Lab ``[N, H, W, 3]`` of uint8 / [0, 1] float images with 3 channels (or 1:
  gray, so ab = 0)."""
  x = to_float(images)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"images must be a batch [N, H, W, C] with C in {{1, 3}}; "
                     f"got {x.shape}.")
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return rgb_to_lab(x)


def _l_input(lab):
  return (lab[..., :1] - L_CENTER) / L_SCALE


def _ab_input(lab):
  return lab[..., 1:] / AB_SCALE


def _pool_to(x, hw):
  """Average-pool ``x [N, H, W, C]`` to ``[N, h, w, C]`` (``h | H``, ``w | W``)."""
  _, big_h, big_w, _ = x.shape
  h, w = hw
  if big_h % h or big_w % w:
    raise ValueError(f"cannot pool {big_h}x{big_w} to {h}x{w}.")
  sh, sw = big_h // h, big_w // w
  # A sum of strided slices, not a reshape: no new batch-axis layout under
  # an explicitly sharded batch.
  total = sum(x[:, i::sh, j::sw] for i in range(sh) for j in range(sw))
  return total / (sh * sw)


def _upsample_to(x, hw):
  if x.shape[1:3] == tuple(hw):
    return x
  return jax.image.resize(x, (x.shape[0], *hw, x.shape[-1]), "bilinear")


def _check_train_batch(images):
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be an RGB batch [N, H, W, C=3]; got "
                     f"{images.shape}.")


def _check_image_shape(image_shape):
  if len(image_shape) != 3 or image_shape[-1] != 3:
    raise ValueError(f"image_shape must be (H, W, 3) (colour images: the "
                     f"targets are their ab channels); got "
                     f"{tuple(image_shape)}.")


def _as_tuple(x, ndim: int):
  a = np.asarray(x, np.float64)
  if a.ndim != ndim:
    raise ValueError(f"expected a {ndim}-D array; got shape {a.shape}.")
  return tuple(map(tuple, a.tolist())) if ndim == 2 else tuple(a.tolist())


@dataclasses.dataclass(frozen=True)
class _ColorMethod:
  """Fields and helpers shared by :class:`Colorization` and
  :class:`SplitBrain`.

  Attributes:
    model: the network (:class:`ColorNet` / :class:`SplitBrainNet`).
    tx: the optax optimizer.
    bins: ``[Q, 2]`` ab centres (default :func:`ab_gamut_bins`); stored as
      nested tuples (hashable, static under ``jit``).
    class_weights: ``[Q]`` rebalancing weights or ``None`` (plain
      soft-target cross-entropy).
    num_neighbors, sigma: soft encoding (5 bins, sigma 5).
    temperature: annealed-mean T for :meth:`predict_ab` (0.38).
    flip: random horizontal flips of the training batch.
    schedule: the learning-rate schedule, only to report ``lr``.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  bins: Any = None
  class_weights: Any = None
  num_neighbors: int = 5
  sigma: float = 5.0
  temperature: float = 0.38
  flip: bool = True
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    bins = ab_gamut_bins() if self.bins is None else self.bins
    object.__setattr__(self, "bins", _as_tuple(bins, 2))
    q = len(self.bins)
    if q == 0 or len(self.bins[0]) != 2:
      raise ValueError(f"bins must be [Q, 2]; got {np.shape(bins)}.")
    if self.class_weights is not None:
      w = _as_tuple(self.class_weights, 1)
      if len(w) != q:
        raise ValueError(f"class_weights must be [Q={q}]; got {len(w)}.")
      object.__setattr__(self, "class_weights", w)
    if not 1 <= self.num_neighbors <= q:
      raise ValueError(f"num_neighbors must lie in [1, {q}]; got "
                       f"{self.num_neighbors}.")
    if self.sigma <= 0 or self.temperature <= 0:
      raise ValueError(f"sigma and temperature must be > 0; got {self.sigma} "
                       f"and {self.temperature}.")

  @property
  def bin_centers(self) -> np.ndarray:
    return np.asarray(self.bins, np.float32)

  @property
  def num_bins(self) -> int:
    return len(self.bins)

  def _weights(self):
    if self.class_weights is None:
      return None
    return jnp.asarray(self.class_weights, jnp.float32)

  def _soft_targets(self, lab, hw):
    ab = _pool_to(lab[..., 1:], hw)
    return soft_encode_ab(ab, self.bin_centers,
                          num_neighbors=self.num_neighbors, sigma=self.sigma)

  def _ab_terms(self, logits, lab):
    z = self._soft_targets(lab, logits.shape[1:3])
    return (colorization_loss(logits, z, class_weights=self._weights()),
            bin_accuracy(logits, z))

  def _augment(self, images, key):
    x = to_float(images)
    if self.flip:
      x = batch_apply(random_flip_left_right, key, x)
    return rgb_to_lab(x)

  def _make_state(self, variables) -> ColorizationState:
    params = variables["params"]
    return ColorizationState(step=jnp.zeros((), jnp.int32), params=params,
                             batch_stats=variables.get("batch_stats", {}),
                             opt_state=self.tx.init(params))

  def _apply_update(self, state, grads, batch_stats, metrics):
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if self.schedule is not None:
      metrics["lr"] = jnp.asarray(self.schedule(state.step), jnp.float32)
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state), metrics

  def _decode(self, logits, out_hw, temperature):
    t = self.temperature if temperature is None else temperature
    ab = annealed_mean(logits, self.bin_centers, temperature=t,
                       from_logits=True)
    return _upsample_to(ab, out_hw)


@dataclasses.dataclass(frozen=True)
class Colorization(_ColorMethod):
  """Colorization as classification over ab bins (Zhang et al. 2016).

  ``model``: a :class:`ColorNet` with ``num_classes = Q``. Metrics of
  :meth:`train_step`: ``loss``, ``ab_acc`` (pixel accuracy on bins), ``lr``.
  """

  metric_name = "ab_acc"

  def init(self, key: jax.Array, image_shape: Sequence[int]
           ) -> ColorizationState:
    """Parameters, BN statistics and optimizer state for ``(H, W, 3)``
    images."""
    _check_image_shape(image_shape)
    h, w = image_shape[:2]
    variables = self.model.init(key, jnp.zeros((2, h, w, 1), jnp.float32),
                                train=True)
    q = jax.eval_shape(lambda: self.model.apply(
        variables, jnp.zeros((2, h, w, 1)), train=False)).shape[-1]
    if q != self.num_bins:
      raise ValueError(f"the model predicts {q} classes but there are "
                       f"{self.num_bins} ab bins: ColorNet(num_classes="
                       f"{self.num_bins}).")
    return self._make_state(variables)

  def loss(self, params, batch_stats, lab):
    """``(loss, (batch_stats, ab_acc))`` of a Lab batch ``[N, H, W, 3]``."""
    logits, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, _l_input(lab),
        train=True, mutable=["batch_stats"])
    loss, acc = self._ab_terms(logits, lab)
    return loss, (updates["batch_stats"], acc)

  def train_step(self, state: ColorizationState, images: jax.Array,
                 key: jax.Array) -> tuple[ColorizationState, dict]:
    """One step on a uint8 RGB batch ``[N, H, W, 3]``; pure (jit it with
    ``donate_argnums=0``); flips come from ``fold_in(key, state.step)``."""
    _check_train_batch(images)
    lab = self._augment(images, jax.random.fold_in(key, state.step))
    (loss, (batch_stats, acc)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, lab)
    return self._apply_update(state, grads, batch_stats,
                              {"loss": loss, "ab_acc": acc})

  def evaluate(self, variables_or_state, images) -> dict[str, jax.Array]:
    """Held-out ``loss`` and ``ab_acc`` of uint8 RGB images (BN in inference
    mode, no flips)."""
    lab = _lab(images)
    logits = self.predict_logits(variables_or_state, images)
    loss, acc = self._ab_terms(logits, lab)
    return {"loss": loss, "ab_acc": acc}

  def preprocess(self, images) -> jax.Array:
    """The network input ``(L - 50) / 50`` ``[N, H, W, 1]`` of uint8 / [0, 1]
    RGB or gray images."""
    return _l_input(_lab(images))

  def encode(self, variables_or_state, images) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of the images' lightness."""
    return self.model.apply(encoder_variables(variables_or_state),
                            self.preprocess(images), train=False,
                            method=type(self.model).encode)

  def predict_logits(self, variables_or_state, images) -> jax.Array:
    """Bin logits ``[N, H / s, W / s, Q]`` (BN in inference mode)."""
    return self.model.apply(encoder_variables(variables_or_state),
                            self.preprocess(images), train=False)

  def predict_ab(self, variables_or_state, images, *,
                 temperature: float | None = None) -> jax.Array:
    """Annealed-mean ab ``[N, H, W, 2]`` (upsampled to the input size)."""
    logits = self.predict_logits(variables_or_state, images)
    return self._decode(logits, images.shape[1:3], temperature)

  def colorize(self, variables_or_state, images, *,
               temperature: float | None = None) -> jax.Array:
    """sRGB float ``[N, H, W, 3]``: the images' own ``L`` with the predicted
    ab."""
    lab = _lab(images)
    ab = self.predict_ab(variables_or_state, images, temperature=temperature)
    return lab_to_rgb(jnp.concatenate([lab[..., :1], ab], -1))


@dataclasses.dataclass(frozen=True)
class SplitBrain(_ColorMethod):
  """Split-brain autoencoder on Lab (Zhang et al. 2017): ``L -> ab`` bins and
  ``ab -> L`` bins, one step for both.

  ``model``: a :class:`SplitBrainNet` (``l_net.num_classes = Q``,
  ``ab_net.num_classes = num_l_bins``). Metrics: ``loss`` (the sum),
  ``loss_ab``, ``loss_l``, ``ab_acc``, ``l_acc``, ``lr``.
  """
  num_l_bins: int = 50

  metric_name = "ab_acc"

  def init(self, key: jax.Array, image_shape: Sequence[int]
           ) -> ColorizationState:
    _check_image_shape(image_shape)
    h, w = image_shape[:2]
    l_in = jnp.zeros((2, h, w, 1), jnp.float32)
    ab_in = jnp.zeros((2, h, w, 2), jnp.float32)
    variables = self.model.init(key, l_in, ab_in, train=True)
    ab_out, l_out = jax.eval_shape(lambda: self.model.apply(
        variables, l_in, ab_in, train=False))
    if ab_out.shape[-1] != self.num_bins or l_out.shape[-1] != self.num_l_bins:
      raise ValueError(f"the sub-networks predict {ab_out.shape[-1]} and "
                       f"{l_out.shape[-1]} classes; need {self.num_bins} ab "
                       f"bins and {self.num_l_bins} L bins.")
    return self._make_state(variables)

  def _terms(self, ab_logits, l_logits, lab):
    loss_ab, ab_acc = self._ab_terms(ab_logits, lab)
    l_small = _pool_to(lab[..., :1], l_logits.shape[1:3])[..., 0]
    loss_l, l_acc = classification_metrics(
        l_logits, quantize_l(l_small, num_bins=self.num_l_bins))
    return {"loss": loss_ab + loss_l, "loss_ab": loss_ab, "loss_l": loss_l,
            "ab_acc": ab_acc, "l_acc": l_acc}

  def loss(self, params, batch_stats, lab):
    (ab_logits, l_logits), updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, _l_input(lab),
        _ab_input(lab), train=True, mutable=["batch_stats"])
    terms = self._terms(ab_logits, l_logits, lab)
    return terms["loss"], (updates["batch_stats"], terms)

  def train_step(self, state: ColorizationState, images: jax.Array,
                 key: jax.Array) -> tuple[ColorizationState, dict]:
    """One step of both sub-networks on a uint8 RGB batch ``[N, H, W, 3]``."""
    _check_train_batch(images)
    lab = self._augment(images, jax.random.fold_in(key, state.step))
    (_, (batch_stats, terms)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, lab)
    return self._apply_update(state, grads, batch_stats, dict(terms))

  def evaluate(self, variables_or_state, images) -> dict[str, jax.Array]:
    """Held-out losses and accuracies (BN in inference mode, no flips)."""
    lab = _lab(images)
    ab_logits, l_logits = self.model.apply(
        encoder_variables(variables_or_state), _l_input(lab), _ab_input(lab),
        train=False)
    return self._terms(ab_logits, l_logits, lab)

  def encode(self, variables_or_state, images) -> jax.Array:
    """Both encoders' features, concatenated ``[N, F_L + F_ab]`` (gray
    images: ab = 0)."""
    lab = _lab(images)
    return self.model.apply(encoder_variables(variables_or_state),
                            _l_input(lab), _ab_input(lab), train=False,
                            method=type(self.model).encode)

  def predict_ab(self, variables_or_state, images, *,
                 temperature: float | None = None) -> jax.Array:
    """The ``L -> ab`` half's annealed-mean ab ``[N, H, W, 2]``."""
    lab = _lab(images)
    logits = self.model.apply(encoder_variables(variables_or_state),
                              _l_input(lab), train=False,
                              method=lambda m, x, train: m.l_net(x, train=train))
    return self._decode(logits, images.shape[1:3], temperature)


# ---------------------------------------------------------------------------
# From a config (ssljax.train.build dispatches here).


def _prior_images(config, limit: int) -> np.ndarray:
  """Up to ``limit`` training images of ``config.dataset`` (evenly spaced,
  deterministic) for the class-rebalancing prior."""
  # pylint: disable=import-outside-toplevel
  from ssljax import data as data_lib
  from ssljax.data.photos import OPENCV_PHOTOS, load_photos
  data_dir = config.get("data_dir") or None
  if config.dataset == OPENCV_PHOTOS:
    ds = load_photos("train", data_dir=data_dir)
  else:
    ds = data_lib.load(config.dataset, "train", data_dir=data_dir,
                       source=config.get("data_source", "auto"))
  images = ds.images
  if images.shape[-1] != 3:
    raise ValueError(f"colorization needs colour images; {config.dataset} "
                     f"has {images.shape[-1]} channel(s).")
  if limit and len(images) > limit:
    images = images[np.linspace(0, len(images) - 1, limit).astype(np.int64)]
  return images


def build_colorization(config, tx, schedule,
                       build_encoder: Callable[[Any], nn.Module]):
  """The :class:`Colorization` / :class:`SplitBrain` of ``config.method``
  (``"colorization"`` / ``"splitbrain"``), from ``config.colorization``:

  ``grid`` (10), ``ab_range`` (110), ``num_neighbors`` (5), ``sigma`` (5),
  ``temperature`` (0.38), ``rebalance_lambda`` (0.5 for colorization, 1.0 =
  off for split-brain), ``prior_sigma`` (5), ``prior_images`` (4000: the
  training images the prior counts), ``hidden_dim`` (64), ``out_stride``
  (2), ``hypercolumn`` (True), ``flip`` (True), ``num_l_bins`` (50).

  ``build_encoder(config)`` makes one encoder (two for split-brain, from
  the same ``config.encoder``). The prior is computed from the training
  split of ``config.dataset`` (``"opencv_photos"`` = :func:`ssljax.data.
  photos.load_photos` with its defaults) unless ``rebalance_lambda == 1``.
  """
  cc = config.get("colorization") or {}
  cc = dict(cc.to_dict() if hasattr(cc, "to_dict") else cc)
  splitbrain = config.method == "splitbrain"
  bins = ab_gamut_bins(float(cc.get("grid", 10.0)),
                       float(cc.get("ab_range", 110.0)))
  lam = float(cc.get("rebalance_lambda", 1.0 if splitbrain else 0.5))
  weights = None
  if lam < 1.0:
    images = _prior_images(config, int(cc.get("prior_images", 4000)))
    prior = empirical_prior(images, bins, sigma=float(cc.get("prior_sigma", 5.0)))
    weights = rebalance_weights(prior, lam=lam)
  head = dict(hidden_dim=int(cc.get("hidden_dim", 64)),
              out_stride=int(cc.get("out_stride", 2)),
              hypercolumn=bool(cc.get("hypercolumn", True)))
  common = dict(tx=tx, bins=bins, class_weights=weights,
                num_neighbors=int(cc.get("num_neighbors", 5)),
                sigma=float(cc.get("sigma", 5.0)),
                temperature=float(cc.get("temperature", 0.38)),
                flip=bool(cc.get("flip", True)), schedule=schedule)
  if not splitbrain:
    model = ColorNet(encoder=build_encoder(config), num_classes=len(bins),
                     **head)
    return Colorization(model=model, **common)
  num_l_bins = int(cc.get("num_l_bins", 50))
  model = SplitBrainNet(
      l_net=ColorNet(encoder=build_encoder(config), num_classes=len(bins),
                     **head),
      ab_net=ColorNet(encoder=build_encoder(config), num_classes=num_l_bins,
                      **head))
  return SplitBrain(model=model, num_l_bins=num_l_bins, **common)


# ---------------------------------------------------------------------------
# A picture.


def save_colorization_png(path: str, originals, colorized, *,
                          titles: Sequence[str] | None = None,
                          extra: dict[str, Any] | None = None,
                          dpi: int = 100) -> str:
  """Write a PNG with one row per image: the gray input (its ``L``), each
  colorization (``colorized``, then any ``extra`` columns ``{name:
  images}``) and the original.

  Images are uint8 or [0, 1] float ``[N, H, W, 3]``. Uses a Matplotlib
  ``Figure`` with the Agg canvas (no pyplot state). Returns ``path``.
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  originals = np.asarray(to_float(originals))
  gray = np.asarray(lab_to_rgb(jnp.concatenate(
      [rgb_to_lab(originals)[..., :1], jnp.zeros(originals.shape[:-1] + (2,))],
      -1)))
  columns = [("gray input (L)", gray), ("colorized", colorized)]
  columns += list((extra or {}).items())
  columns.append(("original", originals))
  columns = [(name, np.clip(np.asarray(to_float(x)), 0, 1)) for name, x in columns]
  n = originals.shape[0]
  h, w = originals.shape[1:3]
  cell = 2.2
  fig = Figure(figsize=(cell * len(columns) * w / max(h, w) + 0.4,
                        cell * n * h / max(h, w) + 0.4))
  FigureCanvasAgg(fig)
  axes = fig.subplots(n, len(columns), squeeze=False)
  for i in range(n):
    for j, (name, x) in enumerate(columns):
      ax = axes[i, j]
      ax.imshow(x[i], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(name, fontsize=9)
      if j == 0 and titles is not None:
        ax.set_ylabel(titles[i], fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  return path
