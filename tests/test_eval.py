"""kNN against scikit-learn, the linear probe against logistic regression."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from ssljax.eval import extract_features, knn_accuracy, knn_predict
from ssljax.eval import linear_probe_accuracy


def _blobs(n, f, c, seed, spread=2.0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(c, f)) * spread
  y = rng.integers(0, c, n)
  return (centers[y] + rng.normal(size=(n, f))).astype(np.float32), y


def test_weighted_knn_matches_sklearn():
  x, y = _blobs(500, 8, 5, 0, spread=0.7)
  x, y, xt = x[:400], y[:400], x[400:]
  k, t = 20, 0.1
  # cosine distance d = 1 - s, so exp(-d / t) is exp(s / t) up to a constant.
  ref = KNeighborsClassifier(n_neighbors=k, metric="cosine",
                             weights=lambda d: np.exp(-d / t)).fit(x, y)
  got = knn_predict(x, y, xt, num_classes=5, k=k, t=t, chunk=33)
  np.testing.assert_array_equal(got, ref.predict(xt))


def test_knn_hand_case():
  train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
  labels = np.array([0, 0, 1])
  assert knn_accuracy(train, labels, np.array([[1.0, 0.05], [0.1, 1.0]]),
                      np.array([0, 1]), num_classes=2, k=1) == 1.0


def test_linear_probe_close_to_logistic_regression():
  x, y = _blobs(3000, 20, 10, 2, spread=0.6)
  x, y, xt, yt = x[:2000], y[:2000], x[2000:], y[2000:]
  got = linear_probe_accuracy(x, y, xt, yt, num_classes=10, epochs=20,
                              batch_size=256, lr=0.1, weight_decay=1e-4)
  ref = LogisticRegression(max_iter=2000).fit(x, y).score(xt, yt)
  assert ref > 0.5  # a non-trivial problem
  assert abs(got - ref) < 0.02


def test_extract_features_pads_the_last_batch():
  images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
  fn = lambda v, x: x.reshape(x.shape[0], -1).astype(np.float32) * v
  out = extract_features(fn, 2.0, images, batch_size=8, progress=False)
  np.testing.assert_array_equal(out, images.reshape(10, -1) * 2.0)


def test_bad_feature_shapes():
  with pytest.raises(ValueError, match="features must be"):
    knn_predict(np.ones((4, 3)), np.zeros(4), np.ones((2, 5)), num_classes=2)


def test_lbfgs_probe_equals_sklearn_logistic_regression():
  """Same objective (mean CE + l2/2 ||W||^2 <=> C = 1 / (l2 N)), same optimum:
  the weights agree with scikit-learn's multinomial solution."""
  from ssljax.eval.linear import fit_logistic_regression
  x, y = _blobs(600, 6, 4, 3, spread=0.5)
  l2 = 1e-2
  got = fit_logistic_regression(x, y, num_classes=4, l2=l2, tol=1e-6)
  ref = LogisticRegression(C=1.0 / (l2 * len(x)), tol=1e-10,
                           max_iter=10_000).fit(x, y)
  # sklearn's softmax is over-parameterized in b only up to a shift.
  np.testing.assert_allclose(np.asarray(got["w"]), ref.coef_.T, atol=2e-3)
  b = np.asarray(got["b"])
  np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(),
                             atol=2e-3)


def test_lbfgs_stopping_rule_and_iterations():
  """``grad_norm="inf"`` (scikit-learn's gtol test: the largest gradient
  entry) stops no later than the Euclidean norm at the same tolerance, and
  the iterations come back with ``return_iterations``."""
  import jax
  import jax.numpy as jnp
  from ssljax.eval.linear import _softmax_objective, fit_logistic_regression
  x, y = _blobs(400, 6, 4, 3, spread=0.5)
  kw = dict(num_classes=4, l2=1e-2, tol=1e-3, max_iter=200)
  counts = {}
  for rule in ("l2", "inf"):
    params, count = fit_logistic_regression(x, y, grad_norm=rule,
                                            return_iterations=True, **kw)
    counts[rule] = int(count)
    g = jax.grad(_softmax_objective)(params, jnp.asarray(x, jnp.float32),
                                     jnp.asarray(y), 1e-2)
    leaves = [np.asarray(a) for a in jax.tree.leaves(g)]
    size = (max(np.abs(a).max() for a in leaves) if rule == "inf" else
            np.sqrt(sum((a ** 2).sum() for a in leaves)))
    assert size < 1e-3, (rule, size)
  assert 0 < counts["inf"] <= counts["l2"] < 200
  with pytest.raises(ValueError, match="grad_norm"):
    fit_logistic_regression(x, y, grad_norm="l1", **kw)


