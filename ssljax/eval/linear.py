"""The linear evaluation protocol: a linear classifier on frozen features.

Features are standardized with the training set's per-dimension mean and
standard deviation; a softmax-regression layer is trained on device with
momentum SGD (Nesterov), a cosine learning-rate schedule and L2 weight decay,
one jitted ``lax.scan`` per epoch over shuffled mini-batches.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _standardize(train, test):
  mean = train.mean(0, keepdims=True)
  std = train.std(0, keepdims=True) + 1e-6
  return (train - mean) / std, (test - mean) / std


def train_linear_classifier(train_x, train_y, *, num_classes: int,
                            epochs: int = 30, batch_size: int = 1024,
                            lr: float = 0.1, weight_decay: float = 1e-4,
                            seed: int = 0):
  """Fit ``W, b`` on ``train_x [N, F]`` (already standardized); returns params."""
  x = jnp.asarray(train_x, jnp.float32)
  y = jnp.asarray(train_y, jnp.int32)
  n, f = x.shape
  batch_size = min(batch_size, n)
  steps_per_epoch = n // batch_size
  schedule = optax.cosine_decay_schedule(lr, epochs * steps_per_epoch)
  tx = optax.chain(optax.add_decayed_weights(weight_decay),
                   optax.sgd(schedule, momentum=0.9, nesterov=True))
  params = {"w": jnp.zeros((f, num_classes)), "b": jnp.zeros((num_classes,))}
  opt_state = tx.init(params)

  def loss_fn(p, xb, yb):
    logits = xb @ p["w"] + p["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def epoch(carry, key):
    perm = jax.random.permutation(key, n)[: steps_per_epoch * batch_size]
    idx = perm.reshape(steps_per_epoch, batch_size)

    def step(carry, ib):
      p, s = carry
      g = jax.grad(loss_fn)(p, x[ib], y[ib])
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), None

    carry, _ = jax.lax.scan(step, carry, idx)
    return carry

  carry = (params, opt_state)
  for key in jax.random.split(jax.random.key(seed), epochs):
    carry = epoch(carry, key)
  return carry[0]


@functools.partial(jax.jit)
def _predict(params, x):
  return jnp.argmax(x @ params["w"] + params["b"], axis=-1)


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, num_classes: int,
                          epochs: int = 30, batch_size: int = 1024,
                          lr: float = 0.1, weight_decay: float = 1e-4,
                          seed: int = 0) -> float:
  """Top-1 test accuracy (a fraction) of a linear classifier on features."""
  train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
  test_x = np.asarray(test_x, np.float32).reshape(len(test_x), -1)
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"train features {train_x.shape} and test features "
                     f"{test_x.shape} differ in width.")
  train_x, test_x = _standardize(train_x, test_x)
  params = train_linear_classifier(train_x, train_y, num_classes=num_classes,
                                   epochs=epochs, batch_size=batch_size, lr=lr,
                                   weight_decay=weight_decay, seed=seed)
  preds = np.asarray(_predict(params, jnp.asarray(test_x)))
  return float(np.mean(preds == np.asarray(test_y)))
