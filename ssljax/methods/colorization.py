"""Colorization (Zhang, Isola & Efros 2016, "Colorful image colorization") and
split-brain autoencoders (Zhang, Isola & Efros 2017, "Split-brain
autoencoders: unsupervised learning by cross-channel prediction").

Colorization: an image in CIE Lab (:func:`ssljax.augment.rgb_to_lab`), the
lightness ``L`` is the input, the colour ``ab`` the target, as a
classification over the ``Q`` in-gamut ab bins (:func:`ab_gamut_bins`, grid
10; 261 for sRGB). Per pixel the target is the soft encoding ``Z`` (5 nearest
bins, Gaussian sigma 5) and the loss the class-rebalanced cross-entropy
(:func:`ssljax.losses.colorization_loss`)

    L = -(1 / P) sum_pixels w[argmax_q Z_q] sum_q Z_q log softmax(logits)_q,

``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``p~`` the empirical
distribution of the training pixels' bins smoothed by a Gaussian (sigma 5)
over the bin centres, ``lambda = 0.5``, normalized so ``sum_q p~_q w_q = 1``
(:func:`ssljax.losses.rebalance_weights`). Predictions decode with the
annealed mean (T = 0.38, :func:`ssljax.augment.annealed_mean`).

The network (:class:`ssljax.models.ColorNet`): a library encoder on the
normalized ``L`` channel and a per-pixel head over its feature maps;
predictions are made at ``1 / out_stride`` of the resolution (the paper
predicts at 1/4), targets are the ab channels average-pooled to it, and a
predicted ab is upsampled (bilinear) to the input size for display and for
the ab error.

Split-brain (:class:`SplitBrain`): two disjoint ColorNets (a
:class:`ssljax.models.SplitBrainNet`), ``L -> ab`` (the colorization above)
and ``ab -> L`` (``L`` quantized into 50 bins of width 2, cross-entropy on
the pooled ``L``'s bin); one jitted step updates both with the sum of the
two losses; ``encode`` concatenates the two encoders' features. Class
rebalancing of the ab half is off by default (``rebalance_lambda = 1``).

From a config (``experiments/configs/colorization_photos.py``): ``encoder``
(the library encoder), ``head`` (:class:`~ssljax.models.ColorNet`'s
fields) and ``colorization`` (the method's fields: ``grid``, ``ab_range``,
``num_neighbors``, ``sigma``, ``temperature``, ``flip``,
``rebalance_lambda``, ``prior_sigma``, ``prior_images``; ``num_l_bins`` for
split-brain). The rebalancing prior is counted on the training set the loop
passes (``data.dataset``); when only checking a config it is uniform.

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
import weakref
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
from ssljax.config import build, check
from ssljax.config import replace as replace_checked
from ssljax.losses.classification import classification_metrics
from ssljax.losses.colorization import (bin_accuracy, colorization_loss,
                                        rebalance_weights, smooth_prior)
from ssljax.methods.base import (Method, TrainState, build_encoder,
                                 compute_dtype, encoder_variables, loss_step,
                                 register, step_key, train_state)
from ssljax.models.colorization import ColorNet, SplitBrainNet

__all__ = [
    "Colorization",
    "SplitBrain",
    "ab_bin_counts",
    "class_weights_for",
    "empirical_prior",
]

#: Scale of the networks' inputs: ``(L - 50) / 50`` and ``ab / 110``.
L_CENTER, L_SCALE, AB_SCALE = 50.0, 50.0, 110.0


# ---------------------------------------------------------------------------
# Class rebalancing (Zhang et al. 2016, Sec. 2.2): the prior of the training
# pixels (the weights themselves are ssljax.losses.rebalance_weights).


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


def empirical_prior(images, bins, *, sigma: float = 5.0) -> np.ndarray:
  """``smooth_prior(ab_bin_counts(images, bins), bins, sigma=sigma)``: the
  paper's ``p~`` from the training images' pixels."""
  return smooth_prior(ab_bin_counts(images, bins), bins, sigma=sigma)


# The prior of a loaded training set, per (images array, bins, options): the
# loop builds the method more than once on the same data (checking, then
# training; restoring for evaluation).
_PRIORS: "weakref.WeakKeyDictionary[np.ndarray, dict]" = (
    weakref.WeakKeyDictionary())


def class_weights_for(images, bins, *, lam: float, prior_sigma: float = 5.0,
                      prior_images: int = 4000) -> np.ndarray | None:
  """The rebalancing weights ``[Q]`` of a training set's images (``None``
  when ``lam == 1``: no rebalancing): the smoothed prior of up to
  ``prior_images`` evenly spaced images (0: all), mixed with ``lam``.
  ``images=None``: a uniform prior (weights 1), the cheap stand-in for
  checking a config without its data."""
  if lam >= 1.0:
    return None
  bins = np.asarray(bins, np.float32)
  if images is None:
    return rebalance_weights(np.full(len(bins), 1.0 / len(bins)), lam=lam)
  key = (bins.tobytes(), float(prior_sigma), int(prior_images))
  try:
    cache = _PRIORS.setdefault(images, {})
  except TypeError:                         # not weak-referenceable
    cache = {}
  if key not in cache:
    chosen = images
    if prior_images and len(images) > prior_images:
      chosen = images[np.linspace(0, len(images) - 1, prior_images)
                      .astype(np.int64)]
    cache[key] = empirical_prior(chosen, bins, sigma=prior_sigma)
  return rebalance_weights(cache[key], lam=lam)


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




def _pos(v) -> bool:
  return v > 0


@dataclasses.dataclass(frozen=True)
class _ColorMethod(Method):
  """Fields and helpers shared by :class:`Colorization` and
  :class:`SplitBrain`; the fields after ``tx`` are the keys of the config
  section ``colorization``.

  Attributes:
    model: the network (:class:`~ssljax.models.ColorNet` /
      :class:`~ssljax.models.SplitBrainNet`).
    tx: the optax optimizer.
    bins: ``[Q, 2]`` ab centres; ``None``: ``ab_gamut_bins(grid,
      ab_range)``. Stored as nested tuples (hashable, static under ``jit``).
    class_weights: ``[Q]`` rebalancing weights or ``None`` (plain
      soft-target cross-entropy); :meth:`from_config` computes them.
    grid, ab_range: the ab bins' spacing and extent (10 and 110: 261 sRGB
      bins).
    num_neighbors, sigma: soft encoding (5 bins, sigma 5).
    temperature: annealed-mean T of :meth:`decode_ab` (0.38).
    flip: random horizontal flips of the training batch.
    rebalance_lambda: the rebalancing ``lambda`` (0.5; 1: no rebalancing).
    prior_sigma: smoothing of the prior over the ab plane (5).
    prior_images: training images the prior counts (evenly spaced; 0: all).
    schedule: the learning-rate schedule, only to report ``lr``.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  bins: Any = None
  class_weights: Any = None
  grid: float = 10.0
  ab_range: float = 110.0
  num_neighbors: int = 5
  sigma: float = 5.0
  temperature: float = 0.38
  flip: bool = True
  rebalance_lambda: float = 0.5
  prior_sigma: float = 5.0
  prior_images: int = 4000
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    q = None
    if self.bins is not None:
      object.__setattr__(self, "bins", _as_tuple(self.bins, 2))
      q = len(self.bins)
    elif _pos(self.grid) and _pos(self.ab_range):
      object.__setattr__(self, "bins", _as_tuple(
          ab_gamut_bins(float(self.grid), float(self.ab_range)), 2))
      q = len(self.bins)
    w = None
    if self.class_weights is not None:
      w = _as_tuple(self.class_weights, 1)
      object.__setattr__(self, "class_weights", w)
    check(self,
          ("grid", _pos, "the ab bin spacing must be > 0, e.g. 10.0"),
          ("ab_range", _pos, "the ab extent must be > 0, e.g. 110.0"),
          ("bins", q is None or (q > 0 and len(self.bins[0]) == 2),
           "must be [Q, 2] ab centres (or None: ab_gamut_bins(grid, "
           "ab_range))"),
          ("num_neighbors", lambda n: q is None or 1 <= n <= q,
           f"soft-encoding neighbours must lie in [1, Q={q}], e.g. 5"),
          ("sigma", _pos, "the soft-encoding Gaussian width must be > 0, "
           "e.g. 5.0"),
          ("temperature", _pos, "the annealed-mean T must be > 0, e.g. 0.38"),
          ("rebalance_lambda", lambda v: 0.0 <= v <= 1.0,
           "must lie in [0, 1]: 0.5 as in the paper, 1.0 for no rebalancing"),
          ("prior_sigma", lambda v: v >= 0, "must be >= 0 (0: no smoothing), "
           "e.g. 5.0"),
          ("prior_images", lambda v: isinstance(v, int) and v >= 0,
           "training images the prior counts: an integer >= 0 (0: all), "
           "e.g. 4000"),
          ("class_weights", w is None or len(w) == q,
           f"must be [Q={q}] weights (or None)"))

  # -- from a config ---------------------------------------------------------

  @classmethod
  def _make_model(cls, config, num_bins: int) -> nn.Module:
    raise NotImplementedError

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """The method of ``config``: sections ``encoder``, ``head``
    (:class:`~ssljax.models.ColorNet` fields: ``hidden_dim``,
    ``out_stride``, ``hypercolumn``, ``bn_momentum``) and ``colorization``
    (this class's fields). The rebalancing prior is counted on
    ``data.dataset`` (a uniform stand-in when it is None)."""
    method = build(cls, config.get("colorization"), model=None, tx=tx,
                   schedule=schedule)
    bins = method.bins if method.bins is not None else ab_gamut_bins()
    images = getattr(data.dataset, "images", None)
    if images is not None and (images.ndim != 4 or images.shape[-1] != 3):
      images = None               # not colour images: init / train_step say so
    try:
      weights = class_weights_for(images, bins, lam=method.rebalance_lambda,
                                  prior_sigma=method.prior_sigma,
                                  prior_images=method.prior_images)
    except (TypeError, ValueError):  # a bad value, already reported
      weights = None
    return replace_checked(method, model=cls._make_model(config, len(bins)),
                    class_weights=weights)

  # -- shared helpers ----------------------------------------------------------

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

  def decode_ab(self, logits, out_hw=None, *,
                temperature: float | None = None) -> jax.Array:
    """Annealed-mean ab ``[N, H, W, 2]`` of bin ``logits [N, h, w, Q]``
    (``temperature`` default :attr:`temperature`), upsampled (bilinear) to
    ``out_hw`` when given."""
    t = self.temperature if temperature is None else temperature
    ab = annealed_mean(logits, self.bin_centers, temperature=t,
                       from_logits=True)
    return ab if out_hw is None else _upsample_to(ab, out_hw)


