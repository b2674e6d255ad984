"""benchmarks/feature_scale.py: the feature statistics, by hand."""

import numpy as np
import pytest

import feature_scale  # benchmarks/ is on pytest's pythonpath


def test_feature_stats_by_hand():
  s = feature_scale.feature_stats(np.array([[3.0, 4.0], [0.0, 0.0]]))
  assert s["num_images"] == 2 and s["dim"] == 2
  assert s["mean_l2_norm"] == pytest.approx(2.5)        # (5 + 0) / 2
  assert s["mean_dim_std"] == pytest.approx(1.75)       # (1.5 + 2) / 2
  assert s["zero_fraction"] == pytest.approx(0.5)
