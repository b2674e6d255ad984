"""SimCLR's train step: purity, loss value, determinism, sharded == single."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import require_devices, tiny_config, tiny_dataset
from ssljax import losses
from ssljax.methods import TrainState as SimCLRState
from ssljax.methods.simclr import similarity_stats
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import build_method


@pytest.fixture(scope="module")
def setup():
  config = tiny_config()
  config.optimizer.warmup_epochs = 0.0   # lr > 0 from the first step
  ds = tiny_dataset(n=32)
  method, steps = build_method(config, len(ds))
  state = method.init(jax.random.key(0), ds.image_shape)
  return method, state, ds


def test_state_is_a_pytree_and_init_is_deterministic(setup):
  method, state, ds = setup
  assert isinstance(state, SimCLRState)
  leaves = jax.tree.leaves(state)
  assert all(isinstance(x, jax.Array) for x in leaves)
  again = method.init(jax.random.key(0), ds.image_shape)
  jax.tree.map(np.testing.assert_array_equal, state, again)


def test_step_reports_the_nt_xent_of_its_views(setup):
  method, state, ds = setup
  images = jnp.asarray(ds.images[:16])
  key = jax.random.key(3)
  new_state, metrics = jax.jit(method.train_step)(state, images, key)
  # Recompute the loss independently from the same views and parameters.
  # (jitted, since op-by-op dispatch of the augmentation is slow on CPU)
  @jax.jit
  def independent(state, images):
    v1, v2 = method.views(images, jax.random.fold_in(key, state.step))
    (_, z), _ = method.model.apply(
        {"params": state.params, "batch_stats": state.batch_stats},
        jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
    return losses.nt_xent(z[:16], z[16:], temperature=0.5)
  expected = independent(state, images)
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["mi_bound"], np.log(31) - expected, atol=1e-5)
  assert int(new_state.step) == 1
  assert float(metrics["lr"]) == pytest.approx(float(method.schedule(0)))
  assert float(metrics["lr"]) > 0
  # the step changed the parameters and the BN statistics
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                      state.params, new_state.params)
  assert max(jax.tree.leaves(diff)) > 0
  assert not np.allclose(new_state.batch_stats["encoder"]["stem_bn"]["mean"],
                         state.batch_stats["encoder"]["stem_bn"]["mean"])


def test_similarity_stats_against_numpy():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 5, 4)).astype(np.float32)
  z = np.concatenate([z1, z2])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  s = z @ z.T
  pos = np.mean([s[i, i + 5] for i in range(5)])
  mask = ~np.eye(10, dtype=bool)
  for i in range(5):
    mask[i, i + 5] = mask[i + 5, i] = False
  got = similarity_stats(jnp.asarray(z1), jnp.asarray(z2))
  np.testing.assert_allclose(got["pos_sim"], pos, rtol=1e-5)
  np.testing.assert_allclose(got["neg_sim"], s[mask].mean(), rtol=1e-4, atol=1e-6)


def test_step_is_deterministic_and_key_dependent(setup):
  method, state, ds = setup
  images = jnp.asarray(ds.images[:16])
  step = jax.jit(method.train_step)
  _, m1 = step(state, images, jax.random.key(1))
  _, m2 = step(state, images, jax.random.key(1))
  _, m3 = step(state, images, jax.random.key(2))
  assert float(m1["loss"]) == float(m2["loss"])
  assert float(m1["loss"]) != float(m3["loss"])


def test_loss_decreases_on_a_fixed_batch():
  # Identity "augmentation" (whole-image crop, no flip, no jitter) makes the
  # two views equal, so the objective is deterministic and must go down.
  config = tiny_config(num_steps=20)
  config.augment = dict(area_range=(1.0, 1.0), aspect_range=(1.0, 1.0),
                        flip=False, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
  ds = tiny_dataset(n=32)
  method, _ = build_method(config, len(ds))
  state = method.init(jax.random.key(0), ds.image_shape)
  images = jnp.asarray(ds.images[:16])
  step = jax.jit(method.train_step, donate_argnums=0)
  losses_seen = []
  for _ in range(10):
    state, m = step(state, images, jax.random.key(0))
    losses_seen.append(float(m["loss"]))
  assert losses_seen[-1] < losses_seen[0] - 0.05, losses_seen


def test_sharded_step_matches_single_device(setup):
  require_devices(8)
  method, state, ds = setup
  images = ds.images[:16]
  key = jax.random.key(5)
  single_state, single_m = jax.jit(method.train_step)(state, jnp.asarray(images), key)
  mesh = make_data_mesh()
  sharded_state = jax.device_put(state, replicated_sharding(mesh))
  with jax.set_mesh(mesh):
    out_state, out_m = jax.jit(method.train_step)(
        sharded_state, jax.device_put(images, data_sharding(mesh, 4)), key)
  np.testing.assert_allclose(out_m["loss"], single_m["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
               out_state.params, single_state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
               out_state.batch_stats, single_state.batch_stats)


def test_bad_batch_shape_is_rejected(setup):
  method, state, ds = setup
  with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
    method.train_step(state, jnp.asarray(ds.images[0]), jax.random.key(0))


def test_blockwise_loss_config_gives_the_same_step(setup):
  """config.loss_block_size switches to the memory-bounded NT-Xent: same
  loss and same parameters after a step, on one device and sharded."""
  method, state, ds = setup
  config = tiny_config(loss_block_size=5)
  config.optimizer.warmup_epochs = 0.0
  blocked, _ = build_method(config, len(ds))
  assert blocked.loss_block_size == 5 and method.loss_block_size is None
  images = jnp.asarray(ds.images[:16])
  key = jax.random.key(7)
  ref_state, ref_metrics = jax.jit(method.train_step)(state, images, key)
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    got_state, got_metrics = jax.jit(blocked.train_step)(
        jax.device_put(state, replicated_sharding(mesh)),
        jax.device_put(images, data_sharding(mesh, 4)), key)
  np.testing.assert_allclose(got_metrics["loss"], ref_metrics["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               got_state.params, ref_state.params)