@register("colorization")
@dataclasses.dataclass(frozen=True)
class Colorization(_ColorMethod):
  """Colorization as classification over ab bins (Zhang et al. 2016).

  ``model``: a :class:`~ssljax.models.ColorNet` with ``num_classes = Q``.
  Metrics of :meth:`train_step`: ``loss``, ``ab_acc`` (pixel accuracy on
  bins), ``lr``.
  """

  metric_name = "ab_acc"

  @classmethod
  def _make_model(cls, config, num_bins: int) -> nn.Module:
    return build(ColorNet, config.get("head"), encoder=build_encoder(config),
                 num_classes=num_bins, dtype=compute_dtype(config))

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
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
    return train_state(variables, self.tx)

  def loss(self, params, batch_stats, lab):
    """``(loss, (batch_stats, ab_acc))`` of a Lab batch ``[N, H, W, 3]``."""
    logits, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, _l_input(lab),
        train=True, mutable=["batch_stats"])
    loss, acc = self._ab_terms(logits, lab)
    return loss, (updates["batch_stats"], acc)

  def train_step(self, state: TrainState, images: jax.Array,
                 key: jax.Array) -> tuple[TrainState, dict]:
    """One step on a uint8 RGB batch ``[N, H, W, 3]``; pure (jit it with
    ``donate_argnums=0``); flips come from ``fold_in(key, state.step)``."""
    _check_train_batch(images)
    lab = self._augment(images, step_key(key, state))
    return loss_step(self, state, lab,
                     metrics=lambda loss, acc: {"loss": loss, "ab_acc": acc})

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
    return self.decode_ab(logits, images.shape[1:3], temperature=temperature)

  def colorize(self, variables_or_state, images, *,
               temperature: float | None = None) -> jax.Array:
    """sRGB float ``[N, H, W, 3]``: the images' own ``L`` with the predicted
    ab."""
    lab = _lab(images)
    ab = self.predict_ab(variables_or_state, images, temperature=temperature)
    return lab_to_rgb(jnp.concatenate([lab[..., :1], ab], -1))


