"""Evaluation suite: clustering, representation health, plots, robustness --
each against a known answer or an independent NumPy/SciPy computation."""

import json
import os
import sys
import types

import jax
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import pdist

from ssljax.eval import clustering, health, plots, robustness

# ----------------------------------------------------------------------------
# clustering
# ----------------------------------------------------------------------------


def _separated_blobs(n_per=40, classes=4, dim=5, seed=0):
  rng = np.random.default_rng(seed)
  centers = np.eye(classes, dim) * 50.0
  y = np.repeat(np.arange(classes), n_per)
  return centers[y] + rng.normal(size=(len(y), dim)) * 0.1, y


def test_cluster_scores_perfect_on_separated_blobs():
  x, y = _separated_blobs()
  scores = clustering.cluster_scores(x, y, seed=0)
  assert set(scores) == {"nmi", "ari", "cluster_acc"}
  for v in scores.values():
    assert v == pytest.approx(1.0)
  # the label ids themselves do not matter
  assert clustering.cluster_scores(x, (y + 1) * 7 % 5, seed=1)["ari"] == \
      pytest.approx(1.0)


def test_cluster_accuracy_permuted_and_hand_cases():
  labels = np.array([0, 0, 1, 1, 2, 2])
  assert clustering.cluster_accuracy(labels, [2, 2, 0, 0, 1, 1]) == 1.0
  # confusion [cluster, class]: c0 {0: 2, 2: 1}, c1 {0: 1, 1: 3}, c2 {2: 3}
  # best map 0->0, 1->1, 2->2 = (2 + 3 + 3) / 10
  labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
  assign = [0, 0, 1, 1, 1, 1, 2, 2, 0, 2]
  assert clustering.cluster_accuracy(labels, assign) == pytest.approx(0.8)
  # more clusters than classes: c0 {0: 2}, c1 {0: 1, 1: 1}, c2 {1: 2} -> 4 / 6
  assert clustering.cluster_accuracy([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) \
      == pytest.approx(4 / 6)
  # Hungarian, not greedy: c0 {0: 3, 1: 2}, c1 {0: 3}; greedy may take
  # c0->0 (3) and leave c1 nothing = 3 / 8; the optimum c0->1 + c1->0 = 5 / 8.
  labels = [0, 0, 0, 1, 1, 0, 0, 0]
  assign = [0, 0, 0, 0, 0, 1, 1, 1]
  assert clustering.cluster_accuracy(labels, assign) == pytest.approx(5 / 8)
  with pytest.raises(ValueError, match="labels"):
    clustering.cluster_accuracy([0, 1], [0])


# ----------------------------------------------------------------------------
# representation health
# ----------------------------------------------------------------------------


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_and_uniformity_match_numpy_formulas():
  rng = np.random.default_rng(0)
  z1 = rng.normal(size=(50, 8)) * 3
  z2 = z1 + rng.normal(size=(50, 8))
  u1, u2 = _unit(z1), _unit(z2)
  for alpha in (1.0, 2.0):
    want = np.mean(np.linalg.norm(u1 - u2, axis=1) ** alpha)
    got = jax.jit(lambda a, b: health.alignment(a, b, alpha=alpha))(z1, z2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
  for t in (1.0, 2.0):
    want = np.log(np.mean(np.exp(-t * pdist(u1, "sqeuclidean"))))
    got = jax.jit(lambda z: health.uniformity(z, t=t))(z1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_alignment_uniformity_known_cases():
  z = np.random.default_rng(1).normal(size=(10, 4))
  assert float(jax.jit(health.alignment)(z, 2 * z)) == pytest.approx(0, abs=1e-6)
  assert float(health.alignment(z, -z)) == pytest.approx(4.0, rel=1e-5)  # |2u|^2
  assert float(health.uniformity(np.ones((5, 3)))) == pytest.approx(0, abs=1e-6)
  # two antipodal points: one pair at squared distance 4
  assert float(health.uniformity(np.array([[1.0, 0], [-1.0, 0]]), t=2.0)) == \
      pytest.approx(-8.0, rel=1e-6)
  with pytest.raises(ValueError, match="shape"):
    health.alignment(z, z[:, :3])


def test_effective_rank_against_numpy_and_known_cases():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1, 0.01])
  s = np.linalg.svd(x - x.mean(0), compute_uv=False)
  p = s / s.sum()
  erank = jax.jit(health.effective_rank)
  np.testing.assert_allclose(erank(x), np.exp(-np.sum(p * np.log(p))),
                             rtol=1e-4)
  rank1 = np.outer(rng.normal(size=300), rng.normal(size=32))
  assert float(erank(rank1)) == pytest.approx(1.0, abs=1e-3)
  gauss = rng.normal(size=(4000, 16))
  assert 15.5 < float(erank(gauss)) <= 16.0
  assert float(erank(np.ones((8, 4)))) == pytest.approx(1.0)   # all zero


def test_collapse_report():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(size=(500, 8)), np.zeros((500, 8))], axis=1)
  rep = jax.jit(health.collapse_report)(x)
  assert float(rep["collapsed_dim_fraction"]) == pytest.approx(0.5)
  assert 7.5 < float(rep["effective_rank"]) < 8.0
  want = np.mean(np.std(_unit(x), axis=0))
  np.testing.assert_allclose(rep["normalized_std"], want, rtol=1e-5)
  assert float(rep["normalized_std_reference"]) == pytest.approx(0.25)
  collapsed = health.collapse_report(np.tile(rng.normal(size=(1, 8)), (64, 1)))
  assert float(collapsed["collapsed_dim_fraction"]) == 1.0
  assert float(collapsed["normalized_std"]) == pytest.approx(0.0, abs=1e-6)
  assert float(collapsed["effective_rank"]) == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------


