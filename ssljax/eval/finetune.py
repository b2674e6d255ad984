"""Few labels: fine-tune the whole encoder with a linear head on a
class-balanced labelled subset, from a pretrained state or from scratch.

The semi-supervised protocol of SimCLR (Chen et al. 2020, section 6 and
appendix B.5) and of the label-efficiency curves of CPC v2 (Henaff et al.
2020): take 1% / 10% of the labels, class-balanced and seeded, fine-tune
encoder + linear classifier with a light augmentation (flip and a mild random
resized crop), and compare with the same network trained from random
initialization on the same labels and with a linear probe on frozen features.

Training is a Python loop over one jitted, state-donating step (not a
``lax.scan``: XLA:CPU ran this step 20x slower inside a while loop, see
``benchmarks/finetune_step.py``); every step draws a batch (with replacement)
from the labelled subset, so small subsets (10 labels per class) and the full
set cost the same. BatchNorm runs in training mode and
its statistics are updated, as in supervised training.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import (batch_apply, random_flip_left_right,
                            random_resized_crop, to_float)
from ssljax.augment import normalize_images
from ssljax.methods.base import encoder_variables


def balanced_subset(labels, *, per_class: int | None = None,
                    fraction: float | None = None, seed: int = 0) -> np.ndarray:
  """Sorted indices of a class-balanced, seeded subset of ``labels``.

  Exactly one of ``per_class`` (that many examples of every class, or all of
  a smaller class) and ``fraction`` (``round(fraction * count_c)`` of class
  ``c``, at least 1) is given.
  """
  labels = np.asarray(labels)
  if (per_class is None) == (fraction is None):
    raise ValueError("give exactly one of per_class= and fraction=.")
  if fraction is not None and not 0 < fraction <= 1:
    raise ValueError(f"fraction must be in (0, 1]; got {fraction}.")
  if per_class is not None and per_class < 1:
    raise ValueError(f"per_class must be >= 1; got {per_class}.")
  rng = np.random.default_rng(seed)
  out = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    n = per_class if per_class is not None else max(1, round(fraction * len(idx)))
    out.append(rng.permutation(idx)[:min(n, len(idx))])
  return np.sort(np.concatenate(out))


def _model_parts(method):
  """``(module, preprocess(float images in [0,1]) -> network input)``."""
  model = getattr(method, "model", None)
  if model is None or not hasattr(type(model), "encode"):
    raise ValueError(f"{type(method).__name__} has no image model with "
                     "encode(x, train): fine-tuning supports SimCLR, MoCo and "
                     "the pretext methods.")
  if hasattr(method, "preprocess"):
    return model, method.preprocess
  if hasattr(method, "mean"):
    return model, lambda x: normalize_images(x, method.mean, method.std)
  raise ValueError(f"{type(method).__name__} does not say how to normalize "
                   "images (no mean/std or preprocess).")


def feature_fn(method):
  """``f(variables, images_01, train) -> (features [B, F], batch_stats)``: the
  trainable encoder of ``method`` on float images in [0, 1] (BatchNorm
  statistics updated when ``train``). A method may define it as
  ``trainable_features`` (image CPC: patches, then the pooled grid); the
  default is its model's ``encode(x, train)`` on its normalized input."""
  own = getattr(method, "trainable_features", None)
  if own is not None:
    return own
  model, preprocess = _model_parts(method)

  def f(variables, x, train):
    if not train:
      return model.apply(variables, preprocess(x), train=False,
                         method=type(model).encode), variables["batch_stats"]
    feats, upd = model.apply(variables, preprocess(x), train=True,
                             method=type(model).encode, mutable=["batch_stats"])
    return feats, upd["batch_stats"]
  return f


_COMPILED: dict[tuple, tuple] = {}


#: Fine-tuning optimizers: ``"sgd"`` (SGD + Nesterov momentum 0.9, L2 weight
#: decay added to the gradient: the protocol's default, chosen for the
#: BatchNorm ResNets) and ``"adamw"`` (AdamW, decoupled weight decay: for
#: networks trained with Adam, such as image CPC's LayerNorm patch encoder).
OPTIMIZERS = ("sgd", "adamw")


def _optimizer(name: str, lr: float, steps: int, weight_decay: float):
  schedule = optax.cosine_decay_schedule(lr, steps)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=0.9, nesterov=True))
  if name == "adamw":
    return optax.adamw(schedule, weight_decay=weight_decay)
  raise ValueError(f"fine-tuning optimizer must be one of {OPTIMIZERS}; got "
                   f"{name!r}.")