def test_lbfgs_probe_selects_l2_on_held_out_train_split():
  from ssljax.eval.linear import linear_probe
  x, y = _blobs(1500, 10, 5, 4, spread=0.5)
  out = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=5,
                     solver="lbfgs", l2_grid=(1e-4, 10.0), val_fraction=0.2)
  # A huge L2 shrinks W to ~0: it must lose on the validation split.
  assert out["validation"][1e-4] > out["validation"][10.0]
  assert out["l2"] == 1e-4
  ref = LogisticRegression(C=1.0 / (1e-4 * 1000), max_iter=5000).fit(
      (x[:1000] - x[:1000].mean(0)) / x[:1000].std(0), y[:1000])
  xt = (x[1000:] - x[:1000].mean(0)) / x[:1000].std(0)
  assert abs(out["accuracy"] - ref.score(xt, y[1000:])) <= 0.01
  with pytest.raises(ValueError, match="solver"):
    linear_probe(x, y, x, y, num_classes=5, solver="adam")
  with pytest.raises(ValueError, match="val_fraction"):
    linear_probe(x, y, x, y, num_classes=5, solver="lbfgs", val_fraction=0.0)


def test_sgd_probe_selects_weight_decay_per_feature_set():
  from ssljax.eval.linear import linear_probe
  x, y = _blobs(1200, 10, 5, 5, spread=0.5)
  out = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=5,
                     solver="sgd", epochs=5, batch_size=100, lr=0.1,
                     weight_decay=(1e-4, 3.0), val_fraction=0.2)
  assert set(out["validation"]) == {1e-4, 3.0}
  assert out["validation"][1e-4] > out["validation"][3.0]
  assert out["weight_decay"] == 1e-4
  fixed = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=5,
                       solver="sgd", epochs=5, batch_size=100, lr=0.1,
                       weight_decay=1e-4)
  assert "validation" not in fixed and fixed["accuracy"] == out["accuracy"]


def test_euclidean_knn_matches_sklearn():
  x, y = _blobs(500, 6, 4, 6, spread=0.8)
  x = x * 0.3
  x, y, xt = x[:400], y[:400], x[400:]
  k, t = 15, 0.5
  ref = KNeighborsClassifier(n_neighbors=k, metric="euclidean",
                             weights=lambda d: np.exp(-d ** 2 / (2 * t))).fit(x, y)
  got = knn_predict(x, y, xt, num_classes=4, k=k, t=t, chunk=37,
                    metric="euclidean")
  np.testing.assert_array_equal(got, ref.predict(xt))
  # huge distances: the weights must not all underflow (a class-0 vote); the
  # nearest neighbour dominates, so the vote is the 1-NN prediction.
  far = knn_predict(x * 1e3, y, xt * 1e3, num_classes=4, k=k, t=t,
                    metric="euclidean")
  nn1 = KNeighborsClassifier(n_neighbors=1).fit(x, y).predict(xt)
  np.testing.assert_array_equal(far, nn1)
  with pytest.raises(ValueError, match="metric"):
    knn_predict(x, y, xt, num_classes=4, metric="manhattan")


def test_sgd_grid_fit_equals_separate_fits():
  """A weight-decay grid trained in one vmapped loop gives each member the
  classifier that a separate fit with that value gives."""
  from ssljax.eval.linear import train_linear_classifier
  x, y = _blobs(600, 8, 4, 7, spread=0.5)
  grid = (1e-4, 1e-2, 0.3)
  kw = dict(num_classes=4, epochs=4, batch_size=64, lr=0.2, seed=3)
  stacked = train_linear_classifier(x, y, weight_decay=grid, **kw)
  assert stacked["w"].shape == (3, 8, 4)
  for i, wd in enumerate(grid):
    one = train_linear_classifier(x, y, weight_decay=wd, **kw)
    np.testing.assert_allclose(stacked["w"][i], one["w"], atol=1e-5)
    np.testing.assert_allclose(stacked["b"][i], one["b"], atol=1e-5)
  # the members really differ (the decay reaches each one)
  assert float(np.abs(stacked["w"][0] - stacked["w"][2]).max()) > 1e-2


def test_map_in_batches_pads_the_last_batch_and_keeps_pytrees():
  from ssljax.eval import map_in_batches
  xs = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
  calls = []

  def fn(x):
    calls.append(x.shape)
    return {"sum": x.sum(1), "twice": 2 * x}

  out = map_in_batches(fn, xs, batch=4)
  assert calls == [(4, 3)] * 3                 # every call a full batch
  np.testing.assert_array_equal(out["sum"], xs.sum(1))
  np.testing.assert_array_equal(out["twice"], 2 * xs)