def _png_shape(path):
  import matplotlib.image as mpimg
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  return mpimg.imread(path).shape


def test_embedding_plot_tsne(tmp_path):
  x, y = _separated_blobs(n_per=30, classes=3)
  path = str(tmp_path / "sub" / "tsne.png")
  idx, coords = plots.embedding_plot(x, y, path, max_points=60, seed=0,
                                     class_names=["a", "b", "c"], dpi=50,
                                     embed_kwargs={"method": "exact",
                                                   "max_iter": 250})
  assert idx.shape == (60,) and len(np.unique(idx)) == 60
  assert coords.shape == (60, 2) and np.isfinite(coords).all()
  assert _png_shape(path) == (300, 350, 4)          # figsize (7, 6) at 50 dpi
  with pytest.raises(ValueError, match="method"):
    plots.embedding_plot(x, y, path, method="pca")


def test_embedding_plot_umap_dispatch(tmp_path, monkeypatch):
  """The UMAP branch, with a stand-in module (real umap-learn compiles for
  a minute on 2 cores; experiments/evaluate.py runs the real one)."""
  calls = {}

  class FakeUMAP:
    def __init__(self, **kw):
      calls.update(kw)

    def fit_transform(self, x):
      return x[:, :2]

  monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
  x, y = _separated_blobs(n_per=10, classes=3)
  _, coords = plots.embedding_plot(x, y, str(tmp_path / "u.png"),
                                   method="umap", seed=3, dpi=30)
  assert calls == {"n_components": 2, "random_state": 3}
  np.testing.assert_allclose(coords, x[:, :2], rtol=1e-6)
  assert _png_shape(str(tmp_path / "u.png")) == (180, 210, 4)


def test_retrieve_matches_brute_force_and_grid(tmp_path):
  rng = np.random.default_rng(0)
  bank = rng.normal(size=(50, 6))
  queries = rng.normal(size=(4, 6))
  k = 5
  sims = _unit(queries) @ _unit(bank).T
  want = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  np.testing.assert_array_equal(plots.retrieve(queries, bank, k), want)
  # a bank row that is a scaled copy of the query is its first neighbour
  np.testing.assert_array_equal(plots.retrieve(3 * bank[[7, 2]], bank, 1),
                                [[7], [2]])
  images = rng.integers(0, 256, (50, 8, 8, 3)).astype(np.uint8)
  labels = rng.integers(0, 3, 50)
  path = str(tmp_path / "grid.png")
  idx = plots.retrieval_grid(images[:4], images, queries, bank, path, k=k,
                             query_labels=labels[:4], bank_labels=labels,
                             dpi=40)
  np.testing.assert_array_equal(idx, want)
  assert _png_shape(path) == (4 * 40, (k + 1) * 40, 4)
  gray = images[..., :1]
  plots.retrieval_grid(gray[:2], gray, queries[:2], bank, path, k=2, dpi=40)
  assert _png_shape(path) == (2 * 40, 3 * 40, 4)
  with pytest.raises(ValueError, match="k must be"):
    plots.retrieve(queries, bank, 51)


