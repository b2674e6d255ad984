"""Tiny configs and datasets shared by the tests (fast on 2 CPU cores)."""

import importlib.util

import ml_collections
import numpy as np

from ssljax.data import ArrayDataset


def tiny_dataset(n=64, side=8, channels=1, seed=0, num_classes=4):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  # class-dependent blobs so features carry some signal
  base = rng.integers(0, 60, (n, side, side, channels))
  base[np.arange(n), labels % side, :, :] += 150
  return ArrayDataset(images=np.clip(base, 0, 255).astype(np.uint8),
                      labels=labels, num_classes=num_classes, name="tiny")


def tiny_config(**overrides):
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.seed = 0
  c.dataset = "tiny"
  c.data_dir = ""
  c.data_source = "auto"
  c.input_mean = (0.3,)
  c.input_std = (0.3,)
  c.batch_size = 16
  c.num_epochs = 1.0
  c.num_steps = 6
  c.temperature = 0.5
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(4, 8), stage_sizes=(1, 1),
      first_stage_stride=2))
  c.head = ml_collections.ConfigDict(dict(out_dim=8, hidden_dim=0, num_layers=2))
  c.augment = ml_collections.ConfigDict(dict(
      area_range=(0.3, 1.0), flip=True, strength=0.5, jitter_p=0.8,
      grayscale_p=0.0, blur_p=0.0))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_lr=1.0, lr_scaling="linear", weight_decay=1e-6,
      momentum=0.9, trust_coefficient=1e-3, warmup_epochs=0.5))
  c.log_every = 2
  c.checkpoint_every = 3
  c.keep_checkpoints = 5
  c.eval = ml_collections.ConfigDict(dict(
      knn_k=5, knn_t=0.1, linear_epochs=3, linear_lr=0.1,
      linear_weight_decay=1e-4, linear_batch_size=16, feature_batch_size=16))
  for k, v in overrides.items():
    c[k] = v
  return c


def reliability_config(**overrides):
  """``tiny_config`` as a 12-step run: log every 2 steps, checkpoint every 4
  (tests/test_reliability.py; also built in its subprocesses)."""
  c = tiny_config(num_steps=12, log_every=2, checkpoint_every=4,
                  keep_checkpoints=20)
  for k, v in overrides.items():
    c[k] = v
  return c


def load_module(path, name: str):
  """Import the Python file at ``path`` (a benchmark script, a config file)
  as a module called ``name``."""
  spec = importlib.util.spec_from_file_location(name, str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def assert_only_problem(problems, key, *words):
  """``problems`` (a config check's) is one problem, at ``key``, whose
  message holds every word."""
  assert [p.key for p in problems] == [key], problems
  for word in words:
    assert word in problems[0].message, problems[0].message


def require_devices(n: int = 8) -> None:
  """Fail the calling test, never skip it, unless JAX has ``n`` devices.

  tests/conftest.py runs the suite on 8 faked CPU devices, so a smaller count
  means the set-up went wrong (JAX used before conftest, a platform chosen
  through ``SSLJAX_TEST_PLATFORMS``): a skip would let the sharded tests pass
  on paper.
  """
  import jax  # pylint: disable=import-outside-toplevel
  import pytest  # pylint: disable=import-outside-toplevel
  devices = jax.devices()
  if len(devices) < n:
    pytest.fail(
        f"needs {n} devices, have {len(devices)} ({devices[0].platform}): "
        "tests/conftest.py fakes 8 CPU devices (jax_num_cpu_devices=8, "
        "JAX_PLATFORMS=cpu unless SSLJAX_TEST_PLATFORMS says otherwise)",
        pytrace=False)
