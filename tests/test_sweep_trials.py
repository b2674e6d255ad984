"""The Fashion-MNIST sweep's trials (benchmarks/fashion_mnist_sweep.py) name
real config keys and build, so a lent GPU's minutes are not lost on a typo."""

from pathlib import Path

import pytest
from helpers import load_module

from ssljax.train.build import build_method, load_config_file

REPO = Path(__file__).resolve().parents[1]


SWEEP = load_module(REPO / "benchmarks" / "fashion_mnist_sweep.py",
                    "fashion_mnist_sweep")


def _has_key(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if part not in node:
      return False
    node = node[part]
  return True


@pytest.mark.parametrize("name", sorted(SWEEP.TRIALS))
def test_trial_overrides_exist_and_build(name):
  base = load_config_file(str(SWEEP.CONFIG))
  overrides, _ = SWEEP.TRIALS[name]
  for dotted in {**SWEEP.BASE, **(overrides or {})}:
    assert _has_key(base, dotted), f"trial {name}: no config key {dotted!r}"
  config = SWEEP.make_config(overrides)
  if overrides is not None:                  # BASE applies to every trial
    assert config.encoder.conv_impl == "xla"
    for dotted, value in overrides.items():
      node = config
      for part in dotted.split("."):
        node = node[part]
      assert node == value
  method, steps = build_method(config, 60_000)
  assert steps > 0 and method is not None
