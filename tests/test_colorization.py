"""Colorization and split-brain: Lab, ab bins, soft encoding, rebalancing,
annealed mean, the loss, the train steps, the config, the quality measures
and the photo loader."""

import importlib
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssljax.augment.lab import (ab_gamut_bins, annealed_mean, l_bin_centers,
                                lab_to_rgb, nearest_ab_bin, quantize_l,
                                rgb_to_lab, soft_encode_ab)
from ssljax.config import ConfigError, ConfigReader
from ssljax.data import DatasetNotAvailableError
from ssljax.data.photos import (find_photos, load_photos, photo_group,
                                split_photos)
from ssljax.eval.colorization import (ab_error_metrics, evaluate_colorization,
                                      evaluate_splitbrain,
                                      save_colorization_png)
from ssljax.losses import colorization_loss, rebalance_weights, smooth_prior
from ssljax.methods import DataSpec, TrainState, get_method, train_state
from ssljax.methods.colorization import (Colorization, SplitBrain,
                                         ab_bin_counts, class_weights_for)
from ssljax.models import ColorNet, SplitBrainNet
from ssljax.train.build import build_run, load_config_file
from ssljax.train.validate import config_problems, shape_problems

# ----------------------------------------------------------------------------
# Lab
# ----------------------------------------------------------------------------


def _lab_numpy(rgb):
  """CIE formulas in float64 (sRGB companding, Lindbloom's sRGB matrix, D65)."""
  rgb = np.asarray(rgb, np.float64)
  lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
  m = np.array([[0.4124564, 0.3575761, 0.1804375],
                [0.2126729, 0.7151522, 0.0721750],
                [0.0193339, 0.1191920, 0.9503041]])
  xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
  eps, kappa = 216 / 24389, 24389 / 27
  f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                   200 * (f[..., 1] - f[..., 2])], -1)


def test_rgb_to_lab_hand_values_numpy_and_skimage_under_jit():
  f = jax.jit(rgb_to_lab)
  np.testing.assert_allclose(f(np.array([1.0, 1.0, 1.0])), [100, 0, 0], atol=2e-4)
  np.testing.assert_allclose(f(np.array([0.0, 0.0, 0.0])), [0, 0, 0], atol=1e-5)
  np.testing.assert_allclose(f(np.array([1.0, 0.0, 0.0])),
                             [53.24, 80.09, 67.20], atol=0.01)
  # uint8 input is divided by 255
  np.testing.assert_allclose(f(np.array([255, 0, 0], np.uint8)),
                             [53.24, 80.09, 67.20], atol=0.01)
  rgb = np.random.default_rng(0).random((4, 5, 3))
  rgb[0, 0] = [0.01, 0.02, 0.03]                     # the linear segment
  got = np.asarray(f(rgb.astype(np.float32)))
  np.testing.assert_allclose(got, _lab_numpy(rgb), atol=2e-3)
  skcolor = importlib.import_module("skimage.color")
  # scikit-image uses a 6-digit sRGB matrix: agreement to ~5e-3.
  np.testing.assert_allclose(got, skcolor.rgb2lab(rgb), atol=1e-2)


def test_lab_round_trip_jit_vmap_and_finite_gradients():
  rgb = np.random.default_rng(1).random((64, 3)).astype(np.float32)
  rgb[:3] = [[0, 0, 0], [1, 1, 1], [0.002, 0.5, 1.0]]
  back = jax.jit(jax.vmap(lambda x: lab_to_rgb(rgb_to_lab(x))))(rgb)
  assert float(np.abs(np.asarray(back) - rgb).max()) < 1e-4
  g = jax.jit(jax.grad(lambda x: rgb_to_lab(x).sum()))(jnp.zeros(3))
  assert np.isfinite(np.asarray(g)).all()
  with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
    rgb_to_lab(np.zeros((4, 2)))


# ----------------------------------------------------------------------------
# bins, soft encoding, annealed mean
# ----------------------------------------------------------------------------


