"""Few-label fine-tuning: class-balanced subsets, and whole-network training
that learns a task a frozen random encoder + linear head cannot fit as well."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from ssljax.eval.finetune import balanced_subset, finetune, predict
from ssljax.train.build import build_method


def test_balanced_subset_counts_and_seed():
  labels = np.repeat(np.arange(4), [50, 30, 20, 5])
  idx = balanced_subset(labels, per_class=10, seed=1)
  np.testing.assert_array_equal(np.bincount(labels[idx]), [10, 10, 10, 5])
  assert len(np.unique(idx)) == len(idx)
  np.testing.assert_array_equal(idx, balanced_subset(labels, per_class=10, seed=1))
  assert not np.array_equal(idx, balanced_subset(labels, per_class=10, seed=2))
  idx = balanced_subset(labels, fraction=0.1, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[idx]), [5, 3, 2, 1])
  with pytest.raises(ValueError, match="exactly one"):
    balanced_subset(labels)
  with pytest.raises(ValueError, match="fraction"):
    balanced_subset(labels, fraction=1.5)


def _stripes(n, seed):
  """Class = which horizontal band is bright (flip-invariant, crop-robust)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 4, n)
  x = rng.integers(0, 40, (n, 8, 8, 1))
  for i, c in enumerate(y):
    x[i, 2 * c:2 * c + 2] += 200
  return np.clip(x, 0, 255).astype(np.uint8), y


def test_finetune_trains_the_encoder_and_learns_the_task():
  config = tiny_config()
  method, _ = build_method(config, 64)
  state = method.init(jax.random.key(0), (8, 8, 1))
  x, y = _stripes(256, 0)
  xt, yt = _stripes(200, 1)
  ft = finetune(method, state, x, y, num_classes=4, steps=60, batch_size=32,
                lr=0.1, seed=0)
  assert ft["losses"][-10:].mean() < 0.5 * ft["losses"][:5].mean()
  acc = np.mean(predict(method, ft, xt, batch_size=64) == yt)
  assert acc > 0.9, acc
  # the encoder itself moved (not only the head), and BN statistics updated
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                       ft["params"], state.params))
  assert max(moved) > 1e-3
  # lr = 0 leaves everything as it was: a zero head predicts class 0
  ft0 = finetune(method, state, x, y, num_classes=4, steps=3, batch_size=32,
                 lr=0.0, weight_decay=0.0)
  jax.tree.map(np.testing.assert_array_equal, ft0["params"], state.params)
  assert (predict(method, ft0, xt) == 0).all()


def test_image_cpc_fine_tunes_through_its_own_features():
  """Image CPC's encoder takes patches: its ``trainable_features`` hook lets
  the same fine-tuning train it (the loss falls on a learnable toy task)."""
  import os
  from ssljax.eval import finetune as ft
  from ssljax.train.build import load_config_file
  c = load_config_file(os.path.join(os.path.dirname(__file__), "..",
                                    "experiments/configs/cpc_fashion_mnist.py"))
  method, _ = build_method(c, 64, input_shape=(28, 28, 1))
  state = method.init(jax.random.key(0), (28, 28, 1))
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 64).astype(np.int32)
  images = np.where(labels[:, None, None, None] == 1, 200, 30).astype(np.uint8)
  images = np.broadcast_to(images, (64, 28, 28, 1)).copy()
  images[:, :, :14] //= 2                       # some structure
  res = ft.finetune(method, state, images, labels, num_classes=2, steps=30,
                    batch_size=16, lr=0.05, augment=False)
  assert res["losses"][-5:].mean() < 0.5 * res["losses"][:3].mean()
  assert np.mean(ft.predict(method, res, images) == labels) == 1.0
  # the encoder was trained, not only the head
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       res["params"], state.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_finetune_with_adamw():
  """optimizer="adamw": AdamW's first step moves every parameter with a
  non-negligible gradient by the learning rate (|m / sqrt(v)| = 1 at step 1)
  where SGD moves it by lr x gradient; unknown names are refused; the
  default SGD recipe keeps the from-scratch cache keys of before."""
  from ssljax.eval import standard
  config = tiny_config()
  method, _ = build_method(config, 64)
  state = method.init(jax.random.key(0), (8, 8, 1))
  x, y = _stripes(256, 0)
  lr = 1e-3
  one = finetune(method, state, x, y, num_classes=4, steps=1, batch_size=32,
                 lr=lr, weight_decay=0.0, optimizer="adamw", augment=False)
  # the head starts at zero, so at step 1 only the head has a gradient
  delta = np.abs(np.asarray(one["head"]["w"]))
  assert delta.max() <= lr * (1 + 1e-5), delta.max()
  assert np.mean(delta > 0.5 * lr) > 0.5, delta   # most moved by about lr
  sgd = finetune(method, state, x, y, num_classes=4, steps=1, batch_size=32,
                 lr=lr, weight_decay=0.0, augment=False)
  assert np.mean(np.abs(np.asarray(sgd["head"]["w"])) > 0.5 * lr) < 0.5
  with pytest.raises(ValueError, match="'sgd', 'adamw'.*'adam'"):
    finetune(method, state, x, y, num_classes=4, steps=1, optimizer="adam")
  assert "optimizer" not in standard._recipe_key(
      standard.FinetuneRecipe(steps=10, lr=0.1))
  assert standard._recipe_key(standard.FinetuneRecipe(
      steps=10, lr=0.1, optimizer="adamw"))["optimizer"] == "adamw"


def test_protocol_options_take_the_config_fine_tuning_settings():
  """eval.finetune_optimizer / finetune_lr / scratch_lr replace the
  protocol's recipes (steps and the rest kept); absent, the protocol's own;
  bad values are refused with the key named."""
  import ml_collections
  import os
  from ssljax.config import ConfigError
  from ssljax.eval import standard
  from ssljax.train.build import load_config_file
  base = standard.ProtocolOptions()
  config = ml_collections.ConfigDict({"eval": {}})
  assert standard.protocol_options(config) == base
  config.eval.finetune_optimizer = "adamw"
  config.eval.finetune_lr = 1e-3
  opts = standard.protocol_options(config)
  for (f, r), (f0, r0) in zip(opts.finetune, base.finetune):
    assert (f, r.optimizer, r.lr, r.steps) == (f0, "adamw", 1e-3, r0.steps)
  for (f, r), (f0, r0) in zip(opts.scratch, base.scratch):
    assert (f, r.optimizer, r.lr, r.steps) == (f0, "adamw", r0.lr, r0.steps)
  config.eval.scratch_lr = 3e-3
  assert {r.lr for _, r in standard.protocol_options(config).scratch} == {3e-3}
  config.eval.finetune_optimizer = "adam"
  with pytest.raises(ConfigError, match="finetune_optimizer") as err:
    standard.protocol_options(config)
  assert len(err.value.problems) == 1, err.value
  # a whole shipped run config (keys evaluation does not read) is accepted
  shipped = load_config_file(os.path.join(
      os.path.dirname(__file__), "..", "experiments", "configs",
      "byol_fashion_mnist.py"))
  assert standard.protocol_options(shipped) == base
