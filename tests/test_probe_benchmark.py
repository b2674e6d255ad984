"""benchmarks/probe_vs_sklearn.py --quick: runs, and its contestants solve the
same problem (the jitted L-BFGS probe lands on scikit-learn's optimum)."""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_probe_benchmark(tmp_path):
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  try:
    import probe_vs_sklearn  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  out = tmp_path / "probe.json"
  probe_vs_sklearn.main(["--quick", "--out", str(out)])
  result = json.loads(out.read_text())
  rows = {r["name"]: r for r in result["results"]}
  assert set(rows) == {"sklearn_lbfgs", "ssljax_lbfgs", "ssljax_sgd_5"}
  assert result["train_rows"] == 3000 and result["width"] == 784
  lbfgs = rows["ssljax_lbfgs"]
  assert abs(lbfgs["accuracy_gap_points"]) <= 0.5, lbfgs
  assert lbfgs["weight_rel_diff_vs_sklearn"] < 0.1, lbfgs
  for row in rows.values():
    assert 0.5 < row["test_accuracy"] <= 1.0 and row["warm_fit_s"] > 0