@register("splitbrain")
@dataclasses.dataclass(frozen=True)
class SplitBrain(_ColorMethod):
  """Split-brain autoencoder on Lab (Zhang et al. 2017): ``L -> ab`` bins and
  ``ab -> L`` bins, one step for both.

  ``model``: a :class:`~ssljax.models.SplitBrainNet` (``l_net.num_classes =
  Q``, ``ab_net.num_classes = num_l_bins``); both sub-networks are built
  from the same ``encoder`` and ``head`` sections. Metrics: ``loss`` (the
  sum), ``loss_ab``, ``loss_l``, ``ab_acc``, ``l_acc``, ``lr``. No class
  rebalancing by default (``rebalance_lambda = 1``).
  """
  rebalance_lambda: float = 1.0
  num_l_bins: int = 50

  metric_name = "ab_acc"

  def __post_init__(self):
    super().__post_init__()
    check(self, ("num_l_bins", lambda n: isinstance(n, int) and n >= 2,
                 "L bins (width 100 / num_l_bins): an integer >= 2, e.g. 50"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """As :meth:`Colorization.from_config`, plus ``colorization.num_l_bins``
    (50): two ColorNets from the same ``encoder`` and ``head`` sections."""
    method = super().from_config(config, tx=tx, schedule=schedule, data=data)
    return replace_checked(method, model=SplitBrainNet(
        l_net=method.model,
        ab_net=build(ColorNet, config.get("head"),
                     encoder=build_encoder(config),
                     num_classes=int(method.num_l_bins or 50),
                     dtype=compute_dtype(config))))

  @classmethod
  def _make_model(cls, config, num_bins: int) -> nn.Module:
    # The L -> ab half; from_config adds the ab -> L half.
    return Colorization._make_model(config, num_bins)

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
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
    return train_state(variables, self.tx)

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

  def train_step(self, state: TrainState, images: jax.Array,
                 key: jax.Array) -> tuple[TrainState, dict]:
    """One step of both sub-networks on a uint8 RGB batch ``[N, H, W, 3]``."""
    _check_train_batch(images)
    lab = self._augment(images, step_key(key, state))
    return loss_step(self, state, lab)        # metrics: the loss terms

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

  def predict_logits(self, variables_or_state, images) -> jax.Array:
    """The ``L -> ab`` half's bin logits ``[N, H / s, W / s, Q]``."""
    lab = _lab(images)
    return self.model.apply(encoder_variables(variables_or_state),
                            _l_input(lab), train=False,
                            method=lambda m, x, train: m.l_net(x, train=train))

  def predict_ab(self, variables_or_state, images, *,
                 temperature: float | None = None) -> jax.Array:
    """The ``L -> ab`` half's annealed-mean ab ``[N, H, W, 2]``."""
    logits = self.predict_logits(variables_or_state, images)
    return self.decode_ab(logits, images.shape[1:3], temperature=temperature)
