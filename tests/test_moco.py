"""MoCo: queue arithmetic, EMA maths, loss against numpy, step order, Shuffle BN
over 8 (faked) devices, sharded == single device, resume and the kNN monitor,
the shipped configs and config problems."""

import os

import dataclasses
import itertools
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import assert_only_problem, require_devices, tiny_config, tiny_dataset
from ssljax import data as data_lib
from ssljax import losses
from ssljax.config import ConfigError
from ssljax.methods import (MoCo, MoCoState, ema_update, enqueue,
                            momentum_schedule, shuffled_group_apply)
from ssljax.methods.moco import order_after
from ssljax.eval.monitor import KNNMonitor
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import build_method, load_config_file
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems

K, N, M = 64, 16, 0.9        # queue size, global batch, key-encoder momentum
TEMP = 0.2


def moco_config(**overrides):
  c = tiny_config(method="moco", temperature=TEMP, batch_size=N)
  c.head = ml_collections.ConfigDict(dict(out_dim=8, hidden_dim=0, num_layers=2,
                                          use_bn=False))
  c.moco = ml_collections.ConfigDict(dict(
      queue_size=K, momentum=M, momentum_schedule="constant", shuffle_bn=False,
      bn_splits=1))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.5, lr_scaling="none", weight_decay=1e-4,
      momentum=0.9, warmup_epochs=0.0))
  c.augment = ml_collections.ConfigDict(dict(
      area_range=(0.5, 1.0), flip=True, jitter_p=0.0, grayscale_p=0.0,
      blur_p=0.0))
  for k, v in overrides.items():
    c[k] = v
  return c


def _normalize(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def numpy_moco_loss(q, k, queue, t):
  """MoCo's loss from the formula: -log exp(q.k+/t) / sum_{0..K} exp(q.k_i/t)
  with cosine similarities, mean over the queries."""
  q, k, queue = _normalize(q), _normalize(k), _normalize(queue)
  logits = np.concatenate([np.sum(q * k, 1, keepdims=True), q @ queue.T], 1) / t
  mx = logits.max(1, keepdims=True)
  lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(1))
  return float(np.mean(lse - logits[:, 0]))


def _allclose_tree(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), **kw), a, b)


# ---------------------------------------------------------------------------
# pure pieces: enqueue, EMA, loss
# ---------------------------------------------------------------------------

def test_enqueue_writes_at_ptr_and_wraps_around():
  queue = jnp.arange(8 * 2, dtype=jnp.float32).reshape(8, 2)
  step = jax.jit(enqueue)
  ptr = jnp.int32(0)
  written = []
  for i in range(5):                      # 4 batches fill K = 8 twice over
    keys = jnp.full((4, 2), 100.0 + i)
    expect_rows = slice(int(ptr), int(ptr) + 4)
    queue, ptr = step(queue, ptr, keys)
    written.append(int(ptr))
    np.testing.assert_array_equal(queue[expect_rows], keys)
  assert written == [4, 0, 4, 0, 4]
  # after 5 batches: rows 0-3 hold batch 4, rows 4-7 batch 3 (oldest replaced)
  np.testing.assert_array_equal(queue[:4], 104.0)
  np.testing.assert_array_equal(queue[4:], 103.0)


def test_queue_not_divisible_by_batch_is_a_clear_error():
  with pytest.raises(ValueError, match=r"K=100 .*global batch size 16.*"
                     r"multiple of 16.*K=96 or K=112"):
    enqueue(jnp.zeros((100, 4)), 0, jnp.zeros((16, 4)))
  with pytest.raises(ConfigError, match=r"K=100.*batch size 16.*queue_size") as e:
    build_method(moco_config(moco=dict(queue_size=100, momentum=M)), 64)
  assert e.value.keys == ("moco.queue_size",)


def test_donated_enqueue_updates_the_queue_in_place():
  queue = jnp.zeros((4096, 32))
  hlo = jax.jit(enqueue, donate_argnums=(0, 1)).lower(
      queue, jnp.int32(0), jnp.ones((16, 32))).compile().as_text()
  header = hlo.splitlines()[0]
  assert "input_output_alias={ {0}: (0," in header.replace("  ", " ")
  entry = hlo.split("ENTRY")[1]
  ops = re.findall(r"= (\S+) (\w[\w-]*)\(", entry)
  assert ("f32[4096,32]{1,0}", "copy") not in ops, ops


