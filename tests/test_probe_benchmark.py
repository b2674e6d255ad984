"""benchmarks/probe_vs_sklearn.py --quick: runs, and its contestants solve the
same problem (the jitted L-BFGS probe lands on scikit-learn's optimum)."""

import json

import probe_vs_sklearn  # benchmarks/ is on pytest's pythonpath (setup.cfg)


def test_quick_probe_benchmark(tmp_path):
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