def test_ab_gamut_bins_properties():
  bins = ab_gamut_bins()
  assert bins.dtype == np.float32 and bins.shape[1] == 2
  assert 200 <= len(bins) <= 400, len(bins)
  assert ((bins == [0, 0]).all(1)).sum() == 1              # the neutral bin
  np.testing.assert_array_equal(bins % 10, 0)
  np.testing.assert_array_equal(bins, ab_gamut_bins())     # deterministic
  assert len({tuple(b) for b in bins}) == len(bins)
  # every 8-bit colour rounds to an in-gamut bin
  rgb = np.random.default_rng(2).integers(0, 256, (20000, 3)).astype(np.uint8)
  cells = np.round(_lab_numpy(rgb / 255.0)[:, 1:] / 10) * 10
  have = {tuple(b) for b in bins.tolist()}
  assert all(tuple(c) in have for c in cells.tolist())
  # nearest_ab_bin agrees with rounding for those colours (ties at cell
  # borders may go either way in float32)
  ab, idx = jax.jit(lambda x: (rgb_to_lab(x)[:, 1:],
                               nearest_ab_bin(rgb_to_lab(x)[:, 1:], bins)))(rgb)
  ab, idx = np.asarray(ab), np.asarray(idx)
  d_bin = np.linalg.norm(ab - bins[idx], axis=1)
  d_round = np.linalg.norm(ab - cells, axis=1)
  assert (d_bin <= d_round + 1e-3).all()
  assert np.mean((bins[idx] == cells).all(1)) > 0.999


def test_soft_encoding_sums_to_one_and_hand_value_on_a_bin_centre():
  bins = ab_gamut_bins()
  ab = np.random.default_rng(3).uniform(-60, 60, (2, 7, 2)).astype(np.float32)
  ab[0, 0] = 0.0                                     # exactly on (0, 0)
  z = np.asarray(jax.jit(lambda x: soft_encode_ab(x, bins))(ab))
  assert z.shape == (2, 7, len(bins))
  np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-6)
  assert ((z > 0).sum(-1) == 5).all()
  # exactly on (0, 0): itself (d = 0) and its 4 neighbours at d = 10
  z0 = z[0, 0]
  nz = np.nonzero(z0)[0]
  assert {tuple(bins[i]) for i in nz} == {(0, 0), (10, 0), (-10, 0), (0, 10),
                                          (0, -10)}
  e = np.exp(-100 / (2 * 25))
  centre = int(np.nonzero((bins == [0, 0]).all(1))[0][0])
  np.testing.assert_allclose(z0[centre], 1 / (1 + 4 * e), rtol=1e-6)
  for i in nz:
    if i != centre:
      np.testing.assert_allclose(z0[i], e / (1 + 4 * e), rtol=1e-6)


def test_annealed_mean_mean_at_t1_and_mode_as_t_goes_to_0():
  bins = np.array([[0, 0], [10, 0], [0, 20], [-30, 10]], np.float32)
  z = np.array([[0.1, 0.5, 0.3, 0.1], [0.4, 0.1, 0.2, 0.3]], np.float32)
  logits = np.log(z) + 3.0

  @jax.jit
  def f(z, logits):
    return (annealed_mean(z, bins, temperature=1.0),
            annealed_mean(z, bins, temperature=0.01),
            annealed_mean(z, bins, temperature=0.38),
            annealed_mean(logits, bins, temperature=0.38, from_logits=True))

  mean, mode, mid, mid_logits = map(np.asarray, f(z, logits))
  np.testing.assert_allclose(mean, z @ bins, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mode, bins[z.argmax(1)], atol=1e-3)
  # from logits: the same as from their softmax
  np.testing.assert_allclose(mid_logits, mid, rtol=1e-5, atol=1e-4)
  # T = 0.38 lies between the mean and the mode for the first row
  mid = mid[0]
  assert np.linalg.norm(mid - bins[1]) < np.linalg.norm((z @ bins)[0] - bins[1])


