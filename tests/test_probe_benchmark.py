"""benchmarks/probe_vs_sklearn.py --dry_run: every code path on tiny synthetic
features (choices on validation, first fits, two interleaved rounds, the
harness record), and its same-solver contestants solving the same problem."""

import importlib.util
import json

import pytest

if importlib.util.find_spec("sklearn") is None:
  pytest.skip("scikit-learn is not installed (it comes with the eval / test "
              "extras: pip install -e '.[test]'); the benchmark compares "
              "against it", allow_module_level=True)

import probe_vs_sklearn  # noqa: E402  (benchmarks/ is on pytest's pythonpath)

SIDES = {"ssljax_lbfgs", "sklearn_lbfgs", "ssljax_sgd", "sklearn_sgd"}


def test_dry_run(tmp_path):
  out = tmp_path / "probe.json"
  probe_vs_sklearn.main(["--dry_run", "--out", str(out)])
  rec = json.loads(out.read_text())
  assert rec["benchmark"] == "probe_vs_sklearn" and rec["dry_run"]
  assert rec["git"].keys() == {"commit", "dirty"} and rec["command"]
  assert rec["rounds"]["rounds"] == 2
  assert set(rec["rounds"]["seconds_per_round"]) == SIDES
  assert set(rec["summary"]) == {"ssljax_lbfgs_vs_sklearn_lbfgs",
                                 "ssljax_sgd_vs_sklearn_sgd",
                                 "ssljax_sgd_vs_sklearn_lbfgs"}
  assert all(s["few_rounds"] for s in rec["summary"].values())
  # Choices on validation only; the chosen values are from their grids.
  ch = rec["choices"]
  assert ch["lbfgs"]["chosen_l2"] in ch["lbfgs"]["grid"]
  assert ch["sgd"]["chosen_epochs"] in ch["sgd"]["epochs_grid"]
  assert ch["sgd"]["chosen_weight_decay"] in ch["sgd"]["weight_decay_grid"]
  assert ch["sklearn_sgd"]["chosen_schedule"] in ("optimal", "cosine")
  c = rec["contestants"]
  assert set(c) == SIDES
  # Same solver, same rule: both L-BFGS stop by max|grad| < tol and land on
  # the same optimum; their iterations are reported.
  assert c["ssljax_lbfgs"]["grad_norm"] == "inf"
  assert c["sklearn_lbfgs"]["tol"] == c["ssljax_lbfgs"]["tol"]
  assert c["sklearn_lbfgs"]["iterations"] > 0 < c["ssljax_lbfgs"]["iterations"]
  opt = rec["same_optimum"]
  assert opt["weight_rel_diff"] < 0.05
  assert abs(opt["objective_sklearn"] - opt["objective_ssljax"]) < 1e-3
  # The SGD pair: the same epochs and L2.
  assert c["sklearn_sgd"]["epochs"] == c["ssljax_sgd"]["epochs"]
  assert c["sklearn_sgd"]["alpha"] == c["ssljax_sgd"]["weight_decay"]
  for row in c.values():
    assert 0.5 < row["test_accuracy"] <= 1.0 and row["warm_median_s"] > 0
  for name in ("ssljax_lbfgs", "ssljax_sgd"):
    assert c[name]["first_fit_s"] > 0 and c[name]["compile_s"] is not None


def test_cosine_factor_decays_to_zero():
  f = [probe_vs_sklearn.cosine_factor(e, 4) for e in range(4)]
  assert f == sorted(f, reverse=True) and 0 < f[-1] < f[0] < 1
