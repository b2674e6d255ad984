"""BYOL, SimSiam, Barlow Twins and VICReg on the method contract: each trains
through the one loop from a config, logs the representation-health metrics,
and a deliberately broken variant (SimSiam without its stop-gradient, VICReg
without its variance term) is caught by them. BYOL's target gets no gradient
and moves as the EMA of the online network. The losses themselves are tested
against numpy in tests/test_losses_noncontrastive.py."""

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import load_module, tiny_config, tiny_dataset

from ssljax.methods import get_method
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain
from ssljax.train.validate import checked_run, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH = ("effective_rank", "normalized_std", "collapsed_dim_fraction",
          "uniformity")
METHODS = ("byol", "simsiam", "barlow_twins", "vicreg", "dino")


def method_config(method, steps=6, **overrides):
  c = tiny_config(method=method, num_steps=steps)
  del c["temperature"]
  c.head = ml_collections.ConfigDict(dict(out_dim=16, hidden_dim=32,
                                          num_layers=2))
  if method == "dino":
    c.head.bottleneck_dim = 8
    c.global_augment = c.augment
    c.local_augment = ml_collections.ConfigDict(dict(c.augment, size=4))
    del c["augment"]
    c.num_local = 2
    c.freeze_last_layer_epochs = 1.0
    c.teacher_temp_warmup_epochs = 2.0
    c.teacher_temp = 0.07
  if method in ("byol", "simsiam"):
    c.predictor = ml_collections.ConfigDict(dict(hidden_dim=8, num_layers=2))
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.mark.parametrize("method", METHODS)
def test_shipped_config_is_valid_and_names_its_method(method):
  path = os.path.join(REPO, "experiments", "configs",
                      f"{method}_fashion_mnist.py")
  config = load_module(path, f"{method}_config").get_config()
  assert config.method == method
  validate_config(config, check_shapes=False)
  assert get_method(method).name == method


# SimSiam and VICReg train through the loop, with their health metrics
# checked, in test_health_metrics_catch_a_collapsing_variant.
@pytest.mark.parametrize("method", ("byol", "barlow_twins", "dino"))
def test_trains_through_the_loop_with_health_metrics(method, tmp_path):
  _, state = pretrain(method_config(method), str(tmp_path),
                      dataset=tiny_dataset(n=64), progress=False)
  assert int(state.step) == 6
  rows = read_jsonl(os.path.join(tmp_path, "metrics.jsonl"))
  for row in rows:
    for key in ("loss", *HEALTH):
      assert math.isfinite(row[key]), (key, row)
    assert 1.0 <= row["effective_rank"] <= 16.0
    assert 0.0 < row["normalized_std"] <= 1.0
  if method == "vicreg":
    assert {"invariance", "variance", "covariance"} <= set(rows[-1])


def test_simsiam_fixed_predictor_lr_trains_and_resumes(tmp_path):
  """optimizer.fixed_lr=("predictor",) (the paper's fixed predictor lr):
  the config validates, trains through the loop, and a resumed run ends
  where an uninterrupted one does (the split optimizer state checkpoints)."""
  def cfg(steps):
    c = method_config("simsiam", steps=steps)
    c.optimizer.fixed_lr = ("predictor",)
    c.checkpoint_every = 2
    return c
  validate_config(cfg(4), check_shapes=False)
  ds = tiny_dataset(n=64)
  _, whole = pretrain(cfg(4), str(tmp_path / "whole"), dataset=ds,
                      progress=False)
  pretrain(cfg(4), str(tmp_path / "cut"), dataset=ds, progress=False,
           stop_at=2)
  _, resumed = pretrain(cfg(4), str(tmp_path / "cut"), dataset=ds,
                        progress=False, resume=True)
  assert int(resumed.step) == 4
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _method_and_state(config, n=16):
  ds = tiny_dataset(n=n)
  method, _ = checked_run(config, ds)
  state = method.init(jax.random.key(0), ds.image_shape)
  return method, state, jnp.asarray(ds.images[:n])


def test_byol_target_gets_no_gradient_and_is_the_ema_of_the_online_net():
  method, state, images = _method_and_state(method_config("byol"))
  v1, v2 = method.views(images, jax.random.key(1))
  t1, t2, _ = method.targets(state.target_params, state.target_batch_stats,
                             v1, v2)
  grads = jax.grad(lambda t: method.loss(state.params, state.batch_stats, v1,
                                         v2, t[0], t[1])[0])((t1, t2))
  for g in jax.tree.leaves(grads):
    np.testing.assert_array_equal(np.asarray(g), 0.0)
  # The target network's parameters are not an input of the loss's gradient
  # at all; after one step they are m * old + (1 - m) * new online, with m
  # from the cosine schedule at step 0.
  new, metrics = jax.jit(method.train_step)(state, images, jax.random.key(2))
  m = float(method.momentum_at(0))
  assert m == pytest.approx(method.base_momentum)
  np.testing.assert_allclose(float(metrics["momentum"]), m)
  for old_t, new_on, new_t in zip(jax.tree.leaves(state.target_params),
                                  jax.tree.leaves(new.params["net"]),
                                  jax.tree.leaves(new.target_params)):
    np.testing.assert_allclose(
        np.asarray(new_t),
        m * np.asarray(old_t, np.float64) + (1 - m) * np.asarray(new_on),
        rtol=1e-6, atol=1e-7)
  # The online parameters did move.
  moved = [not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(state.params["net"]), jax.tree.leaves(new.params["net"]))]
  assert any(moved)