def _compiled(method, *, num_classes, steps, batch_size, lr, weight_decay,
              augment, crop_area, optimizer="sgd"):
  """The jitted fine-tuning run and predictor of ``method`` for these
  settings, built once: the labelled subset is an index pool argument with
  its length traced, so every subset size shares one compilation."""
  key = (id(method), num_classes, steps, batch_size, lr, weight_decay, augment,
         tuple(crop_area), optimizer)
  if key in _COMPILED and _COMPILED[key][0] is method:
    return _COMPILED[key][1:]
  features = feature_fn(method)
  tx = _optimizer(optimizer, lr, steps, weight_decay)

  def view(k, image):
    k1, k2 = jax.random.split(k)
    image = random_resized_crop(k1, image, area_range=crop_area)
    return random_flip_left_right(k2, image)

  def loss_fn(tr, batch_stats, x, y):
    feats, batch_stats = features(
        {"params": tr["encoder"], "batch_stats": batch_stats}, x, True)
    logits = feats.astype(jnp.float32) @ tr["head"]["w"] + tr["head"]["b"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, batch_stats

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
  def step(tr, batch_stats, opt_state, k, images, labels, pool, n):
    k_idx, k_aug = jax.random.split(k)
    idx = pool[jax.random.randint(k_idx, (batch_size,), 0, n)]
    x = to_float(images[idx])
    if augment:
      x = batch_apply(view, k_aug, x)
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        tr, batch_stats, x, labels[idx])
    updates, opt_state = tx.update(grads, opt_state, tr)
    return optax.apply_updates(tr, updates), batch_stats, opt_state, loss

  def run(tr, batch_stats, rng, images, labels, pool, n):
    # A Python loop over one jitted step, not a ``lax.scan``: XLA:CPU ran
    # this step 20x slower inside a while loop (benchmarks/finetune_step.py;
    # convolutions in loop bodies, jax-ml/jax#12868).
    # Fresh copies: the step donates them, the caller's state stays intact.
    tr, batch_stats = jax.tree.map(jnp.array, (tr, batch_stats))
    opt_state = jax.jit(tx.init)(tr)
    images, labels, pool = jax.device_put((images, labels, pool))
    losses = []
    for k in jax.random.split(rng, steps):
      tr, batch_stats, opt_state, loss = step(tr, batch_stats, opt_state, k,
                                              images, labels, pool, n)
      losses.append(loss)
    return tr, batch_stats, jnp.stack(losses)

  @jax.jit
  def predict_fn(p, x):
    feats, _ = features({"params": p["params"], "batch_stats": p["batch_stats"]},
                        to_float(x), False)
    return jnp.argmax(feats.astype(jnp.float32) @ p["head"]["w"]
                      + p["head"]["b"], -1)

  _COMPILED[key] = (method, run, predict_fn, features)
  return run, predict_fn, features


def finetune(method, variables_or_state, images, labels, *, num_classes: int,
             steps: int = 500, batch_size: int = 128, lr: float = 0.05,
             weight_decay: float = 5e-4, augment: bool = True,
             crop_area=(0.8, 1.0), seed: int = 0, subset=None,
             optimizer: str = "sgd") -> dict[str, Any]:
  """Fine-tune encoder + a zero-initialized linear head on ``(images [N,H,W,C]
  uint8, labels [N])`` (or only their rows ``subset``, an index array);
  returns ``{"params", "batch_stats", "head", "losses"}``.

  ``optimizer`` (:data:`OPTIMIZERS`): ``"sgd"``, SGD with Nesterov momentum
  0.9 and L2 weight decay ``weight_decay`` on every parameter, or
  ``"adamw"``, AdamW with decoupled weight decay ``weight_decay``; both with
  cosine decay from ``lr`` over ``steps``. Passing the full dataset with
  ``subset=`` reuses one compilation for every subset size.
  """
  images = np.asarray(images)
  labels = np.asarray(labels, np.int32)
  if images.ndim != 4 or len(images) != len(labels):
    raise ValueError(f"images {images.shape} must be [N, H, W, C] with one "
                     f"label each; got {labels.shape} labels.")
  pool = np.arange(len(images)) if subset is None else np.asarray(subset)
  if pool.ndim != 1 or len(pool) == 0 or pool.min() < 0 or pool.max() >= len(images):
    raise ValueError(f"subset must be a non-empty index array into the "
                     f"{len(images)} images.")
  n = len(pool)
  pool = np.resize(pool, len(images)).astype(np.int32)    # fixed shape
  run, _, features = _compiled(
      method, num_classes=num_classes, steps=steps, batch_size=batch_size,
      lr=lr, weight_decay=weight_decay, augment=augment, crop_area=crop_area,
      optimizer=optimizer)
  v = encoder_variables(variables_or_state)
  v = {"params": v["params"], "batch_stats": v.get("batch_stats", {})}
  feat_dim = jax.eval_shape(lambda x: features(v, to_float(x), False)[0],
                            images[:1]).shape[-1]
  trainable = {"encoder": v["params"],
               "head": {"w": jnp.zeros((feat_dim, num_classes)),
                        "b": jnp.zeros((num_classes,))}}
  tr, batch_stats, losses = run(trainable, v["batch_stats"],
                                jax.random.key(seed), images, labels, pool,
                                jnp.int32(n))
  return {"params": tr["encoder"], "batch_stats": batch_stats,
          "head": tr["head"], "losses": np.asarray(losses),
          "_predict": _compiled(method, num_classes=num_classes, steps=steps,
                                batch_size=batch_size, lr=lr,
                                weight_decay=weight_decay, augment=augment,
                                crop_area=crop_area, optimizer=optimizer)[1]}


def predict(method, finetuned: dict, images, *, batch_size: int = 1000
            ) -> np.ndarray:
  """Class ids ``[N]`` of uint8 ``images`` under a :func:`finetune` result
  (BatchNorm in inference mode)."""
  fn = finetuned.get("_predict")
  if fn is None:
    features = feature_fn(method)
    fn = jax.jit(lambda p, x: jnp.argmax(features(
        {"params": p["params"], "batch_stats": p["batch_stats"]},
        to_float(x), False)[0].astype(jnp.float32) @ p["head"]["w"]
        + p["head"]["b"], -1))
  p = {k: finetuned[k] for k in ("params", "batch_stats", "head")}
  return np.concatenate([np.asarray(fn(p, images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def finetune_accuracy(method, variables_or_state, train_images, train_labels,
                      test_images, test_labels, *, num_classes: int,
                      **kwargs) -> float:
  """Top-1 test accuracy (fraction) after :func:`finetune`."""
  ft = finetune(method, variables_or_state, train_images, train_labels,
                num_classes=num_classes, **kwargs)
  test_images = np.asarray(test_images)
  return float(np.mean(predict(method, ft, test_images) == np.asarray(test_labels)))
