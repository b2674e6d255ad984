"""Offline linear evaluation *with augmentation*: the protocol of the papers.

The cached-feature probe (:mod:`ssljax.eval.linear`) fits a linear layer once
on features of the un-augmented images. The papers' protocol instead trains
the linear layer on a frozen encoder fed freshly augmented images every step
(random resized crop + horizontal flip) and tests on the plain images:

- **SimCLR** (Chen et al. 2020, appendix B.5): SGD with Nesterov momentum
  0.9, lr ``0.1 x B / 256`` (batch 4096), cosine decay without warm-up, no
  weight decay, 90 epochs.
- **MoCo** (He et al. 2020, section 4.1; the official code's
  ``main_lincls.py`` defaults): SGD momentum 0.9, lr 30, weight decay 0,
  batch 256, 100 epochs, lr x 0.1 at epochs 60 and 80.

Both augment with Inception-style crops (area 0.08-1) and flips; the crop
range is an option (``crop_area``), since 8% of a 28x28 garment is a few
pixels. :func:`augmented_linear_probe` runs a preset with any field
overridden (e.g. ``epochs=10`` on a CPU). Each epoch is one jitted scan over
the dataset placed on the devices once; the encoder is in inference mode
(BatchNorm running statistics) under ``stop_gradient``, so the encoder is
untouched, only ``W, b`` train.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import (batch_apply, random_flip_left_right,
                            random_resized_crop, to_float)


@dataclasses.dataclass(frozen=True)
class ProbePreset:
  """An augmented linear-probe recipe (see the module docstring)."""
  epochs: int
  batch_size: int
  base_lr: float                 # lr = base_lr x batch_size / 256 when scaled
  lr_scaling: str                # "linear" | "none"
  momentum: float
  nesterov: bool
  weight_decay: float
  schedule: str                  # "cosine" | "step"
  decay_epochs: Sequence[int] = ()
  crop_area: Sequence[float] = (0.08, 1.0)
  flip: bool = True

  def lr(self) -> float:
    if self.lr_scaling == "linear":
      return self.base_lr * self.batch_size / 256
    if self.lr_scaling == "none":
      return self.base_lr
    raise ValueError(f"lr_scaling must be 'linear' or 'none'; got "
                     f"{self.lr_scaling!r}.")


PRESETS = {
    "simclr": ProbePreset(epochs=90, batch_size=4096, base_lr=0.1,
                          lr_scaling="linear", momentum=0.9, nesterov=True,
                          weight_decay=0.0, schedule="cosine"),
    "moco": ProbePreset(epochs=100, batch_size=256, base_lr=30.0,
                        lr_scaling="none", momentum=0.9, nesterov=False,
                        weight_decay=0.0, schedule="step",
                        decay_epochs=(60, 80)),
}


def get_preset(preset: str | ProbePreset = "simclr", **overrides) -> ProbePreset:
  """A preset by name (``"simclr"``, ``"moco"``) with fields overridden;
  ``epochs`` overrides also scale a step schedule's ``decay_epochs``."""
  if isinstance(preset, str):
    if preset not in PRESETS:
      raise ValueError(f"unknown probe preset {preset!r}; choose from "
                       f"{sorted(PRESETS)} or pass a ProbePreset.")
    preset = PRESETS[preset]
  unknown = set(overrides) - {f.name for f in dataclasses.fields(ProbePreset)}
  if unknown:
    raise ValueError(f"unknown probe settings {sorted(unknown)}; the fields "
                     f"are {[f.name for f in dataclasses.fields(ProbePreset)]}.")
  if ("epochs" in overrides and "decay_epochs" not in overrides
      and preset.decay_epochs):
    scale = overrides["epochs"] / preset.epochs
    overrides["decay_epochs"] = tuple(
        max(1, int(round(e * scale))) for e in preset.decay_epochs)
  return dataclasses.replace(preset, **overrides)


def _schedule(p: ProbePreset, steps_per_epoch: int):
  total = p.epochs * steps_per_epoch
  if p.schedule == "cosine":
    return optax.cosine_decay_schedule(p.lr(), total)
  if p.schedule == "step":
    return optax.piecewise_constant_schedule(
        p.lr(), {int(e * steps_per_epoch): 0.1 for e in p.decay_epochs})
  raise ValueError(f"schedule must be 'cosine' or 'step'; got {p.schedule!r}.")