def test_curves_plot(tmp_path):
  # MetricWriter's rows, {"step": int, name: float, ...} (written by hand:
  # importing tensorboardX costs seconds); knn_acc on rows of its own.
  rows = {"run_a": [{"step": s, "loss": 5.0 - s, "lr": 0.1 * s, "mi_bound": s}
                    for s in range(1, 6)] + [{"step": 5, "knn_acc": 0.5}],
          "run_b": [{"step": s, "loss": 1.0 / s} for s in (2, 4)]}
  for run, lines in rows.items():
    os.makedirs(tmp_path / run)
    with open(tmp_path / run / "metrics.jsonl", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in lines)
  path = str(tmp_path / "curves.png")
  keys = plots.curves_plot([str(tmp_path / "run_a"),
                            str(tmp_path / "run_b" / "metrics.jsonl")], path,
                           dpi=50)
  assert keys == ["loss", "lr", "mi_bound", "knn_acc"]
  assert _png_shape(path) == (160, 4 * 225, 4)      # (4.5, 3.2) in per panel
  assert plots.curves_plot(str(tmp_path / "run_b"), path, keys=("loss", "x"),
                           dpi=50) == ["loss"]
  with pytest.raises(ValueError, match="none of"):
    plots.curves_plot(str(tmp_path / "run_b"), path, keys=("nope",))


# ----------------------------------------------------------------------------
# robustness
# ----------------------------------------------------------------------------


def _images(b=4, side=16, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (b, side, side, c)
                                              ).astype(np.uint8)


def test_severity_zero_is_identity():
  x = _images(b=2, side=8)
  for name in robustness.CORRUPTIONS:
    np.testing.assert_array_equal(
        robustness.corrupt(name, jax.random.key(0), x, 0), x)
  with pytest.raises(ValueError, match="severity"):
    robustness.corrupt("contrast", jax.random.key(0), x, 6)
  with pytest.raises(ValueError, match="unknown corruption"):
    robustness.corrupt("fog", jax.random.key(0), x, 1)


def test_gaussian_noise_std():
  x = np.full((4, 32, 32, 3), 128, np.uint8)
  out = robustness.corrupt("gaussian_noise", jax.random.key(1), x, 5)
  diff = (np.asarray(out, np.float64) - 128) / 255
  assert abs(diff.mean()) < 0.005
  assert diff.std() == pytest.approx(robustness.SEVERITY_PARAMS[
      "gaussian_noise"][4], rel=0.03)
  other = robustness.corrupt("gaussian_noise", jax.random.key(2), x, 5)
  assert not np.array_equal(out, other)


def test_contrast_matches_numpy_formula():
  x = _images()
  for sev in (1, 5):
    c = robustness.SEVERITY_PARAMS["contrast"][sev - 1]
    f = x / 255.0
    m = f.mean(axis=(1, 2), keepdims=True)
    want = np.round(np.clip((f - m) * c + m, 0, 1) * 255)
    got = robustness.corrupt("contrast", jax.random.key(0), x, sev)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, atol=1)


def test_blur_matches_scipy_and_keeps_constants():
  x = _images(b=2)
  got = robustness.corrupt("gaussian_blur", jax.random.key(0), x, 5)  # sigma 1
  want = np.stack([gaussian_filter(im / 255.0, sigma=(1, 1, 0), mode="nearest",
                                   truncate=4.0) for im in x])
  np.testing.assert_allclose(np.asarray(got, np.float64), np.round(want * 255),
                             atol=1)
  flat = np.full((1, 10, 10, 1), 77, np.uint8)
  np.testing.assert_array_equal(
      robustness.corrupt("gaussian_blur", jax.random.key(0), flat, 3), flat)


