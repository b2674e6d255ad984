"""The context encoder's losses (Pathak et al. 2016, "Context encoders: feature
learning by inpainting", sec. 3.2): the masked L2 with the heavier overlap band,
and the adversarial losses of the discriminator and of the generator.

Masks ``M`` are float ``[..., H, W, 1]`` with 1 where pixels are dropped (the
hole the generator paints; ``ssljax.augment.masks`` makes them). Discriminator
outputs are logits ``[B]`` (``D = sigmoid(logit)``); the adversarial losses
use the softplus forms, finite for any logit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["border_weights", "discriminator_loss", "generator_adversarial_loss",
           "reconstruction_loss"]


def border_weights(mask: jax.Array, *, border: int = 2,
                   weight: float = 10.0) -> jax.Array:
  """Per-pixel reconstruction weights of a mask: ``weight`` in the band of
  hole pixels within ``border`` pixels of the kept context, 1 elsewhere in the
  hole, 0 outside it.

  The band is ``M - erode(M)``, the erosion a ``(2 border + 1)`` square
  min-filter (Chebyshev distance <= ``border`` to a kept pixel); outside the
  image counts as hole, so a hole touching the image edge has no band there
  (no context lies beyond it). The context encoder weighs its "overlap"
  band 10x in the L2 loss (the official code predicts a few pixels of
  context around the hole and multiplies their L2 gradient by 10); here the
  band lies just inside the hole, so every weighted pixel is one the
  generator cannot see.

  Args:
    mask: ``[..., H, W, 1]`` (or ``[..., H, W, C]``) with 1 in the hole.
    border: band width in pixels (0: no band, weights = mask).
    weight: band weight.

  Returns:
    float32 weights, the shape of ``mask``.
  """
  if mask.ndim < 3:
    raise ValueError(f"mask must be [..., H, W, C]; got shape {mask.shape}.")
  mask = jnp.asarray(mask, jnp.float32)
  if border < 0:
    raise ValueError(f"border must be >= 0; got {border}.")
  if border == 0:
    return mask
  lead = mask.shape[:-3]
  m = mask.reshape(-1, *mask.shape[-3:])
  size = 2 * border + 1
  pad = ((0, 0), (border, border), (border, border), (0, 0))
  eroded = -jax.lax.reduce_window(
      -jnp.pad(m, pad, constant_values=1.0), -jnp.inf, jax.lax.max,
      (1, size, size, 1), (1, 1, 1, 1), "VALID")
  band = m - eroded
  out = m + (weight - 1.0) * band
  return out.reshape(*lead, *mask.shape[-3:])


def reconstruction_loss(target: jax.Array, prediction: jax.Array,
                        mask: jax.Array, *, border: int = 2,
                        border_weight: float = 10.0) -> jax.Array:
  """Masked L2 with the overlap band: ``sum(W (x - y)^2) / (C sum(M))``.

  ``W = border_weights(M)``; in the paper's notation ``||M_hat * (x - y)||^2``
  with ``M_hat = sqrt(W)``. Normalized by the number of dropped values (hole
  pixels times channels): a mean squared error over the hole.

  Args:
    target: ``x``, ``[B, H, W, C]``.
    prediction: ``y``, ``[B, H, W, C]``.
    mask: ``M``, ``[B, H, W, 1]``, 1 in the hole.
    border, border_weight: the band of :func:`border_weights`.

  Returns:
    scalar float32 (0 for an empty mask).
  """
  if target.shape != prediction.shape or target.ndim != 4:
    raise ValueError(f"target {target.shape} and prediction {prediction.shape} "
                     "must both be [B, H, W, C].")
  if mask.shape != (*target.shape[:3], 1):
    raise ValueError(f"mask must be [B, H, W, 1] = {(*target.shape[:3], 1)}; "
                     f"got {mask.shape}.")
  w = border_weights(mask, border=border, weight=border_weight)
  err = (target.astype(jnp.float32) - prediction.astype(jnp.float32)) ** 2
  count = target.shape[-1] * jnp.sum(mask.astype(jnp.float32))
  return jnp.sum(w * err) / jnp.maximum(count, 1.0)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array
                       ) -> jax.Array:
  """``-E[log D(x)] - E[log(1 - D(x_fake))]``, ``D = sigmoid(logit)``.

  Args:
    real_logits, fake_logits: ``[B]`` discriminator logits.

  Returns:
    scalar float32.
  """
  if real_logits.ndim != 1 or fake_logits.ndim != 1:
    raise ValueError(f"logits must be [B]; got {real_logits.shape} and "
                     f"{fake_logits.shape}.")
  real_logits = real_logits.astype(jnp.float32)
  fake_logits = fake_logits.astype(jnp.float32)
  # -log sigmoid(r) = softplus(-r);  -log(1 - sigmoid(f)) = softplus(f)
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(
      jax.nn.softplus(fake_logits))


def generator_adversarial_loss(fake_logits: jax.Array) -> jax.Array:
  """The non-saturating generator term ``-E[log D(x_fake)]``.

  Used instead of the paper's minimax ``E[log(1 - D(x_fake))]`` (the usual
  GAN practice: strong gradients while ``D`` wins).

  Args:
    fake_logits: ``[B]`` discriminator logits of generated images.

  Returns:
    scalar float32.
  """
  if fake_logits.ndim != 1:
    raise ValueError(f"logits must be [B]; got {fake_logits.shape}.")
  return jnp.mean(jax.nn.softplus(-fake_logits.astype(jnp.float32)))