def test_ema_update_and_momentum_schedule_by_hand():
  target = {"w": jnp.array([1.0, 2.0]), "bn": {"mean": jnp.array([4.0])}}
  online = {"w": jnp.array([3.0, -2.0]), "bn": {"mean": jnp.array([0.0])}}
  out = jax.jit(ema_update)(target, online, 0.75)
  # 0.75 * 1 + 0.25 * 3 = 1.5; 0.75 * 2 + 0.25 * -2 = 1.0; 0.75 * 4 = 3.0
  np.testing.assert_allclose(out["w"], [1.5, 1.0], rtol=1e-6)
  np.testing.assert_allclose(out["bn"]["mean"], [3.0], rtol=1e-6)
  with pytest.raises(ValueError, match="differ"):
    ema_update(target, {"w": online["w"]}, 0.5)
  sched = jax.jit(momentum_schedule(0.99, 100))
  # 1 - 0.01 * (cos(pi k / 100) + 1) / 2
  assert float(sched(0)) == pytest.approx(0.99)
  assert float(sched(50)) == pytest.approx(0.995)
  assert float(sched(25)) == pytest.approx(1 - 0.01 * (np.cos(np.pi / 4) + 1) / 2)
  assert float(sched(100)) == pytest.approx(1.0)
  assert float(sched(1000)) == pytest.approx(1.0)       # clipped
  cfg = moco_config()
  cfg.moco.momentum_schedule = "cosine"
  method, steps = build_method(cfg, 64)
  assert float(method.momentum_at(0)) == pytest.approx(M)
  assert float(method.momentum_at(steps)) == pytest.approx(1.0)


def test_info_nce_with_a_queue_matches_numpy():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(2, 5, 6)).astype(np.float32)
  queue = rng.normal(size=(12, 6)).astype(np.float32)
  got = jax.jit(lambda a, b, c: losses.info_nce(a, b, c, temperature=0.07))(
      q, k, queue)
  np.testing.assert_allclose(got, numpy_moco_loss(q, k, queue, 0.07), rtol=1e-5)


def test_step_schedule_option():
  cfg = moco_config(num_steps=0, num_epochs=4.0)
  cfg.optimizer.schedule = "step"
  cfg.optimizer.decay_epochs = (2, 3)
  method, steps = build_method(cfg, 64)        # 4 steps an epoch
  assert steps == 16
  lrs = [float(method.schedule(s)) for s in (0, 7, 8, 11, 12)]
  np.testing.assert_allclose(lrs, [0.5, 0.5, 0.05, 0.05, 0.005], rtol=1e-5)


# ---------------------------------------------------------------------------
# the train step
# ---------------------------------------------------------------------------

def _reference_forward(method, state, images, data_key):
  """Queries and keys of a step, computed here from the step's documented
  recipe: views from split(fold_in(key, step))[0], key encoder =
  M * key + (1 - M) * query, plain forward passes (no shuffle)."""
  view_key, _ = jax.random.split(jax.random.fold_in(data_key, state.step))
  xq, xk = method.views(images, view_key)
  kp = jax.tree.map(lambda k, q: M * k + (1 - M) * q, state.key_params,
                    state.params)
  (_, zk), _ = method.model.apply(
      {"params": kp, "batch_stats": state.key_batch_stats}, xk, train=True,
      mutable=["batch_stats"])
  (_, zq), _ = method.model.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, xq,
      train=True, mutable=["batch_stats"])
  return zq, zk


@pytest.fixture(scope="module")
def run():
  """Two single-device steps (global BN in the key encoder, no shuffle)."""
  ds = tiny_dataset(n=64)
  method, _ = build_method(moco_config(), len(ds))
  # the keys and the first two batches of pretrain(config, dataset=ds)
  init_key, data_key = jax.random.split(jax.random.key(0))
  # committed to a device, like states restored from a checkpoint (so both
  # hit the same compiled step)
  s0 = jax.device_put(method.init(init_key, ds.image_shape), jax.devices()[0])
  batches = [jnp.asarray(b["image"]) for b in itertools.islice(
      data_lib.batches(ds, batch_size=N, seed=0), 2)]
  # The step as the loop runs it (state donated), compiled once; the states
  # are copied before each call so that the test keeps them.
  compiled = jax.jit(method.train_step, donate_argnums=0).lower(
      s0, batches[0], data_key).compile()
  step = lambda state, images, key: compiled(jax.tree.map(jnp.copy, state),
                                             images, key)
  s1, m1 = step(s0, batches[0], data_key)
  s2, m2 = step(s1, batches[1], data_key)
  ref = jax.jit(lambda state, images: _reference_forward(method, state, images,
                                                         data_key))
  return dict(method=method, states=(s0, s1, s2), metrics=(m1, m2),
              batches=batches, key=data_key, ds=ds, ref=ref, step=step,
              hlo=compiled.as_text())