def augmented_linear_probe(encode, variables, train_images, train_labels,
                           test_images, test_labels, *, num_classes: int,
                           preset: str | ProbePreset = "simclr", seed: int = 0,
                           eval_batch_size: int = 1000, progress=None,
                           **overrides) -> dict[str, Any]:
  """Train ``W, b`` on ``encode(variables, augmented images)`` (frozen) and
  return ``{"accuracy": top-1 on the plain test images, "preset": the
  settings used, "losses": mean training loss per epoch, "classifier": {"w",
  "b"}}``.

  Args:
    encode: ``encode(variables, images) -> [B, F]`` for uint8 or [0, 1]
      float images, e.g. a method's ``encode`` (BatchNorm in inference mode).
    variables: its frozen variables (e.g. ``{"params", "batch_stats"}``).
    train_images, test_images: uint8 ``[N, H, W, C]``.
    preset: ``"simclr"``, ``"moco"`` or a :class:`ProbePreset`;
      ``**overrides`` replace its fields (``epochs``, ``batch_size``, ...).
    progress: ``callable(epoch, mean_loss)`` called after each epoch.
  """
  p = get_preset(preset, **overrides)
  train_images = np.asarray(train_images)
  test_images = np.asarray(test_images)
  train_labels = np.asarray(train_labels, np.int32)
  if train_images.ndim != 4 or len(train_images) != len(train_labels):
    raise ValueError(f"train images {train_images.shape} must be [N, H, W, C] "
                     f"with one label each; got {train_labels.shape} labels.")
  n = len(train_images)
  batch = min(p.batch_size, n)
  steps_per_epoch = n // batch
  tx = optax.chain(
      optax.add_decayed_weights(p.weight_decay),
      optax.sgd(_schedule(p, steps_per_epoch), momentum=p.momentum or None,
                nesterov=p.nesterov))
  variables = jax.lax.stop_gradient(variables)

  def features(x):
    return jax.lax.stop_gradient(encode(variables, x)).astype(jnp.float32)

  width = jax.eval_shape(features, train_images[:1]).shape[-1]
  head = {"w": jnp.zeros((width, num_classes), jnp.float32),
          "b": jnp.zeros((num_classes,), jnp.float32)}

  def view(k, image):
    k1, k2 = jax.random.split(k)
    image = random_resized_crop(k1, image, area_range=tuple(p.crop_area))
    return random_flip_left_right(k2, image) if p.flip else image

  def loss_fn(h, x, y):
    logits = x @ h["w"] + h["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  images_dev = jnp.asarray(train_images)
  labels_dev = jnp.asarray(train_labels)

  @jax.jit
  def epoch(carry, key):
    k_perm, k_aug = jax.random.split(key)
    order = jax.random.permutation(k_perm, n)[: steps_per_epoch * batch]

    def step(carry, inp):
      h, s = carry
      idx, k = inp
      x = batch_apply(view, k, to_float(images_dev[idx]))
      loss, g = jax.value_and_grad(loss_fn)(h, features(x), labels_dev[idx])
      u, s = tx.update(g, s, h)
      return (optax.apply_updates(h, u), s), loss

    carry, losses = jax.lax.scan(
        step, carry, (order.reshape(steps_per_epoch, batch),
                      jax.random.split(k_aug, steps_per_epoch)))
    return carry, losses.mean()

  carry = (head, tx.init(head))
  epoch_losses = []
  for e, key in enumerate(jax.random.split(jax.random.key(seed), p.epochs)):
    carry, loss = epoch(carry, key)
    epoch_losses.append(float(loss))
    if progress is not None:
      progress(e + 1, epoch_losses[-1])
  head = carry[0]

  @jax.jit
  def predict(x):
    return jnp.argmax(features(x) @ head["w"] + head["b"], -1)

  preds = np.concatenate([
      np.asarray(predict(test_images[i:i + eval_batch_size]))
      for i in range(0, len(test_images), eval_batch_size)])
  return {"accuracy": float(np.mean(preds == np.asarray(test_labels))),
          "preset": {**dataclasses.asdict(p), "lr": p.lr()},
          "losses": epoch_losses,
          "classifier": {"w": np.asarray(head["w"]), "b": np.asarray(head["b"])}}