def test_quantize_l_by_hand():
  got = jax.jit(quantize_l)(
      jnp.array([0.0, 1.99, 2.0, 57.3, 99.99, 100.0, -3.0]))
  np.testing.assert_array_equal(got, [0, 0, 1, 28, 49, 49, 0])
  np.testing.assert_allclose(l_bin_centers()[[0, 1, 49]], [1, 3, 99])


# ----------------------------------------------------------------------------
# rebalancing and the loss
# ----------------------------------------------------------------------------


def test_bin_counts_and_smoothed_prior_by_hand():
  bins = ab_gamut_bins()
  gray = np.full((3, 5, 3), 128, np.uint8)                  # 15 neutral pixels
  red = np.zeros((1, 2, 3), np.uint8)
  red[..., 0] = 255                                         # 2 red pixels
  counts = ab_bin_counts(np.concatenate([gray.reshape(-1, 3),
                                         red.reshape(-1, 3)]), bins,
                         chunk_pixels=4)                    # padded chunks
  assert counts.sum() == 17
  centre = int(np.nonzero((bins == [0, 0]).all(1))[0][0])
  red_bin = int(np.nonzero((bins == [80, 70]).all(1))[0][0])
  assert counts[centre] == 15 and counts[red_bin] == 2
  # smoothing over three collinear bins by hand
  b3 = np.array([[0, 0], [10, 0], [20, 0]], np.float32)
  e1, e2 = np.exp(-100 / 50), np.exp(-400 / 50)
  want = np.array([1, e1, e2])
  np.testing.assert_allclose(smooth_prior([1, 0, 0], b3, sigma=5),
                             want / want.sum(), rtol=1e-12)
  np.testing.assert_allclose(smooth_prior([1, 0, 0], b3, sigma=0), [1, 0, 0])


def test_rebalance_weights_expectation_one_and_rarer_is_heavier():
  p = np.random.default_rng(4).dirichlet(np.ones(30) * 0.3)
  w = rebalance_weights(p, lam=0.5)
  np.testing.assert_allclose(np.sum(p * w), 1.0, rtol=1e-6)
  order = np.argsort(p)
  assert (np.diff(w[order]) <= 1e-6).all()                  # rarer -> larger
  assert w[p.argmin()] > w[p.argmax()]
  # by hand: w ∝ 1 / (0.5 p + 0.5 / Q)
  raw = 1 / (0.5 * p + 0.5 / 30)
  np.testing.assert_allclose(w, raw / np.sum(p * raw), rtol=1e-5)
  np.testing.assert_allclose(rebalance_weights(p, lam=1.0), 1.0, rtol=1e-6)


def test_colorization_loss_against_numpy():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
  z = rng.dirichlet(np.ones(6), size=(2, 3, 4)).astype(np.float32)
  w = rng.uniform(0.5, 2.0, 6).astype(np.float32)
  got = jax.jit(lambda a, b, c: colorization_loss(a, b, class_weights=c))(
      logits, z, w)
  lg = logits.astype(np.float64)
  logp = lg - lg.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  per_pixel = -(z * logp).sum(-1) * w[z.argmax(-1)]
  np.testing.assert_allclose(got, per_pixel.mean(), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(colorization_loss)(logits, z),
                             (-(z * logp).sum(-1)).mean(), rtol=1e-5)
  with pytest.raises(ValueError, match="shapes"):
    colorization_loss(logits, z[..., :5])


# ----------------------------------------------------------------------------
# the methods (a tiny convolutional encoder: quick to compile on CPU)
# ----------------------------------------------------------------------------


class _TinyEncoder(nn.Module):
  """Two convolutions and a mean (plain normal init: quick to compile)."""

  @nn.compact
  def __call__(self, x, train=True):
    init = nn.initializers.normal(0.3)
    x = nn.relu(nn.Conv(4, (3, 3), kernel_init=init, name="conv0")(x))
    x = nn.relu(nn.Conv(8, (3, 3), strides=2, kernel_init=init,
                        name="conv1")(x))
    return x.mean(axis=(1, 2))


def _images(n=8, side=8, seed=6):
  return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3)
                                              ).astype(np.uint8)