def reference(run, state, images):
  zq, zk = run["ref"](state, images)
  return np.asarray(zq), np.asarray(zk)


def test_state_is_a_pytree_with_a_normalized_random_queue(run):
  s0 = run["states"][0]
  assert isinstance(s0, MoCoState)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(s0))
  assert s0.queue.shape == (K, 8) and int(s0.queue_ptr) == 0
  np.testing.assert_allclose(np.linalg.norm(s0.queue, axis=1), 1.0, rtol=1e-5)
  assert np.abs(np.asarray(s0.queue) @ np.asarray(s0.queue).T
                - np.eye(K)).max() < 0.999   # not all the same vector
  _allclose_tree(s0.key_params, s0.params, rtol=0, atol=0)


def test_step_order_momentum_update_then_loss_on_the_pre_step_queue(run):
  s0, s1, _ = run["states"]
  m1 = run["metrics"][0]
  # 1. key encoder = M * key + (1 - M) * query, from the parameters before the step
  expected = jax.tree.map(lambda k, q: M * np.asarray(k) + (1 - M) * np.asarray(q),
                          s0.key_params, s0.params)
  _allclose_tree(s1.key_params, expected, rtol=1e-6, atol=1e-7)
  # 3. the loss is InfoNCE against the queue as it was before the step
  zq, zk = reference(run, s0, run["batches"][0])
  expect = numpy_moco_loss(zq, zk, s0.queue, TEMP)
  np.testing.assert_allclose(m1["loss"], expect, rtol=1e-4)
  assert abs(numpy_moco_loss(zq, zk, s1.queue, TEMP) - float(m1["loss"])) > 1e-3
  np.testing.assert_allclose(m1["mi_bound"], np.log(K + 1) - expect, rtol=1e-4)
  qn, kn = _normalize(zq), _normalize(zk)
  np.testing.assert_allclose(m1["pos_sim"], np.mean(np.sum(qn * kn, 1)), atol=1e-5)
  np.testing.assert_allclose(m1["neg_sim"], np.mean(qn @ _normalize(s0.queue).T),
                             atol=1e-5)
  assert float(m1["momentum"]) == pytest.approx(M)
  assert float(m1["lr"]) == pytest.approx(0.5)
  # the query encoder was updated; the state advanced
  assert int(s1.step) == 1
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s0.params,
                      s1.params)
  assert max(jax.tree.leaves(diff)) > 0


def test_donated_step_updates_the_queue_in_place(run):
  entry = run["hlo"].split("ENTRY", 1)[1]
  ops = re.findall(r"= (\S+) (\w[\w-]*)\(", entry)
  assert [op for op in ops if op[0].startswith(f"f32[{K},8]")
          and op[1] == "copy"] == [], "the [K, D] queue is copied"
  # the queue's input buffer is donated to an output
  index = re.search(r"state_queue\S* = \S+ parameter\((\d+)\)", entry).group(1)
  assert f": ({index}, {{}}, may-alias)" in run["hlo"].splitlines()[0]


def test_two_steps_queue_holds_the_keys_of_both_steps(run):
  s0, s1, s2 = run["states"]
  _, k1 = reference(run, s0, run["batches"][0])
  _, k2 = reference(run, s1, run["batches"][1])
  np.testing.assert_allclose(s1.queue[:N], _normalize(k1), atol=1e-5)
  np.testing.assert_allclose(s1.queue[N:], s0.queue[N:], rtol=0, atol=0)
  np.testing.assert_allclose(s2.queue[:N], _normalize(k1), atol=1e-5)
  np.testing.assert_allclose(s2.queue[N:2 * N], _normalize(k2), atol=1e-5)
  np.testing.assert_allclose(s2.queue[2 * N:], s0.queue[2 * N:], rtol=0, atol=0)
  assert [int(s.queue_ptr) for s in (s0, s1, s2)] == [0, N, 2 * N]


# ---------------------------------------------------------------------------
# Shuffle BN
# ---------------------------------------------------------------------------

