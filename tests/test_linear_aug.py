"""The offline linear probe with augmentation: presets, identity augmentation
against scikit-learn's logistic regression, separable features, and the
augmentation reaching the features."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from helpers import tiny_dataset
from ssljax.eval.linear_aug import PRESETS, augmented_linear_probe, get_preset


def _flat(variables, x):
  x = x.astype(jnp.float32)
  x = jnp.where(x.max() > 1.0, x / 255.0, x)      # uint8 or [0, 1] floats
  return x.reshape(x.shape[0], -1) * variables["scale"]


def test_presets_follow_the_papers():
  simclr = get_preset("simclr")
  assert (simclr.epochs, simclr.batch_size, simclr.nesterov) == (90, 4096, True)
  assert simclr.lr() == pytest.approx(1.6)          # 0.1 x 4096 / 256
  moco = get_preset("moco", epochs=10)
  assert moco.lr() == 30.0 and moco.decay_epochs == (6, 8)   # 60, 80 of 100
  assert PRESETS["moco"].decay_epochs == (60, 80)
  with pytest.raises(ValueError, match="unknown probe settings"):
    get_preset("simclr", epoch=3)
  with pytest.raises(ValueError, match="unknown probe preset"):
    get_preset("byol")


def test_identity_augmentation_matches_logistic_regression():
  train, test = tiny_dataset(n=256, seed=1), tiny_dataset(n=128, seed=2)
  out = augmented_linear_probe(
      _flat, {"scale": 1.0}, train.images, train.labels, test.images,
      test.labels, num_classes=4, preset="simclr", epochs=30, batch_size=64,
      base_lr=0.5, lr_scaling="none", crop_area=(1.0, 1.0), flip=False)
  x = train.images.reshape(len(train.images), -1) / 255.0
  xt = test.images.reshape(len(test.images), -1) / 255.0
  ref = LogisticRegression(max_iter=5000).fit(x, train.labels).score(xt, test.labels)
  assert ref > 0.6
  assert abs(out["accuracy"] - ref) <= 0.05
  assert out["losses"][-1] < out["losses"][0]
  assert out["classifier"]["w"].shape == (64, 4)
  assert out["preset"]["lr"] == 0.5


def test_separable_features_give_full_accuracy_and_flips_reach_the_encoder():
  # one bright column whose position is the class: separable, but a flip
  # moves the column, so flips change the training features.
  n, side = 64, 8
  labels = np.arange(n, dtype=np.int32) % 4
  images = np.zeros((n, side, side, 1), np.uint8)
  images[np.arange(n), :, labels, 0] = 255
  kw = dict(num_classes=4, preset="moco", epochs=8, batch_size=16,
            base_lr=1.0, crop_area=(1.0, 1.0))
  plain = augmented_linear_probe(_flat, {"scale": 1.0}, images, labels,
                                 images, labels, flip=False, **kw)
  assert plain["accuracy"] == 1.0
  flipped = augmented_linear_probe(_flat, {"scale": 1.0}, images, labels,
                                   images, labels, flip=True, **kw)
  assert not np.allclose(flipped["losses"], plain["losses"])
  with pytest.raises(ValueError, match="one label each"):
    augmented_linear_probe(_flat, {"scale": 1.0}, images, labels[:3], images,
                           labels, num_classes=4)