def test_byol_momentum_schedule_is_cosine_to_one():
  method, _, _ = _method_and_state(method_config("byol", steps=100))
  base, k = method.base_momentum, method.total_steps
  for step in (0, 25, 50, 100):
    want = 1 - (1 - base) * (math.cos(math.pi * step / k) + 1) / 2
    assert float(method.momentum_at(step)) == pytest.approx(want, abs=1e-7)


def test_simsiam_stop_gradient_is_on_the_projection_branch():
  method, state, images = _method_and_state(method_config("simsiam"))
  v1, v2 = method.views(images, jax.random.key(1))

  def loss_of_z(stop):
    m = method.__class__(**{**method.__dict__, "stop_gradient": stop})
    def f(params):
      return m.loss(params, state.batch_stats, v1, v2)[0]
    return f
  # With the stop-gradient the projector receives gradient only through the
  # predictor branch; without it, through both: the gradients differ.
  g_stop = jax.grad(loss_of_z(True))(state.params)
  g_free = jax.grad(loss_of_z(False))(state.params)
  diff = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(g_stop["net"]), jax.tree.leaves(g_free["net"]))]
  assert max(diff) > 0
  # The predictor's gradient is the same either way (it is never stopped).
  for a, b in zip(jax.tree.leaves(g_stop["predictor"]),
                  jax.tree.leaves(g_free["predictor"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-7)


def _final(tmp_path, name, config):
  workdir = str(tmp_path / name)
  pretrain(config, workdir, dataset=tiny_dataset(n=128), progress=False)
  return read_jsonl(os.path.join(workdir, "metrics.jsonl"))[-1]


@pytest.mark.parametrize("method, broken", [
    ("simsiam", {"stop_gradient": False}),
    ("vicreg", {"std_coeff": 0.0}),
])
def test_health_metrics_catch_a_collapsing_variant(method, broken, tmp_path):
  """The broken variant's features lose their spread (normalized std and
  effective rank fall) while the method's own keep it, on the same data,
  steps and seed."""
  steps = dict(steps=60, log_every=60, checkpoint_every=1000)
  healthy = _final(tmp_path, "healthy", method_config(method, **steps))
  bad = _final(tmp_path, "broken", method_config(method, **steps, **broken))
  assert bad["normalized_std"] < 0.75 * healthy["normalized_std"], (bad, healthy)
  assert bad["effective_rank"] < healthy["effective_rank"], (bad, healthy)


def test_dino_step_centre_teacher_and_frozen_prototypes():
  config = method_config("dino", steps=20, freeze_last_layer_epochs=2.0)
  method, state, images = _method_and_state(config, n=16)
  # 16 examples, batch 16: one step an epoch; 2 frozen epochs, 2 warm-up.
  assert method.freeze_last_layer_steps == 2
  assert method.teacher_temp_warmup_steps == 2
  g, loc = method.crops(images, jax.random.key(3))
  assert g.shape == (2, 16, 8, 8, 1) and loc.shape == (2, 16, 4, 4, 1)
  # The teacher's outputs get no gradient through the loss.
  teacher, _ = method._forward({"params": state.teacher_params,   # pylint: disable=protected-access
                                "batch_stats": state.teacher_batch_stats}, g)
  grad_t = jax.grad(lambda t: method.loss(
      state.params, state.batch_stats, g, loc, t, state.center, 0.04)[0])(
          teacher)
  np.testing.assert_array_equal(np.asarray(grad_t), 0.0)
  step = jax.jit(method.train_step)
  new, metrics = step(state, images, jax.random.key(4))
  # The centre: 0.9 * 0 + 0.1 * the mean teacher output over both global
  # crops of the batch (recomputed here from the same crops and teacher).
  g0, _ = method.crops(images, jax.random.fold_in(jax.random.key(4), 0))
  t0, _ = method._forward({"params": state.teacher_params,        # pylint: disable=protected-access
                           "batch_stats": state.teacher_batch_stats}, g0)
  np.testing.assert_allclose(
      np.asarray(new.center),
      0.1 * np.asarray(t0, np.float64).reshape(-1, t0.shape[-1]).mean(0),
      rtol=1e-4, atol=1e-6)
  # Teacher = EMA of the student after the step; temperature warms up.
  m = float(metrics["momentum"])
  for old_t, new_s, new_t in zip(jax.tree.leaves(state.teacher_params),
                                 jax.tree.leaves(new.params["net"]),
                                 jax.tree.leaves(new.teacher_params)):
    np.testing.assert_allclose(np.asarray(new_t), m * np.asarray(old_t) +
                               (1 - m) * np.asarray(new_s), rtol=1e-6,
                               atol=1e-7)
  temps = [float(method.teacher_temp_at(s)) for s in (0, 1, 2, 5)]
  np.testing.assert_allclose(temps, [0.04, 0.055, 0.07, 0.07], rtol=1e-6)
  # Steps 0-1 are in the frozen epochs (freeze_last_layer_epochs=2 here):
  # the prototypes do not move while the rest does; afterwards they train.
  proto = lambda st: [np.asarray(x) for p, x in
                      jax.tree_util.tree_leaves_with_path(st.params)
                      if "prototypes" in jax.tree_util.keystr(p)]
  rest = lambda st: [np.asarray(x) for p, x in
                     jax.tree_util.tree_leaves_with_path(st.params)
                     if "prototypes" not in jax.tree_util.keystr(p)]
  s1, _ = step(new, images, jax.random.key(4))
  assert all(np.array_equal(a, b) for a, b in zip(proto(state), proto(s1)))
  assert any(not np.array_equal(a, b) for a, b in zip(rest(new), rest(s1)))
  s2, _ = step(s1, images, jax.random.key(4))
  assert all(not np.array_equal(a, b) for a, b in zip(proto(s1), proto(s2)))