def _group_mean_fn(variables, x):
  """Row i -> (x_i * w, mean of x over i's group); aux = the group mean."""
  gm = jnp.mean(x, axis=0, keepdims=True)
  return (x * variables["w"], jnp.broadcast_to(gm, x.shape)), {"m": gm[0]}


def test_shuffle_and_unshuffle_return_every_row_to_its_place():
  require_devices(8)
  x = np.arange(32 * 3, dtype=np.float32).reshape(32, 3) ** 1.5
  perm = np.asarray(jax.random.permutation(jax.random.key(3), 32))
  variables = {"w": jnp.float32(2.0)}
  # numpy: group g = rows perm[4g : 4g + 4] of x, for 8 groups
  group_of = np.empty(32, int)
  group_of[perm] = np.arange(32) // 4
  means = np.stack([x[perm[4 * g:4 * g + 4]].mean(0) for g in range(8)])
  mesh = make_data_mesh()

  def f(x, perm):
    return shuffled_group_apply(_group_mean_fn, variables, x, perm, groups=8,
                                mesh=jax.sharding.get_abstract_mesh())
  with jax.set_mesh(mesh):
    (y, gm), aux = jax.jit(f)(jax.device_put(x, data_sharding(mesh, 2)),
                              jnp.asarray(perm))
  (y1, gm1), aux1 = jax.jit(f)(x, perm)        # no mesh: 8 vmapped groups
  for yy, gg, aa in ((y, gm, aux), (y1, gm1, aux1)):
    np.testing.assert_allclose(yy, 2 * x, rtol=1e-6)      # back in x's order
    np.testing.assert_allclose(gg, means[group_of], rtol=1e-5)
    np.testing.assert_allclose(aa["m"], means.mean(0), rtol=1e-5)
  assert not np.allclose(gm, np.broadcast_to(x.mean(0), x.shape))
  with pytest.raises(ValueError, match="bn_splits=5"):
    shuffled_group_apply(_group_mean_fn, variables, x, perm, groups=5)