def _changed(a, b):
  return max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(jnp.abs(x - y).max()), a, b)))


def _numpy_state(method, image_shape, *inputs_channels, seed=0):
  """The method's state with parameters drawn by numpy (XLA:CPU compiles
  every initializer op by op: slow on 2 shared cores), after checking that
  ``method.init`` gives the same structure and shapes (traced, not run)."""
  spec = jax.eval_shape(lambda k: method.init(k, image_shape),
                        jax.random.key(0))
  h, w = image_shape[:2]
  dummies = [jnp.zeros((2, h, w, c)) for c in inputs_channels]
  var_spec = jax.eval_shape(lambda: method.model.init(
      jax.random.key(0), *dummies, train=True))
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if "var" in name or "scale" in name:
      return jnp.ones(s.shape, s.dtype)
    if "mean" in name or "bias" in name:
      return jnp.zeros(s.shape, s.dtype)
    fan_in = int(np.prod(s.shape[:-1])) or 1
    return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(fan_in), s.dtype)

  state = train_state(jax.tree_util.tree_map_with_path(fill, var_spec),
                      method.tx)
  assert isinstance(state, TrainState)
  assert (jax.tree.structure(state) == jax.tree.structure(spec))
  jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape),
               state, spec)
  return state


@pytest.fixture(scope="module")
def colorization():
  bins = ab_gamut_bins()
  images = _images()
  p = smooth_prior(ab_bin_counts(images, bins) + 1, bins)
  method = Colorization(
      model=ColorNet(_TinyEncoder(), num_classes=len(bins), hidden_dim=8),
      tx=optax.sgd(0.5), bins=bins,
      class_weights=rebalance_weights(p), schedule=lambda s: 1e-2 + 0 * s)
  state = _numpy_state(method, images.shape[1:], 1)
  return method, state, images


def test_colorization_step_loss_matches_independent_forward(colorization):
  method, state, images = colorization
  key = jax.random.key(1)
  lab = np.asarray(jax.jit(method._augment)(images, jax.random.fold_in(key, 0)))
  logits, _ = jax.jit(lambda v, x: method.model.apply(
      v, x, train=True, mutable=["batch_stats"]))(
          {"params": state.params, "batch_stats": state.batch_stats},
          lab[..., :1] / 50 - 1)
  assert logits.shape == (8, 4, 4, len(method.bins))        # out_stride 2
  ab = lab[..., 1:].reshape(8, 4, 2, 4, 2, 2).mean((2, 4))
  z = np.asarray(soft_encode_ab(ab, method.bin_centers))
  lg = np.asarray(logits, np.float64)
  logp = lg - lg.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  w = np.asarray(method.class_weights)
  want = (-(z * logp).sum(-1) * w[z.argmax(-1)]).mean()
  step = jax.jit(method.train_step, donate_argnums=0)
  new, metrics = step(jax.tree.map(jnp.copy, state), jnp.asarray(images), key)
  assert set(metrics) == {"loss", "ab_acc", "lr"}
  np.testing.assert_allclose(metrics["loss"], want, rtol=1e-4)
  np.testing.assert_allclose(metrics["ab_acc"],
                             np.mean(lg.argmax(-1) == z.argmax(-1)), atol=1e-6)
  assert int(new.step) == 1
  assert _changed(state.params["encoder"], new.params["encoder"]) > 0
  assert _changed(state.params["logits"], new.params["logits"]) > 0
  # a few steps on one batch lower the loss
  losses = []
  for _ in range(5):
    new, m = step(new, jnp.asarray(images), key)
    losses.append(float(m["loss"]))
  assert losses[-1] < float(metrics["loss"]), losses


