"""Inpainting / context encoder: masks, border weights, losses against numpy
and by hand, the joint G + D step (donated, stop-gradient, sharded ==
single device), encode, the config (validated, built, problems at their keys)
and the PNG writer."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import load_module, require_devices, tiny_dataset
from ssljax.augment import masks
from ssljax.config import ConfigError
from ssljax.eval.inpainting import save_image_grid, write_samples
from ssljax.losses import (border_weights, discriminator_loss,
                           generator_adversarial_loss, reconstruction_loss)
from ssljax.methods import Inpainting, InpaintingState, get_method
from ssljax.models import ContextEncoder, ConvDecoder, ConvDiscriminator
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import build_method
from ssljax.train.validate import config_problems, validate_config

ROOT = os.path.join(os.path.dirname(__file__), "..")

# ----------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,size", [(28, 28, 0.5), (9, 7, 0.5), (8, 8, 0.25)])
def test_center_mask_area_and_location_exact(h, w, size):
  got = np.asarray(jax.jit(lambda x: masks.center_mask(x, size=size))(
      np.zeros((h, w, 3))))
  bh, bw = max(1, round(size * h)), max(1, round(size * w))
  want = np.zeros((h, w, 1), np.float32)
  want[(h - bh) // 2:(h - bh) // 2 + bh, (w - bw) // 2:(w - bw) // 2 + bw] = 1
  np.testing.assert_array_equal(got, want)
  if (h, w) == (28, 28):                 # by hand: rows/cols 7..20, 196 px
    assert got.sum() == 196 and got[7:21, 7:21].all()


def test_batched_masks_shapes_coverage_and_determinism():
  images = jnp.zeros((32, 20, 20, 1), jnp.uint8)
  f = jax.jit(masks.inpainting_masks, static_argnames="kind")
  c = f(jax.random.key(0), images, kind="center")
  assert c.shape == (32, 20, 20, 1) and (np.asarray(c) == c[0]).all()
  for kind, lo, hi in (("random_blocks", 0.25, 0.25 + 0.35 ** 2 + 1e-6),
                       ("random_regions", 0.25, 0.25 + 1e-6)):
    m = np.asarray(f(jax.random.key(0), images, kind=kind))
    assert m.shape == (32, 20, 20, 1) and set(np.unique(m)) <= {0.0, 1.0}
    cov = m.mean(axis=(1, 2, 3))
    assert cov.min() >= lo - 1e-6 and cov.max() <= hi, (kind, cov.min(), cov.max())
    # deterministic per key, different across keys and across examples
    np.testing.assert_array_equal(m, f(jax.random.key(0), images, kind=kind))
    assert not np.array_equal(m, f(jax.random.key(1), images, kind=kind))
    assert len({m[i].tobytes() for i in range(32)}) > 30
  # regions are blobs, not speckle: most dropped pixels have all 4
  # neighbours dropped too
  m = np.asarray(f(jax.random.key(2), images, kind="random_regions"))[..., 0]
  inner = m[:, 1:-1, 1:-1] * m[:, :-2, 1:-1] * m[:, 2:, 1:-1] * \
      m[:, 1:-1, :-2] * m[:, 1:-1, 2:]
  assert inner.sum() / m[:, 1:-1, 1:-1].sum() > 0.4   # speckle: 0.25 ** 4
  with pytest.raises(ValueError, match="kind"):
    masks.inpainting_masks(jax.random.key(0), images, kind="ring")


def test_random_block_mask_is_a_union_of_its_rectangles_under_vmap():
  keys = jax.random.split(jax.random.key(3), 8)
  m = jax.jit(jax.vmap(lambda k: masks.random_block_mask(
      k, jnp.zeros((20, 20, 1)), num_blocks=1, size_range=(0.3, 0.3),
      coverage=1e-3)))(keys)
  for i in range(8):          # one 6x6 block somewhere inside the image
    rows, cols = np.nonzero(np.asarray(m[i, ..., 0]))
    assert m[i].sum() == 36
    assert rows.max() - rows.min() == 5 and cols.max() - cols.min() == 5


def _numpy_border_weights(mask, border, weight):
  """Brute force: a hole pixel is in the band if an image pixel within
  Chebyshev distance ``border`` is kept."""
  m = mask[..., 0]
  h, w = m.shape
  out = m.astype(np.float64).copy()
  for i in range(h):
    for j in range(w):
      if m[i, j]:
        win = m[max(0, i - border):i + border + 1, max(0, j - border):j + border + 1]
        if (win == 0).any():
          out[i, j] = weight
  return out[..., None]


def test_border_weights_by_hand_and_against_brute_force():
  hole = np.zeros((6, 6, 1), np.float32)
  hole[1:5, 1:5] = 1
  w = np.asarray(border_weights(hole, border=1))[..., 0]
  want = np.zeros((6, 6))
  want[1:5, 1:5] = 10
  want[2:4, 2:4] = 1                       # 12 band pixels, 4 interior
  np.testing.assert_array_equal(w, want)
  top = np.zeros((6, 6, 1), np.float32)
  top[:3] = 1                              # touches the image edge: no band there
  w = np.asarray(border_weights(top, border=1))[..., 0]
  np.testing.assert_array_equal(w[:2], 1)
  np.testing.assert_array_equal(w[2], 10)
  np.testing.assert_array_equal(w[3:], 0)
  m = (np.random.default_rng(4).random((3, 12, 12, 1)) < 0.4).astype(np.float32)
  m[0, 3:9, 2:10] = 1
  for border in (0, 1, 2):
    got = jax.jit(lambda m: border_weights(m, border=border, weight=7.0))(m)
    for i in range(3):
      np.testing.assert_array_equal(got[i], _numpy_border_weights(m[i], border, 7.0))


# ----------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------


def test_reconstruction_loss_hand_computed():
  x = np.ones((1, 6, 6, 1), np.float32)
  y = np.zeros_like(x)
  hole = np.zeros((1, 6, 6, 1), np.float32)
  hole[0, 1:5, 1:5] = 1
  # (12 band pixels * 10 + 4 interior * 1) / 16 hole pixels
  np.testing.assert_allclose(reconstruction_loss(x, y, hole, border=1), 7.75)
  top = np.zeros_like(hole)
  top[0, :3] = 1                              # (6 * 10 + 12) / 18
  np.testing.assert_allclose(reconstruction_loss(x, y, top, border=1), 4.0)
  # no band: the plain mean squared error over the hole
  np.testing.assert_allclose(reconstruction_loss(x, y, hole, border=0), 1.0)
  with pytest.raises(ValueError, match=r"\[B, H, W, 1\]"):
    reconstruction_loss(x, y, hole[..., 0])


def _np_rec(x, y, m, border, weight):
  x, y, m = (np.asarray(a, np.float64) for a in (x, y, m))
  w = np.stack([_numpy_border_weights(mi, border, weight) for mi in m])
  return (w * (x - y) ** 2).sum() / (x.shape[-1] * m.sum())


def _np_bce_d(r, f):
  sig = lambda z: 1 / (1 + np.exp(-np.asarray(z, np.float64)))  # noqa: E731
  return -np.mean(np.log(sig(r))) - np.mean(np.log(1 - sig(f)))


def _np_bce_g(f):
  return -np.mean(np.log(1 / (1 + np.exp(-np.asarray(f, np.float64)))))


def test_losses_against_numpy_formulas_under_jit():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 10, 10, 3)).astype(np.float32)
  y = rng.normal(size=(4, 10, 10, 3)).astype(np.float32)
  m = np.zeros((4, 10, 10, 1), np.float32)
  for i, (t, l, h, w) in enumerate([(0, 0, 5, 5), (2, 3, 6, 4), (4, 1, 3, 9),
                                    (7, 6, 3, 4)]):
    m[i, t:t + h, l:l + w] = 1
  m[1, 0:2, 8:10] = 1                         # two holes in one image
  got = jax.jit(lambda *a: reconstruction_loss(*a, border=2,
                                               border_weight=10.0))(x, y, m)
  np.testing.assert_allclose(got, _np_rec(x, y, m, 2, 10.0), rtol=1e-5)
  r, f = rng.normal(size=8) * 3, rng.normal(size=8) * 3
  np.testing.assert_allclose(jax.jit(discriminator_loss)(r, f), _np_bce_d(r, f),
                             rtol=1e-5)
  np.testing.assert_allclose(jax.jit(generator_adversarial_loss)(f),
                             _np_bce_g(f), rtol=1e-5)
  # by hand: D undecided (logit 0) -> 2 log 2 for D, log 2 for G
  z = np.zeros(3, np.float32)
  np.testing.assert_allclose(discriminator_loss(z, z), 2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(generator_adversarial_loss(z), np.log(2), rtol=1e-6)
  # extreme logits stay finite (softplus form)
  big = np.array([80.0, -80.0], np.float32)
  assert np.isfinite(discriminator_loss(big, -big))
  with pytest.raises(ValueError, match=r"\[B\]"):
    discriminator_loss(z[:, None], z)


# ----------------------------------------------------------------------------
# the method on a tiny model
# ----------------------------------------------------------------------------

# Plain SGD here: the updates are then linear in the gradients, which the
# step's updates are compared against (Adam's first step, ~ -lr sign(g),
# would amplify float noise in near-zero gradients); the config's Adam is
# checked in test_config_builds_the_paper_optimizer.
TX = optax.sgd(0.1)


class _Flat(nn.Module):
  """A stand-in encoder (flatten, Dense, BN, ReLU): the step is the same for
  any encoder, and this one compiles several times faster on XLA:CPU than
  a ResNet (the library encoder is built in ``test_config_builds...``)."""
  features: int = 8

  @nn.compact
  def __call__(self, x, train=True):
    x = nn.Dense(self.features, use_bias=False)(x.reshape(x.shape[0], -1))
    return nn.relu(nn.BatchNorm(use_running_average=not train)(x))


def tiny_method(**kw):
  model = ContextEncoder(encoder=_Flat(), decoder=ConvDecoder(widths=(8, 4)))
  return Inpainting(model=model, discriminator=ConvDiscriminator(widths=(4, 8)),
                    tx=TX, mean=(0.3,), std=(0.3,),
                    schedule=optax.constant_schedule(0.1), **kw)


def _copy(tree):
  return jax.tree.map(jnp.array, tree)


@pytest.fixture(scope="module")
def run():
  method = tiny_method(border=1)
  ds = tiny_dataset(n=32, side=8)
  state = method.init(jax.random.key(0, impl="rbg"), ds.image_shape)
  step = jax.jit(method.train_step, donate_argnums=0)
  images = jnp.asarray(ds.images[:16])
  key = jax.random.key(3)
  new_state, metrics = step(_copy(state), images, key)
  return dict(method=method, ds=ds, state=state, step=step, images=images,
              key=key, new_state=new_state, metrics=metrics)


def test_state_layout_and_deterministic_init(run):
  state = run["state"]
  assert isinstance(state, InpaintingState)
  assert set(state.params) == {"encoder", "decoder"}
  assert "Dense_0" in state.disc_params and state.batch_stats
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
  again = run["method"].init(jax.random.key(0, impl="rbg"), (8, 8, 1))
  jax.tree.map(np.testing.assert_array_equal, state, again)


def test_step_metrics_match_numpy_and_both_networks_move(run):
  method, state, images = run["method"], run["state"], run["images"]
  new_state, m = run["new_state"], run["metrics"]
  # Independently: inputs, one generator pass, D on real and composite.

  @jax.jit
  def forward(state, images):
    x, mask, masked = method.inputs(
        images, jax.random.fold_in(run["key"], state.step))
    y, _ = method.model.apply(
        {"params": state.params, "batch_stats": state.batch_stats}, masked,
        train=True, mutable=["batch_stats"])
    fake = (1 - mask) * x + mask * y
    d = lambda z: method.discriminator.apply({"params": state.disc_params}, z)  # noqa: E731
    return x, mask, masked, y, d(x), d(fake)

  x, mask, masked, y, real_l, fake_l = (
      np.asarray(a, np.float64) for a in forward(state, images))
  np.testing.assert_array_equal(mask[0, 2:6, 2:6], 1)       # centre 4x4 of 8x8
  assert float(mask.sum()) == 16 * 16
  np.testing.assert_allclose(masked, x * (1 - mask), atol=1e-6)
  rec = _np_rec(x, y, mask, 1, 10.0)
  np.testing.assert_allclose(m["rec_loss"], rec, rtol=1e-4)
  np.testing.assert_allclose(m["d_loss"], _np_bce_d(real_l, fake_l), rtol=1e-4)
  np.testing.assert_allclose(m["g_adv_loss"], _np_bce_g(fake_l), rtol=1e-4)
  np.testing.assert_allclose(m["loss"], 0.999 * rec + 0.001 * _np_bce_g(fake_l),
                             rtol=1e-4)
  np.testing.assert_allclose(m["d_real"], np.mean(1 / (1 + np.exp(-real_l))),
                             rtol=1e-4)
  np.testing.assert_allclose(m["d_fake"], np.mean(1 / (1 + np.exp(-fake_l))),
                             rtol=1e-4)
  np.testing.assert_allclose(m["lr"], 0.1)
  assert int(new_state.step) == 1
  for name in ("params", "disc_params"):
    diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                        getattr(state, name), getattr(new_state, name))
    assert min(jax.tree.leaves(diff)) > 0, (name, diff)   # every tensor
  assert max(jax.tree.leaves(jax.tree.map(
      lambda a, b: float(jnp.abs(a - b).max()), state.batch_stats,
      new_state.batch_stats))) > 0


def test_updates_are_the_separate_gradients_and_d_loss_leaves_g_alone(run):
  method, state = run["method"], run["state"]
  x, mask, masked = jax.jit(method.inputs)(
      run["images"], jax.random.fold_in(run["key"], state.step))

  def d_loss_through_g(g_params, d_params):
    _, aux = method.generator_loss(g_params, state.batch_stats, d_params, x,
                                   mask, masked)
    return method.discriminator_loss(d_params, x, aux["fake"])[0]

  def g_loss(g_params):
    return method.generator_loss(g_params, state.batch_stats,
                                 state.disc_params, x, mask, masked)[0]

  (g_of_d, d_of_d), g_grads = jax.jit(lambda g, d: (
      jax.grad(d_loss_through_g, argnums=(0, 1))(g, d), jax.grad(g_loss)(g)))(
          state.params, state.disc_params)
  # the D loss sends no gradient into the generator (stop-gradient) ...
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_of_d))
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(d_of_d)) > 0
  # ... so the step's G update is Adam on the generator loss's gradient
  # alone, and its D update Adam on the discriminator loss's gradient alone.
  for grads, params, opt_state, new in (
      (g_grads, state.params, state.opt_state, run["new_state"].params),
      (d_of_d, state.disc_params, state.disc_opt_state,
       run["new_state"].disc_params)):
    upd, _ = TX.update(grads, opt_state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                         atol=1e-6),
                 optax.apply_updates(params, upd), new)


def test_step_donates_the_state_and_is_deterministic(run):
  state = _copy(run["state"])
  leaves = jax.tree.leaves(state)
  new, m = run["step"](state, run["images"], run["key"])
  assert all(x.is_deleted() for x in leaves)
  assert float(m["loss"]) == float(run["metrics"]["loss"])
  jax.tree.map(np.testing.assert_array_equal, new.disc_params,
               run["new_state"].disc_params)


def test_sharded_step_matches_single_device(run):
  require_devices(8)
  method = run["method"]
  images = np.asarray(run["images"])
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    out_state, out_m = jax.jit(method.train_step)(
        jax.device_put(run["state"], replicated_sharding(mesh)),
        jax.device_put(images, data_sharding(mesh, 4)), run["key"])
  for k in ("loss", "rec_loss", "d_loss", "g_adv_loss", "d_real", "d_fake"):
    np.testing.assert_allclose(out_m[k], run["metrics"][k], rtol=1e-5, err_msg=k)
  for name in ("params", "batch_stats", "disc_params"):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                         atol=2e-6),
                 getattr(out_state, name), getattr(run["new_state"], name))


def test_encode_is_the_frozen_encoder_in_inference_mode(run):
  method, state = run["method"], run["state"]
  images = run["images"][:4]
  feats = jax.jit(method.encode)(
      {"params": state.params, "batch_stats": state.batch_stats}, images)
  assert feats.shape == (4, 8)
  p, bs = state.params["encoder"], state.batch_stats["encoder"]["BatchNorm_0"]
  x = (np.asarray(images, np.float64) / 255.0 - 0.3) / 0.3
  h = x.reshape(4, -1) @ p["Dense_0"]["kernel"]
  h = (h - bs["mean"]) / np.sqrt(bs["var"] + 1e-5)     # running statistics
  want = np.maximum(h * p["BatchNorm_0"]["scale"] + p["BatchNorm_0"]["bias"], 0)
  np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-5)


def test_output_adversarial_input_and_bad_arguments():
  method = tiny_method(mask="random_regions", adversarial_input="output")
  images = jnp.asarray(tiny_dataset(n=8, side=8).images)
  x = jnp.zeros((2, 8, 8, 1))
  mask = jnp.zeros((2, 8, 8, 1)).at[:, :4].set(1.0)
  y = jnp.ones_like(x)
  np.testing.assert_array_equal(method.fake_images(x, mask, y), y)
  with pytest.raises(ValueError, match="mask"):
    tiny_method(mask="square")
  with pytest.raises(ValueError, match="adversarial_input"):
    tiny_method(adversarial_input="patch")
  with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
    method.train_step(None, images[0], jax.random.key(0))


# ----------------------------------------------------------------------------
# builder, config and pictures
# ----------------------------------------------------------------------------


def load_config():
  return load_module(os.path.join(ROOT, "experiments", "configs",
                                  "inpainting_fashion_mnist.py"),
                     "cfg").get_config()


def test_config_validates_and_builds_the_paper_method_and_optimizer():
  config = load_config()
  assert config.method == "inpainting" and config.batch_size == 256
  assert config_problems(config, device_count=1) == []
  assert get_method("inpainting") is Inpainting
  method, steps = build_method(config, 60000)
  assert isinstance(method, Inpainting)
  assert steps == round(config.num_epochs * (60000 // 256))
  assert (method.mask, method.mask_size, method.coverage, method.border,
          method.border_weight, method.rec_weight, method.adv_weight,
          method.adversarial_input, method.fill) == (
              "center", 0.5, 0.25, 2, 10.0, 0.999, 0.001, "composite", 0.0)
  assert method.model.encoder.widths == (32, 64, 256)
  assert method.model.decoder.widths == (128, 64, 32)
  assert method.discriminator.widths == (32, 64, 128)
  assert (method.mean, method.std) == ((0.286,), (0.353,))
  assert float(method.schedule(0)) == float(method.schedule(10 ** 6)) == 2e-4
  # the optimizer (of both networks) is Adam(2e-4, b1=0.5, b2=0.999), as the
  # paper's (and as build_inpainting's b1 default was)
  assert method.disc_tx is None
  p = {"w": jnp.array([1.0, -2.0, 3.0])}
  g = {"w": jnp.array([0.5, 0.1, -1.0])}
  want = optax.adam(2e-4, b1=0.5, b2=0.999)
  s1, s2 = method.tx.init(p), want.init(p)
  for _ in range(3):
    u1, s1 = method.tx.update(g, s1, p)
    u2, s2 = want.update(g, s2, p)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)


def _problems(config) -> ConfigError:
  with pytest.raises(ConfigError) as info:
    validate_config(config, device_count=1)
  return info.value


@pytest.mark.parametrize("section,key,value,fragment", [
    ("inpainting", "mask", "square", "'random_regions'"),
    ("inpainting", "mask_size", 1.5, "(0, 1]"),
    ("inpainting", "border", -1, ">= 0"),
    ("inpainting", "adversarial_input", "patch", "'composite'"),
    ("inpainting", "block_size_range", (0.5, 0.2), "min <= max"),
])
def test_bad_value_is_reported_at_its_dotted_key(section, key, value, fragment):
  config = load_config()
  config[section][key] = value
  err = _problems(config)
  assert err.keys == (f"{section}.{key}",), str(err)
  assert fragment in str(err) and f"--config.{section}.{key}=" in str(err)


@pytest.mark.parametrize("section,typo,want", [
    ("inpainting", "border_weigth", "inpainting.border_weight"),
    ("decoder", "width", "decoder.widths"),
    ("discriminator", "widhts", "discriminator.widths"),
])
def test_misspelt_key_is_reported_with_the_closest_key(section, typo, want):
  config = load_config()
  config[section][typo] = 1
  err = _problems(config)
  assert err.keys == (f"{section}.{typo}",), str(err)
  assert f"did you mean '{want}'" in str(err)


def test_png_writer_writes_a_valid_png(run, tmp_path):
  path = str(tmp_path / "sub" / "grid.png")
  out = write_samples(run["method"], run["new_state"],
                      np.asarray(run["images"][:5]), path, title="t")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  import matplotlib.image
  img = matplotlib.image.imread(path)
  assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > img.shape[0]
  o, c, m = (np.asarray(out[k]) for k in ("original", "completed", "mask"))
  np.testing.assert_allclose(c * (1 - m), o * (1 - m), atol=1e-6)  # context kept
  assert o.min() >= 0 and o.max() <= 1
  with pytest.raises(ValueError, match="row"):
    save_image_grid(str(tmp_path / "x.png"), [("a", np.zeros((2, 4, 4)))])


def test_samples_script_is_thin():
  path = os.path.join(ROOT, "experiments", "inpainting_samples.py")
  with open(path) as f:
    assert len(f.read().splitlines()) < 150