def test_shuffle_bn_uses_per_device_statistics(run):
  require_devices(8)
  method, s0 = run["method"], run["states"][0]
  shuffled = dataclasses.replace(method, shuffle_bn=True, bn_splits=8)
  x = (jnp.asarray(run["ds"].images[:N], jnp.float32) / 255.0 - 0.3) / 0.3
  skey = jax.random.key(11)
  args = (s0.key_params, s0.key_batch_stats)
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    k_dev, bs_dev = jax.jit(shuffled.keys)(
        *jax.device_put(args, replicated_sharding(mesh)),
        jax.device_put(x, data_sharding(mesh, 4)), skey)
  k_split, bs_split = jax.jit(shuffled.keys)(*args, x, skey)
  k_glob, bs_glob = jax.jit(method.keys)(*args, x, skey)
  # 8 devices (per-device BN over the shuffled batch) == 8 split-BN groups
  np.testing.assert_allclose(k_dev, k_split, rtol=1e-4, atol=1e-5)
  _allclose_tree(bs_dev, bs_split, rtol=1e-4, atol=1e-6)
  # ... and both differ from global-batch BN
  assert np.abs(np.asarray(k_dev) - np.asarray(k_glob)).max() > 1e-2
  # The stem BN sees the same conv outputs either way, so its batch statistics
  # (running = 0.9 old + 0.1 batch) show the grouping: the groups' means
  # average to the global mean, their variances average to less than the
  # global variance (the between-group part is missing).
  old = s0.key_batch_stats["encoder"]["stem_bn"]
  batch = lambda bs, name: (np.asarray(bs["encoder"]["stem_bn"][name])
                            - 0.9 * np.asarray(old[name])) / 0.1
  np.testing.assert_allclose(batch(bs_dev, "mean"), batch(bs_glob, "mean"),
                             rtol=1e-3, atol=1e-5)
  var_dev, var_glob = batch(bs_dev, "var"), batch(bs_glob, "var")
  assert np.all(var_dev < var_glob) and np.max(var_glob - var_dev) > 1e-3
  np.testing.assert_allclose(np.linalg.norm(k_dev, axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------
# checkpoints and the loop
# ---------------------------------------------------------------------------

def test_checkpointed_state_resumes_exactly(run, tmp_path):
  """Save after step 1, restore into a fresh state's structure, take step 2:
  the same state as the uninterrupted run (queue, pointer and key encoder
  included)."""
  method, (s0, s1, s2) = run["method"], run["states"]
  ck = Checkpointer(str(tmp_path / "ckpt"))
  ck.save(1, s1, force=True)
  ck.wait()
  restored = ck.restore(jax.eval_shape(lambda: s0))
  ck.close()
  assert isinstance(restored, MoCoState)
  _allclose_tree(restored, s1, rtol=0, atol=0)
  resumed, _ = run["step"](restored, run["batches"][1], run["key"])
  _allclose_tree(resumed, s2, rtol=1e-6, atol=1e-7)


def test_sharded_pretrain_matches_single_device_and_runs_the_knn_monitor(
    run, tmp_path):
  """pretrain() on the 8-device mesh (global-batch BN, no shuffle: the same
  semantics as one device) takes the fixture's two steps: equal states. It
  also logs the MoCo metrics and the kNN monitor."""
  require_devices(8)
  cfg = moco_config(log_every=2, checkpoint_every=2)
  cfg.monitor = ml_collections.ConfigDict(dict(
      every=1, num_train=40, num_test=24, k=5, t=0.1, batch_size=16))
  _, state = pretrain(cfg, str(tmp_path), dataset=run["ds"], stop_at=2,
                      progress=False,
                      monitor=lambda train, mesh: KNNMonitor.from_config(
                          cfg, train, mesh=mesh))
  assert jax.tree.leaves(state.params)[0].sharding.num_devices == 8
  s2 = run["states"][2]
  for name in ("params", "batch_stats", "opt_state", "key_params",
               "key_batch_stats", "queue", "queue_ptr", "step"):
    _allclose_tree(getattr(state, name), getattr(s2, name), rtol=2e-4, atol=2e-6)
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2]
  assert set(rows[0]) == {"step", "knn_acc"}
  assert {"loss", "mi_bound", "pos_sim", "neg_sim", "lr", "momentum",
          "images_per_sec", "knn_acc"} <= set(rows[1])
  np.testing.assert_allclose(rows[1]["loss"], run["metrics"][1]["loss"], rtol=1e-4)
  assert all(0.0 <= r["knn_acc"] <= 1.0 for r in rows)
  assert Checkpointer(str(tmp_path / "checkpoints")).all_steps() == [2]


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs")
SHIPPED = ("moco_v1_fashion_mnist", "moco_v2_fashion_mnist", "moco_cifar10",
           "moco_v1_imagenet", "moco_v2_imagenet")


def _shipped(name):
  return load_config_file(os.path.join(CONFIGS, f"{name}.py"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name):
  config = _shipped(name)
  assert config_problems(config, device_count=1) == []
  method, _ = build_method(config, 50000)
  assert isinstance(method, MoCo) and method.name == "moco"
  assert method.batch_size == config.batch_size
  assert method.queue_size == config.moco.queue_size
  assert method.temperature == config.temperature


@pytest.mark.parametrize("key,value,words", [
    ("moco.queue_size", 4000, ["K=4000", "256", "K=3840 or K=4096"]),
    ("moco.momentum", 1.5, ["[0, 1]", "--config.moco.momentum"]),
    ("moco.momentum_schedule", "cosin", ["'constant', 'cosine'"]),
    ("moco.bn_splits", 7, ["divides the batch size 256"]),
    ("temperature", 0.0, ["must be > 0", "--config.temperature"]),
])
def test_bad_values_name_their_key(key, value, words):
  config = _shipped("moco_v2_fashion_mnist")
  section, _, name = key.rpartition(".")
  (config[section] if section else config)[name] = value
  assert_only_problem(
      config_problems(config, device_count=1, check_shapes=False), key, *words)


def test_misspelt_key_suggests_the_closest():
  config = _shipped("moco_v2_fashion_mnist")
  config.moco.queue_sise = 8192
  [problem] = config_problems(config, device_count=1, check_shapes=False)
  assert problem.key == "moco.queue_sise"
  assert "did you mean 'moco.queue_size'" in problem.message


def test_order_after_keeps_the_value_and_blocks_nan():
  x = jnp.arange(6.0).reshape(2, 3)
  trees = ({"a": jnp.array([jnp.nan, 1.0]), "b": jnp.ones((2, 2))},
           {"loss": jnp.inf})
  np.testing.assert_array_equal(jax.jit(order_after)(x, *trees), x)