def test_colorization_encode_predict_and_evaluate(colorization):
  method, state, images = colorization

  @jax.jit
  def run(state, images):
    gray = jnp.repeat(images[..., :1], 3, -1)
    return (method.encode(state, images), method.encode(state, gray),
            method.encode(state, gray[..., :1]), method.predict_ab(state, images),
            method.colorize(state, images), method.evaluate(state, images))

  feats, f_gray3, f_gray1, ab, rgb, out = run(state, images)
  assert feats.shape == (8, 8)
  # gray images as 1 or 3 channels: the same L, the same features
  np.testing.assert_allclose(f_gray1, f_gray3, rtol=1e-5, atol=1e-5)
  assert ab.shape == (8, 8, 8, 2) and rgb.shape == (8, 8, 8, 3)
  assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
  assert set(out) == {"loss", "ab_acc"} and np.isfinite(out["loss"])
  with pytest.raises(ValueError, match="C=3"):
    method.train_step(state, jnp.asarray(images[..., :1]), jax.random.key(0))


def test_splitbrain_step_updates_both_halves():
  bins = ab_gamut_bins()
  images = _images(seed=7)
  method = SplitBrain(
      model=SplitBrainNet(
          l_net=ColorNet(_TinyEncoder(), num_classes=len(bins), hidden_dim=8,
                         hypercolumn=False),
          ab_net=ColorNet(_TinyEncoder(), num_classes=50, hidden_dim=8,
                          hypercolumn=False)),
      tx=optax.sgd(0.5), bins=bins)
  state = _numpy_state(method, images.shape[1:], 1, 2)
  new, metrics = jax.jit(method.train_step, donate_argnums=0)(
      jax.tree.map(jnp.copy, state), jnp.asarray(images), jax.random.key(1))
  assert set(metrics) == {"loss", "loss_ab", "loss_l", "ab_acc", "l_acc"}
  np.testing.assert_allclose(metrics["loss"],
                             metrics["loss_ab"] + metrics["loss_l"], rtol=1e-6)
  assert 0 < float(metrics["loss_l"]) < 2 * np.log(50)
  for half in ("l_net", "ab_net"):
    assert _changed(state.params[half]["encoder"],
                    new.params[half]["encoder"]) > 0
    assert _changed(state.params[half]["logits"],
                    new.params[half]["logits"]) > 0
  feats, ev = jax.jit(lambda s, x: (method.encode(s, x),
                                    method.evaluate(s, x)))(new, images)
  assert feats.shape == (8, 16)                     # both encoders' features
  assert set(ev) == set(metrics) and np.isfinite(ev["loss"])
  ab = jax.eval_shape(method.predict_ab, new, images)
  assert ab.shape == (8, 8, 8, 2)


# ----------------------------------------------------------------------------
# photos
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
  from PIL import Image
  d = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(8)
  for name in ("apple.png", "zebra.png"):
    a = rng.integers(0, 256, (40, 56, 3)).astype(np.uint8)
    Image.fromarray(a).save(d / name)
  Image.fromarray(np.full((40, 40), 90, np.uint8)).save(d / "gray.png")
  Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(d / "grayrgb.png")
  (d / "notes.txt").write_text("not an image")
  return str(d)


def test_photo_loader_on_a_tiny_folder(photo_dir):
  paths = find_photos(photo_dir)
  assert [os.path.basename(p) for p in paths] == ["apple.png", "zebra.png"]
  split = split_photos(paths, holdout_every=2)
  assert [os.path.basename(p) for p in split["test"]] == ["zebra.png"]
  ds = load_photos("train", data_dir=photo_dir, size=16, crops_per_photo=5,
                   holdout_every=2, seed=3)
  assert ds.images.shape == (5, 16, 16, 3) and ds.images.dtype == np.uint8
  assert ds.num_classes == 1 and "apple.png" in ds.name
  again = load_photos("train", data_dir=photo_dir, size=16, crops_per_photo=5,
                      holdout_every=2, seed=3)
  np.testing.assert_array_equal(ds.images, again.images)
  other = load_photos("train", data_dir=photo_dir, size=16, crops_per_photo=5,
                      holdout_every=2, seed=4)
  assert not np.array_equal(ds.images, other.images)
  both = load_photos("all", data_dir=photo_dir, size=8, crops_per_photo=3)
  np.testing.assert_array_equal(both.labels, [0, 0, 0, 1, 1, 1])
  assert photo_group("/x/aloeL.jpg") == photo_group("/x/aloeR.jpg") == "aloe"
  assert photo_group("/x/right.jpg") == "left"
  assert photo_group("/x/rubberwhale2.png") == "rubberwhale"


