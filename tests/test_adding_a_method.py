"""Adding a method is one module plus one config (docs/adding_a_method.md).

The worked example ``docs/examples/flip_method.py`` (upside-down prediction)
and its config ``docs/examples/flip_config.py`` live outside ``ssljax``; this
test registers, validates, trains, resumes and evaluates the method without
any other file knowing about it.
"""

import os

import jax
import numpy as np
import pytest

from ssljax.config import ConfigError
from ssljax.eval.knn import knn_accuracy
from ssljax.methods import METHODS, get_method
from ssljax.run import restore
from ssljax.train.build import load_config_file
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems, validate_config

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "docs", "examples")


@pytest.fixture(name="config")
def _config(monkeypatch):
  monkeypatch.syspath_prepend(EXAMPLES)       # the config imports its module
  c = load_config_file(os.path.join(EXAMPLES, "flip_config.py"))
  c.num_steps = 8
  c.batch_size = 32
  c.checkpoint_every = 4
  c.log_every = 2
  return c


def test_registered_by_its_module_alone(config):
  cls = get_method("flip")
  assert METHODS["flip"] is cls and cls.name == "flip"
  assert config.method == "flip"


def test_validated_from_what_its_code_reads(config):
  assert config_problems(config, device_count=1) == []
  config.flip.p = 1.5
  config.flip.pp = 0.5
  with pytest.raises(ConfigError) as info:
    validate_config(config, device_count=1)
  assert set(info.value.keys) == {"flip.p", "flip.pp"}
  assert "(0, 1)" in str(info.value) and "did you mean 'flip.p'" in str(
      info.value)


def test_trained_resumed_and_evaluated(config, tmp_path):
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  method, state = pretrain(config, whole, progress=False)
  assert int(state.step) == 8
  pretrain(config, parts, stop_at=4, progress=False)
  _, resumed = pretrain(config, parts, resume=True, progress=False)
  for a, b in zip(jax.tree.leaves(state.params),
                  jax.tree.leaves(resumed.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with restore(whole) as run:
    assert run.step == 8
    train_x, train_y = run.train.images[:2000], run.train.labels[:2000]
    test_x, test_y = run.test.images[:500], run.test.labels[:500]
    feats = run.encode(np.concatenate([train_x, test_x]))
  assert feats.shape == (2500, method.model.encoder.widths[-1])
  acc = knn_accuracy(feats[:2000], train_y, feats[2000:], test_y,
                     num_classes=10, k=20)
  assert acc > 0.3      # chance is 0.1; 8 steps of a tiny encoder
