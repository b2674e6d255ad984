"""Inpainting / context encoder (Pathak et al. 2016, "Context encoders:
feature learning by inpainting").

A generator ``F`` (the library encoder, then a convolutional decoder) sees an
image whose hole ``M`` (1 = dropped; :mod:`ssljax.augment.masks`) is filled
with ``fill`` (0 in normalized units: the dataset mean) and paints the whole
image; a discriminator ``D`` tells real images from completed ones. Losses
(``x`` normalized images, ``y = F((1 - M) x + M fill)``, ``D`` a logit):

* reconstruction, with the heavier "overlap" band of the paper
  (:func:`ssljax.losses.reconstruction_loss`)::

      L_rec = sum(W * (x - y)^2) / (C * sum(M))

  ``W = border_weights(M)``: 10 on the hole pixels within ``border`` pixels of
  the kept context, 1 elsewhere in the hole, 0 outside it; in the paper's
  notation ``||M_hat * (x - y)||^2`` with ``M_hat = sqrt(W)`` (the official
  code multiplies the L2 gradient of the overlap pixels by 10, i.e. weighs
  their squared error 10x). Normalized by the number of dropped values (hole
  pixels times channels), a mean squared error over the hole;

* adversarial, for ``D`` (:func:`ssljax.losses.discriminator_loss`; the fake
  images carry no gradient to ``F``)::

      L_adv = -E[log D(x) + log(1 - D(x_fake))]

* for ``F`` the non-saturating term ``-E[log D(x_fake)]``
  (:func:`ssljax.losses.generator_adversarial_loss`) instead of the paper's minimax
  ``E[log(1 - D(x_fake))]`` (the usual GAN practice; it has strong gradients
  while ``D`` wins), and the generator minimizes
  ``rec_weight * L_rec + adv_weight * L_adv_G`` (0.999 and 0.001).

``x_fake`` is, with ``adversarial_input="composite"`` (default), the
completed image ``(1 - M) x + M y`` (the real context with the painted hole:
the paper's ``D`` judges the painted region alone, and the composite keeps
``D`` on the hole as well); with ``"output"`` the raw ``y``.

Both networks train in ONE pure step (:meth:`Inpainting.train_step`): their
gradients come from the same parameters (a simultaneous update), each with
its own optimizer state (Adam, lr 2e-4, beta1 0.5 in the paper)::

    method = Inpainting(model=ContextEncoder(get_encoder("small_resnet"),
                                             ConvDecoder()),
                        discriminator=ConvDiscriminator(), tx=optax.adam(2e-4, 0.5))
    # or: Inpainting.from_config(config, tx=tx, schedule=schedule, data=spec)
    state = method.init(jax.random.key(0), (28, 28, 1))
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, key)
    feats = method.encode(state, images_uint8)      # the frozen encoder

The networks are in :mod:`ssljax.models.inpainting`, the losses in
:mod:`ssljax.losses.inpainting`, the masks in :mod:`ssljax.augment.masks`.

Config (``config.method = "inpainting"``): ``encoder``, ``decoder``
(:class:`~ssljax.models.ConvDecoder` fields), ``discriminator``
(:class:`~ssljax.models.ConvDiscriminator` fields), ``inpainting`` (the
fields of :class:`Inpainting`: ``mask``, ``mask_size``, ``coverage``,
``border``, ``border_weight``, ``rec_weight``, ``adv_weight``, ...), and
``optimizer``, whose ``b1`` / ``b2`` set Adam's betas (the paper:
``name="adamw"``, ``weight_decay=0``, ``base_lr=2e-4``, ``b1=0.5``). The
generator and the discriminator get the same optimizer, each with its own
state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax import losses
from ssljax.augment import normalize_images, to_float
from ssljax.augment.masks import MASK_KINDS, apply_mask, inpainting_masks
from ssljax.config import build, check
from ssljax.methods.base import (Method, TrainState, apply_gradients,
                                 build_encoder, compute_dtype,
                                 encoder_variables, frozen_features, register,
                                 step_key)
from ssljax.models import ContextEncoder, ConvDecoder, ConvDiscriminator

__all__ = ["ADVERSARIAL_INPUTS", "Inpainting", "InpaintingState"]

#: ``Inpainting.adversarial_input`` values.
ADVERSARIAL_INPUTS = ("composite", "output")


@flax.struct.dataclass
class InpaintingState:
  """Everything that changes while the context encoder trains (a pytree).

  ``params`` / ``batch_stats`` / ``opt_state``: the generator's (encoder +
  decoder; ``encode`` and the evaluation read ``params`` and
  ``batch_stats``); ``disc_params`` / ``disc_opt_state``: the discriminator's.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  disc_params: Any
  disc_opt_state: Any