def test_occlusion_zeroes_a_square_of_the_expected_side():
  x = np.full((6, 20, 20, 3), 255, np.uint8)
  out = np.asarray(robustness.corrupt("occlusion", jax.random.key(0), x, 3))
  side = round(0.3 * 20)
  corners = set()
  for im in out:
    zero = im == 0
    assert zero.sum() == side * side * 3
    rows, cols = np.nonzero(zero.all(-1))
    assert rows.max() - rows.min() + 1 == side == cols.max() - cols.min() + 1
    corners.add((rows.min(), cols.min()))
  assert len(corners) > 1                           # per-example positions
  again = robustness.corrupt("occlusion", jax.random.key(0), x, 3)
  np.testing.assert_array_equal(out, again)         # seeded


def test_rotation():
  x = _images(b=3, side=12)
  f = x.astype(np.float32)
  np.testing.assert_array_equal(robustness.rotate(f[0], 0.0), f[0])
  rot = jax.jit(jax.vmap(robustness.rotate, in_axes=(0, None)))
  np.testing.assert_allclose(rot(f, 90.0), np.rot90(f, 1, axes=(1, 2)),
                             atol=1e-3)
  np.testing.assert_allclose(rot(f, -90.0), np.rot90(f, -1, axes=(1, 2)),
                             atol=1e-3)
  # the corruption rotates each image by +-angle, black outside
  sev = 2
  angle = robustness.SEVERITY_PARAMS["rotation"][sev - 1]
  out = np.asarray(robustness.corrupt("rotation", jax.random.key(0), x, sev),
                   np.int64)
  plus = np.round(np.clip(rot(f / 255, angle), 0, 1) * 255)
  minus = np.round(np.clip(rot(f / 255, -angle), 0, 1) * 255)
  for i in range(len(x)):
    assert min(np.abs(out[i] - plus[i]).max(), np.abs(out[i] - minus[i]).max()) <= 1


def test_corrupt_traced_severity_under_jit():
  x = _images(b=2, side=8)
  fn = jax.jit(lambda k, im, s: robustness.corrupt("contrast", k, im, s))
  for s in (0, 2):
    np.testing.assert_array_equal(
        fn(jax.random.key(0), x, s),
        robustness.corrupt("contrast", jax.random.key(0), x, s))


def test_robustness_table_known_answers():
  clean = np.full((10, 8, 8, 1), 200, np.uint8)

  def unchanged(images):          # "accuracy": fraction of intact images
    return float(np.mean(np.all(images == clean, axis=(1, 2, 3))))

  res = robustness.robustness_table(
      unchanged, clean, corruptions=("contrast", "occlusion", "gaussian_noise"),
      severities=(1, 3), batch_size=4)
  assert res["clean"] == 1.0
  # a constant image has no contrast to lose; a cutout or noise changes it
  assert res["accuracy"] == {"contrast": {1: 1.0, 3: 1.0},
                             "occlusion": {1: 0.0, 3: 0.0},
                             "gaussian_noise": {1: 0.0, 3: 0.0}}
  assert res["relative"]["contrast"] == {1: 1.0, 3: 1.0}
  assert res["mean_accuracy"] == {"contrast": 1.0, "occlusion": 0.0,
                                  "gaussian_noise": 0.0}
  assert res["mean_relative"] == pytest.approx(1 / 3)
  table = robustness.format_robustness_table(res)
  assert "occlusion" in table and "100.00%" in table
  # accuracy_fn batches a predictor against labels
  labels = np.array([1, 0] * 5)
  acc = robustness.accuracy_fn(lambda im: (im[:, 0, 0, 0] > 100).astype(int),
                               labels, batch_size=3)
  assert acc(clean) == 0.5


def test_training_seconds_sums_logged_intervals():
  from ssljax.eval.suite import training_seconds  # pylint: disable=import-outside-toplevel
  # steps 0-10 at 100 images/s, 10-20 at 50, batch 10: 1 s and 2 s.
  rows = [{"step": 10, "images_per_sec": 100.0}, {"step": 20, "images_per_sec": 50.0},
          {"step": 15, "loss": 1.0}]                  # rows without a rate are ignored
  assert training_seconds(rows, 10, 10) == 1.0
  assert training_seconds(rows, 10, 15) == 2.0        # half of the second interval
  assert training_seconds(rows, 10, 20) == 3.0
  assert training_seconds(rows, 10, 30) == 5.0        # past the log: the last rate
  assert training_seconds(list(reversed(rows)), 10, 20) == 3.0