def test_photo_loader_names_the_debian_package_when_missing(tmp_path):
  with pytest.raises(DatasetNotAvailableError, match="apt-get install opencv-doc"):
    load_photos("train", data_dir=str(tmp_path / "nowhere"))
  with pytest.raises(DatasetNotAvailableError, match="apt-get install opencv-doc"):
    find_photos(str(tmp_path))                      # exists, but no photos


# ----------------------------------------------------------------------------
# from a config
# ----------------------------------------------------------------------------

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "experiments", "configs")


def _tiny_config(method="colorization", **colorization):
  return ml_collections.ConfigDict(dict(
      method=method, dataset="opencv_photos", batch_size=8, num_steps=2,
      encoder=dict(name="small_resnet", widths=(4,), stage_sizes=(1,)),
      head=dict(hidden_dim=8, out_stride=2),
      colorization=dict(prior_images=2, **colorization),
      optimizer=dict(name="adamw", base_lr=1e-3, lr_scaling="none")))


def _spec(dataset=None):
  return DataSpec(name="opencv_photos", num_examples=8,
                  input_shape=(8, 8, 3), dataset=dataset)


def _from_config(config, dataset=None):
  reader = ConfigReader(config)
  method = get_method(config.method).from_config(
      reader, tx=optax.sgd(0.1), schedule=None, data=_spec(dataset))
  if reader.problems:                  # value problems (not unread keys)
    raise ConfigError(reader.problems)
  return method


def test_from_config_prior_from_the_training_set_and_a_uniform_stand_in():
  images = _images(n=4)
  ds = type("Data", (), {"images": images})()
  method = _from_config(_tiny_config(), ds)
  assert isinstance(method, Colorization) and method.name == "colorization"
  assert isinstance(method.model, ColorNet) and method.model.hidden_dim == 8
  bins = ab_gamut_bins()
  np.testing.assert_array_equal(method.bin_centers, bins)
  # the prior of the first and last of prior_images=2 evenly spaced images
  want = rebalance_weights(smooth_prior(ab_bin_counts(images[[0, 3]], bins),
                                        bins), lam=0.5)
  np.testing.assert_allclose(method.class_weights, want, rtol=1e-6)
  assert np.ptp(np.asarray(method.class_weights)) > 0
  # no data (checking a config): a uniform prior, weights 1, nothing loaded
  stand_in = _from_config(_tiny_config())
  np.testing.assert_allclose(stand_in.class_weights, 1.0, rtol=1e-6)
  assert class_weights_for(None, bins, lam=1.0) is None
  # split-brain: two ColorNets, no rebalancing by default
  sb = _from_config(_tiny_config("splitbrain", num_l_bins=20), ds)
  assert isinstance(sb, SplitBrain) and sb.class_weights is None
  assert isinstance(sb.model, SplitBrainNet)
  assert sb.model.ab_net.num_classes == 20
  assert sb.model.l_net.num_classes == len(bins)


@pytest.mark.parametrize("name", ["colorization_photos", "splitbrain_photos"])
def test_shipped_config_validates(name):
  config = load_config_file(os.path.join(CONFIGS, f"{name}.py"))
  assert config_problems(config, device_count=1) == []


@pytest.mark.parametrize("method", ["colorization", "splitbrain"])
def test_bad_values_are_reported_under_their_dotted_keys(method):
  config = _tiny_config(method, sigma=-1.0, rebalance_lambda=1.5)
  config.head.out_stride = 0
  with pytest.raises(ConfigError) as e:
    _from_config(config)
  keys = set(e.value.keys)
  assert {"colorization.sigma", "colorization.rebalance_lambda"} <= keys, keys
  assert any("--config.colorization.sigma" in str(p)
             for p in e.value.problems)
  problems = config_problems(_tiny_config(method, num_neighbors=0),
                             device_count=1)
  assert [p.key for p in problems] == ["colorization.num_neighbors"]