@register("inpainting")
@dataclasses.dataclass(frozen=True)
class Inpainting(Method):
  """Context encoder: masked L2 + adversarial loss, generator and
  discriminator trained in one step.

  Attributes:
    model: the generator, a :class:`~ssljax.models.ContextEncoder` (or any
      module with ``__call__(x, train) -> image`` and ``encode(x, train)``).
    discriminator: a module ``(x, train) -> [B]`` logits without BatchNorm
      statistics (e.g. :class:`~ssljax.models.ConvDiscriminator`).
    tx: the generator's optimizer (the paper: Adam 2e-4, beta1 0.5).
    disc_tx: the discriminator's (default: the same transformation as ``tx``,
      with its own state).
    mask: ``"center"``, ``"random_blocks"`` or ``"random_regions"``.
    mask_size: centre hole side as a fraction of the image side (the paper: 0.5).
    coverage: fraction dropped by the random masks (the paper: ~1/4).
    num_blocks, block_size_range: :func:`ssljax.augment.masks.random_block_mask`.
    region_grid: :func:`ssljax.augment.masks.random_region_mask`'s ``grid``.
    border: width in pixels of the heavier band just inside the hole's edge.
    border_weight: its L2 weight (the paper: 10).
    rec_weight, adv_weight: the generator loss weights (0.999, 0.001).
    adversarial_input: ``"composite"`` (D sees ``(1 - M) x + M y``) or
      ``"output"`` (D sees ``y``).
    fill: value of the dropped pixels in normalized units (0 = the mean).
    mean, std: per-channel input normalization.
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
  """
  model: nn.Module
  discriminator: nn.Module
  tx: optax.GradientTransformation
  disc_tx: optax.GradientTransformation | None = None
  mask: str = "center"
  mask_size: float = 0.5
  coverage: float = 0.25
  num_blocks: int = 16
  block_size_range: Sequence[float] = (0.15, 0.35)
  region_grid: int = 4
  border: int = 2
  border_weight: float = 10.0
  rec_weight: float = 0.999
  adv_weight: float = 0.001
  adversarial_input: str = "composite"
  fill: float = 0.0
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    fraction = lambda v: 0.0 < v <= 1.0  # noqa: E731
    check(self,
          ("mask", lambda m: m in MASK_KINDS,
           f"must be one of {MASK_KINDS} (the paper: 'center')"),
          ("mask_size", fraction, "the centre hole's side as a fraction of "
           "the image side: in (0, 1], e.g. 0.5 (the paper)"),
          ("coverage", fraction, "the fraction the random masks drop: in "
           "(0, 1], e.g. 0.25 (the paper)"),
          ("num_blocks", lambda n: isinstance(n, int) and n >= 1,
           "candidate rectangles of the random_blocks mask: an integer >= 1"),
          ("block_size_range", lambda r: len(r) == 2
           and 0.0 < r[0] <= r[1] <= 1.0,
           "(min, max) block side as a fraction of the image side, "
           "0 < min <= max <= 1, e.g. (0.15, 0.35)"),
          ("region_grid", lambda g: isinstance(g, int) and g >= 2,
           "side of the random_regions noise lattice: an integer >= 2"),
          ("border", lambda b: isinstance(b, int) and b >= 0,
           "width of the heavier band inside the hole: an integer >= 0 "
           "(0: none), e.g. 2"),
          ("border_weight", lambda w: w >= 0, "must be >= 0 (the paper: 10)"),
          ("rec_weight", lambda w: w >= 0, "must be >= 0 (the paper: 0.999)"),
          ("adv_weight", lambda w: w >= 0, "must be >= 0 (the paper: 0.001)"),
          ("adversarial_input", lambda a: a in ADVERSARIAL_INPUTS,
           f"must be one of {ADVERSARIAL_INPUTS}"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Sections ``encoder``, ``decoder``, ``discriminator``, ``inpainting``
    (``compute_dtype`` sets the networks' dtype)."""
    dtype = compute_dtype(config)
    model = ContextEncoder(
        encoder=build_encoder(config),
        decoder=build(ConvDecoder, config.get("decoder"), dtype=dtype))
    discriminator = build(ConvDiscriminator, config.get("discriminator"),
                          dtype=dtype)
    return build(cls, config.get("inpainting"), model=model,
                 discriminator=discriminator, tx=tx, disc_tx=None,
                 schedule=schedule, mean=data.mean, std=data.std)

  @property
  def _disc_tx(self) -> optax.GradientTransformation:
    return self.tx if self.disc_tx is None else self.disc_tx

  # -- data ------------------------------------------------------------------

  def masks(self, images: jax.Array, key: jax.Array) -> jax.Array:
    """``[N, H, W, 1]`` float32 masks (1 = dropped) for a batch."""
    if self.mask == "center":
      kw = dict(size=self.mask_size)
    elif self.mask == "random_blocks":
      kw = dict(coverage=self.coverage, num_blocks=self.num_blocks,
                size_range=tuple(self.block_size_range))
    else:
      kw = dict(coverage=self.coverage, grid=self.region_grid)
    return inpainting_masks(key, images, kind=self.mask, **kw)

  def inputs(self, images: jax.Array, key: jax.Array):
    """``(x, mask, masked)``: normalized images, masks, and the generator's
    input ``(1 - M) x + M fill``."""
    x = normalize_images(to_float(images), self.mean, self.std)
    mask = self.masks(images, key)
    return x, mask, apply_mask(x, mask, self.fill)

  # -- init ------------------------------------------------------------------

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> InpaintingState:
    """Generator and discriminator variables and optimizer states for
    ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    g_key, d_key = jax.random.split(key)
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    # Not jitted, as PretextMethod.init (a jitted init recompiles for every
    # new method object; op by op the initializers are cached per shape).
    variables = self.model.init(g_key, dummy, train=True)
    d_vars = self.discriminator.init(d_key, dummy, train=True)
    if set(d_vars) - {"params"}:
      raise ValueError(f"the discriminator must have parameters only; it has "
                       f"collections {sorted(d_vars)} (no BatchNorm).")
    params, d_params = variables["params"], d_vars["params"]
    return InpaintingState(step=jnp.zeros((), jnp.int32), params=params,
                           batch_stats=variables.get("batch_stats", {}),
                           opt_state=self.tx.init(params),
                           disc_params=d_params,
                           disc_opt_state=self._disc_tx.init(d_params))

  # -- losses ----------------------------------------------------------------

  def generate(self, params, batch_stats, masked: jax.Array, *,
               train: bool = True):
    """``(y, new batch_stats)``: the generator's image of ``masked`` input."""
    variables = {"params": params, "batch_stats": batch_stats}
    if not train:
      return self.model.apply(variables, masked, train=False), batch_stats
    y, updates = self.model.apply(variables, masked, train=True,
                                  mutable=["batch_stats"])
    return y, updates.get("batch_stats", batch_stats)

  def fake_images(self, x, mask, y):
    """What the discriminator sees as fake (``adversarial_input``)."""
    if self.adversarial_input == "composite":
      return apply_mask(x, mask, 0.0) + mask * y
    return y

  def generator_loss(self, params, batch_stats, disc_params, x, mask, masked):
    """``rec_weight * L_rec + adv_weight * L_adv_G`` and its parts:
    returns ``(loss, aux)`` with ``aux`` = ``batch_stats``, ``rec_loss``,
    ``g_adv_loss``, ``output`` (``y``) and ``fake`` (D's fake input)."""
    y, new_stats = self.generate(params, batch_stats, masked, train=True)
    rec = losses.reconstruction_loss(x, y, mask, border=self.border,
                                     border_weight=self.border_weight)
    fake = self.fake_images(x, mask, y)
    g_adv = losses.generator_adversarial_loss(
        self.discriminator.apply({"params": disc_params}, fake, train=True))
    loss = self.rec_weight * rec + self.adv_weight * g_adv
    return loss, {"batch_stats": new_stats, "rec_loss": rec,
                  "g_adv_loss": g_adv, "output": y, "fake": fake}

  def discriminator_loss(self, disc_params, x, fake):
    """``L_adv`` for D on real ``x`` and ``fake`` (no gradient flows into
    ``fake``, so the generator is untouched); returns ``(loss, aux)`` with
    ``d_real`` / ``d_fake`` = mean ``D`` (a probability) on each."""
    fake = jax.lax.stop_gradient(fake)
    logits = self.discriminator.apply({"params": disc_params},
                                      jnp.concatenate([x, fake]), train=True)
    real_logits, fake_logits = jnp.split(logits, 2)
    loss = losses.discriminator_loss(real_logits, fake_logits)
    return loss, {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                  "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}

  # -- the step --------------------------------------------------------------

  def train_step(self, state: InpaintingState, images: jax.Array,
                 key: jax.Array) -> tuple[InpaintingState, dict[str, jax.Array]]:
    """One generator and one discriminator update on a global uint8 batch
    ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. Masks come from
    ``fold_in(key, state.step)``. Both gradients are taken at the incoming
    parameters. Metrics: ``loss`` (the generator's total), ``rec_loss``,
    ``g_adv_loss``, ``d_loss``, ``d_real``, ``d_fake`` (mean ``D`` on real
    and fake images) and ``lr``.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be a batch [N, H, W, C] with C in {{1, 3}}; "
                       f"got {images.shape}.")
    x, mask, masked = self.inputs(images, step_key(key, state))
    (g_loss, aux), g_grads = jax.value_and_grad(
        self.generator_loss, has_aux=True)(
            state.params, state.batch_stats, state.disc_params, x, mask, masked)
    (d_loss, d_aux), d_grads = jax.value_and_grad(
        self.discriminator_loss, has_aux=True)(state.disc_params, x, aux["fake"])
    metrics = {"loss": g_loss, "rec_loss": aux["rec_loss"],
               "g_adv_loss": aux["g_adv_loss"], "d_loss": d_loss, **d_aux}
    return apply_gradients(state, g_grads, tx=self.tx, metrics=metrics,
                           schedule=self.schedule,
                           batch_stats=aux["batch_stats"],
                           **self.discriminator_update(state, d_grads))

  def discriminator_update(self, state: InpaintingState, d_grads
                           ) -> dict[str, Any]:
    """The discriminator's optimizer update, ``{"disc_params",
    "disc_opt_state"}``: :func:`~ssljax.methods.base.apply_gradients` on a
    :class:`TrainState` view of the discriminator's part of ``state``."""
    view = TrainState(step=state.step, params=state.disc_params,
                      batch_stats={}, opt_state=state.disc_opt_state)
    new, _ = apply_gradients(view, d_grads, tx=self._disc_tx, metrics={})
    return {"disc_params": new.params, "disc_opt_state": new.opt_state}

  # -- evaluation --------------------------------------------------------------

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of whole uint8 or [0, 1] float
    images (BatchNorm in inference mode)."""
    return frozen_features(self.model, self.mean, self.std,
                           variables_or_state, images)

  def complete(self, variables_or_state, images: jax.Array, key: jax.Array
               ) -> dict[str, jax.Array]:
    """Inpaint a batch (BatchNorm in inference mode), for pictures.

    Returns float32 ``[N, H, W, C]`` images in [0, 1]: ``original``,
    ``masked`` (the generator's input), ``output`` (its raw image) and
    ``completed`` (the output pasted into the hole), and ``mask``
    ``[N, H, W, 1]``.
    """
    v = encoder_variables(variables_or_state)
    x, mask, masked = self.inputs(images, key)
    y, _ = self.generate(v["params"], v.get("batch_stats", {}), masked,
                         train=False)
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    to01 = lambda z: jnp.clip(z * std + mean, 0.0, 1.0)  # noqa: E731
    return {"original": to01(x), "masked": to01(masked), "output": to01(y),
            "completed": to01(apply_mask(x, mask, 0.0) + mask * y),
            "mask": mask}
