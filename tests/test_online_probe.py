"""The online linear probe: its loss against numpy, the labels never reach the
self-supervised update, it learns, and it runs through the shared loop
(checkpoints, resume, config validation)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import struct

from helpers import tiny_config, tiny_dataset
from ssljax.config import ConfigError, ConfigReader
from ssljax.methods import DataSpec, Method
from ssljax.methods.online_probe import OnlineProbe, OnlineProbeState, probe_loss
from ssljax.train.build import build_method
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems, validate_config


def test_probe_loss_matches_numpy_and_skips_unlabelled():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(6, 5)).astype(np.float32)
  probe = {"w": rng.normal(size=(5, 3)).astype(np.float32),
           "b": rng.normal(size=(3,)).astype(np.float32)}
  labels = np.array([0, 2, -1, 1, -1, 2])
  loss, acc = jax.jit(probe_loss)(probe, feats, labels)
  logits = feats.astype(np.float64) @ probe["w"] + probe["b"]
  keep = labels >= 0
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ref = -np.mean(logp[keep, labels[keep]])
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(acc, np.mean(logits[keep].argmax(1) == labels[keep]))


def _config(**overrides):
  """The tiny rotation config: the cheapest step to compile (the wrapper does
  not depend on the method)."""
  config = tiny_config(method="rotation", **overrides)
  del config["temperature"]
  config.head = ml_collections.ConfigDict(dict(hidden_dim=0, num_layers=2))
  config.augment = ml_collections.ConfigDict()
  config.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.5, lr_scaling="linear", weight_decay=5e-4,
      momentum=0.9, warmup_epochs=0.0))
  return config


def _methods():
  config = _config()
  plain, _ = build_method(config, 64)
  config.online_probe = ml_collections.ConfigDict(dict(lr=0.5, num_classes=4))
  wrapped, _ = build_method(config, 64)
  return plain, wrapped


def test_labels_never_reach_the_self_supervised_update():
  plain, wrapped = _methods()
  assert isinstance(wrapped, OnlineProbe) and wrapped.num_classes == 4
  ds = tiny_dataset(n=16)
  key = jax.random.key(0)
  s0 = plain.init(key, ds.image_shape)
  w0 = wrapped.init(key, ds.image_shape)
  assert w0.probe["w"].shape == (8, 4)        # the encoder's width x classes
  batch = {"image": jnp.asarray(ds.images), "label": jnp.asarray(ds.labels)}
  wrapped_step = jax.jit(wrapped.train_step)
  s1, m1 = jax.jit(plain.train_step)(s0, batch["image"], key)
  w1, mw = wrapped_step(w0, batch, key)
  # same SSL state as without the probe, bit for bit
  jax.tree.map(np.testing.assert_array_equal, w1.inner, s1)
  np.testing.assert_array_equal(mw["loss"], m1["loss"])
  # other labels: still the same SSL update, a different probe
  w1b, _ = wrapped_step(w0, {**batch, "label": (batch["label"] + 1) % 4}, key)
  jax.tree.map(np.testing.assert_array_equal, w1b.inner, s1)
  assert not np.array_equal(w1b.probe["w"], w1.probe["w"])
  # the probe loss is the CE of the pre-update encoder's features
  feats = wrapped.encode(w0, batch["image"])
  np.testing.assert_allclose(mw["probe_loss"], np.log(4), rtol=1e-6)  # W = 0
  loss, _ = probe_loss(w0.probe, feats, batch["label"])
  np.testing.assert_allclose(mw["probe_loss"], loss, rtol=1e-6)
  # state views used by the loop, checkpoints and the evaluation protocol
  assert int(w1.step) == 1 and w1.params is w1.inner.params
  w2 = w1.replace(step=jnp.asarray(7))
  assert int(w2.inner.step) == 7 and w2.probe is w1.probe
  with pytest.raises(ValueError, match="batch dict"):
    wrapped.train_step(w0, batch["image"], key)


@struct.dataclass
class _IdentityState:
  step: jax.Array
  params: dict


def test_probe_learns_on_fixed_features():
  """With the SSL update a no-op, the probe alone must fit separable data."""

  class Identity:
    """encode = class-coded pixels; train_step leaves the state unchanged."""

    def init(self, key, shape):
      del key, shape
      return _IdentityState(step=jnp.zeros((), jnp.int32), params={})

    def encode(self, state, images):
      return images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0

    def train_step(self, state, images, key):
      return state.replace(step=state.step + 1), {"loss": jnp.zeros(())}

  ds = tiny_dataset(n=64, num_classes=4)
  probe = OnlineProbe(Identity(), num_classes=4, lr=0.5)
  state = probe.init(jax.random.key(0), ds.image_shape)
  step = jax.jit(probe.train_step)
  batch = {"image": jnp.asarray(ds.images), "label": jnp.asarray(ds.labels)}
  for _ in range(60):
    state, metrics = step(state, batch, jax.random.key(0))
  assert float(metrics["probe_acc"]) == 1.0
  assert float(metrics["probe_loss"]) < 0.3
  np.testing.assert_array_equal(probe.predict(state, batch["image"]), ds.labels)


def test_online_probe_through_the_loop_and_its_checkpoint(tmp_path):
  """One loop run (each run compiles its step: slow on 2 cores); the saved
  OnlineProbeState restores into the template the loop builds on resume."""
  config = _config(num_steps=4, log_every=1, checkpoint_every=2)
  config.online_probe = ml_collections.ConfigDict(dict(lr=0.5, num_classes=4))
  ds = tiny_dataset()
  method, state = pretrain(config, str(tmp_path), dataset=ds, progress=False,
                           stop_at=3)
  assert isinstance(state, OnlineProbeState) and int(state.step) == 3
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2, 3]
  assert all(0.0 <= r["probe_acc"] <= 1.0 and np.isfinite(r["probe_loss"])
             for r in rows)
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  restored = ckpt.restore(method.init(jax.random.key(1), ds.image_shape))
  ckpt.close()
  assert isinstance(restored, OnlineProbeState) and int(restored.step) == 3
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  assert method.encode(restored, ds.images[:3]).shape == (3, 8)


def test_online_probe_config_is_validated():
  config = _config()
  config.online_probe = ml_collections.ConfigDict(
      dict(lr=-1.0, momentum=1.5, lrr=0.1, num_classes=4))
  with pytest.raises(ConfigError) as err:
    validate_config(config, num_examples=64, check_shapes=False)
  problems = {p.key: p.message for p in err.value.problems}
  assert set(problems) == {"online_probe.lr", "online_probe.momentum",
                           "online_probe.lrr"}
  assert "did you mean 'online_probe.lr'" in problems["online_probe.lrr"]
  assert "--config.online_probe.momentum" in problems["online_probe.momentum"]


def test_the_probe_is_a_method_wrapper():
  plain, wrapped = _methods()
  assert isinstance(wrapped, Method) and wrapped.takes_labels
  assert not plain.takes_labels
  assert wrapped.name == plain.name == "rotation"
  assert wrapped.model is wrapped.method.model    # the wrapped method's
  config = ConfigReader({"online_probe": {"lr": 0.2}})
  spec = DataSpec(name="tiny", num_examples=64, input_shape=(8, 8, 1),
                  num_classes=4)
  probe = OnlineProbe.from_config(config, method=plain, data=spec)
  assert (probe.lr, probe.num_classes) == (0.2, 4)
  assert config.all_problems() == []
  # A dataset without known classes needs online_probe.num_classes.
  config = _config()
  config.online_probe = ml_collections.ConfigDict(dict(lr=0.1))
  [problem] = config_problems(config, num_examples=64, check_shapes=False)
  assert problem.key == "online_probe.num_classes"