def test_misspelt_keys_are_reported_with_the_closest_key():
  config = _tiny_config(rebalance_lamda=0.5)
  config.head.hiden_dim = 4
  problems = config_problems(config, device_count=1)
  by_key = {p.key: p.message for p in problems}
  assert "'colorization.rebalance_lambda'" in by_key[
      "colorization.rebalance_lamda"]
  assert "'head.hidden_dim'" in by_key["head.hiden_dim"]


def test_geometry_mistakes_are_found_by_the_trace():
  config = _tiny_config()
  config.head.out_stride = 3                    # does not divide 8x8 images
  _, method, spec = build_run(ConfigReader(config), _spec())
  problems = shape_problems(method, spec)
  assert problems and "out_stride=3" in problems[0].message


# ----------------------------------------------------------------------------
# quality measures and pictures
# ----------------------------------------------------------------------------


def test_ab_error_metrics_and_auc_by_hand():
  true = np.zeros((1, 2, 2, 2), np.float32)
  pred = np.array([[[[0, 0], [3, 4]], [[30, 40], [200, 0]]]], np.float32)
  m = ab_error_metrics(pred, true, pixel_weights=[[[1, 1], [1, 5]]])
  d = np.array([0, 5, 50, 200])
  np.testing.assert_allclose(m["ab_error"], d.mean())
  assert m["within_10"] == 0.5 and m["within_25"] == 0.5
  thresholds = np.arange(151)
  want = np.mean([(d <= t).mean() for t in thresholds])
  np.testing.assert_allclose(m["auc"], want)
  w = np.array([1, 1, 1, 5])
  want_w = np.mean([(w * (d <= t)).sum() / w.sum() for t in thresholds])
  np.testing.assert_allclose(m["auc_rebalanced"], want_w)
  assert m["auc"] > m["auc_rebalanced"]        # the heavy pixel is far off


def test_evaluate_colorization_and_splitbrain_on_tiny_data(colorization):
  method, state, images = colorization
  states = {"trained": state, "random_init": state}
  out = evaluate_colorization(method, states, images, images[:4],
                              batch_size=4, train_subset_every=2)
  assert {"trained", "random_init", "train_mean_ab", "gray_ab0",
          "train_mode_bin", "trained_on_train_crops",
          "gray_on_train_crops"} <= set(out)
  for t in ("T=0.38", "T=1.0"):
    assert {"ab_error", "within_10", "within_25", "auc", "auc_rebalanced",
            "psnr_db"} <= set(out["trained"][t])
  assert 0 <= out["trained"]["bin_acc"] <= 1
  # gray: its ab error is the mean chroma of the held-out pixels
  lab = np.asarray(rgb_to_lab(images[:4]))
  np.testing.assert_allclose(out["gray_ab0"]["ab_error"],
                             np.linalg.norm(lab[..., 1:], axis=-1).mean(),
                             rtol=1e-5)
  bins = ab_gamut_bins()
  sb = SplitBrain(
      model=SplitBrainNet(
          l_net=ColorNet(_TinyEncoder(), num_classes=len(bins), hidden_dim=8),
          ab_net=ColorNet(_TinyEncoder(), num_classes=50, hidden_dim=8)),
      tx=optax.sgd(0.5), bins=bins)
  sb_state = _numpy_state(sb, images.shape[1:], 1, 2)
  res = evaluate_splitbrain(sb, {"trained": sb_state}, images, images[:4],
                            chunk=4)
  assert set(res["trained"]) == {"loss", "loss_ab", "loss_l", "ab_acc",
                                 "l_acc"}
  m = res["train_marginal"]
  np.testing.assert_allclose(m["loss"], m["loss_ab"] + m["loss_l"])


def test_png(tmp_path):
  images = _images(n=2)
  path = save_colorization_png(str(tmp_path / "c.png"), images, images / 255.0,
                               titles=["a", "b"])
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
