"""Optimizers, schedules, checkpoints, logging and resumable pre-training."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_config, tiny_dataset
from ssljax.parallel import check_batch_divides
from ssljax.train import (make_optimizer, scale_learning_rate,
                          warmup_cosine_schedule, weight_decay_mask)
from ssljax.train.checkpoint import CheckpointError, Checkpointer
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain


def test_lr_scaling_rules():
  assert scale_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
  assert scale_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
  with pytest.raises(ValueError, match="rule"):
    scale_learning_rate(0.3, 256, "cubic")


def test_warmup_cosine_schedule_values():
  s = warmup_cosine_schedule(1.0, total_steps=110, warmup_steps=10)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  # half-way through the cosine part: 0.5 * (1 + cos(pi/2)) = 0.5
  assert float(s(60)) == pytest.approx(0.5, abs=1e-6)
  assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_weight_decay_mask_excludes_bias_and_bn():
  params = {"conv": {"kernel": jnp.ones((3, 3, 1, 4))},
            "bn": {"scale": jnp.ones(4), "bias": jnp.ones(4)},
            "dense": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)}}
  m = weight_decay_mask(params)
  assert m == {"conv": {"kernel": True}, "bn": {"scale": False, "bias": False},
               "dense": {"kernel": True, "bias": False}}


def test_lars_skips_adaptation_and_decay_on_bias():
  """Hand computation of one LARS step (You et al. 2017; SimCLR's set-up)."""
  params = {"w": jnp.array([[3.0, 4.0]]), "bias": jnp.array([1.0, 2.0])}
  grads = {"w": jnp.array([[0.6, 0.8]]), "bias": jnp.array([0.5, 0.5])}
  lr, wd, eta = 0.1, 0.01, 1e-3
  tx = make_optimizer("lars", lr, weight_decay=wd, trust_coefficient=eta,
                      mask=lambda p: {"w": True, "bias": False})
  updates, _ = tx.update(grads, tx.init(params), params)
  # w: g' = g + wd*w; trust = eta*||w||/||g'||; update = -lr*trust*g'
  g = np.array([[0.6, 0.8]]) + wd * np.array([[3.0, 4.0]])
  trust = eta * 5.0 / np.linalg.norm(g)
  np.testing.assert_allclose(updates["w"], -lr * trust * g, rtol=1e-5)
  np.testing.assert_allclose(updates["bias"], -lr * np.array([0.5, 0.5]), rtol=1e-6)


def test_sgd_and_adamw_and_unknown():
  p = {"w": jnp.ones((2, 2))}
  for name in ("sgd", "adamw"):
    tx = make_optimizer(name, 0.1, weight_decay=1e-4)
    u, _ = tx.update(p, tx.init(p), p)
    assert jax.tree.leaves(u)[0].shape == (2, 2)
  with pytest.raises(ValueError, match="optimizer"):
    make_optimizer("rmsprop", 0.1)


def test_fixed_lr_group_skips_the_schedule():
  """optimizer.fixed_lr=("predictor",) (SimSiam's fixed predictor lr): plain
  SGD, cosine over 10 steps from peak 0.4 -- at each step the net moves by
  -lr_k * g with lr_k the cosine value, the predictor by -0.4 * g; a group
  the parameters lack is an error naming it."""
  from ssljax.train.optim import OptimizerConfig   # noqa: PLC0415
  cfg = OptimizerConfig(name="sgd", base_lr=0.4, lr_scaling="none",
                        momentum=0.0, fixed_lr=("predictor",))
  tx, schedule = cfg.make(steps=10, batch_size=4, num_examples=40)
  params = {"net": {"w": jnp.ones((2, 2))}, "predictor": {"w": jnp.ones((2, 2)),
                                                          "b": jnp.ones(2)}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for k in range(4):
    upd, state = update(grads, state, params)
    lr_k = 0.4 * 0.5 * (1 + np.cos(np.pi * k / 10))
    np.testing.assert_allclose(upd["net"]["w"], -lr_k * 0.5, rtol=1e-6)
    np.testing.assert_allclose(upd["predictor"]["w"], -0.4 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(upd["predictor"]["b"], -0.4 * 0.5, rtol=1e-6)
    assert float(schedule(k)) == pytest.approx(lr_k, rel=1e-6)
  bad = OptimizerConfig(name="sgd", fixed_lr=("predictr",)).make(
      steps=10, batch_size=4, num_examples=40)[0]
  with pytest.raises(ValueError, match="predictr"):
    bad.init(params)


def test_batch_not_dividing_over_devices_is_a_clear_error():
  with pytest.raises(ValueError, match="does not divide over 8 devices.*multiple of 8"):
    check_batch_divides(12, 8)


def _params(state):
  return jax.tree.map(np.asarray, state.params)


def test_pretrain_logs_checkpoints_and_resume_matches_uninterrupted(tmp_path):
  ds = tiny_dataset(n=64)
  cfg = tiny_config()
  _, full = pretrain(cfg, str(tmp_path / "full"), dataset=ds, progress=False)
  assert int(full.step) == 6
  rows = read_jsonl(str(tmp_path / "full" / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [2, 4, 6]
  assert {"loss", "mi_bound", "pos_sim", "neg_sim", "lr", "images_per_sec"} <= set(rows[0])
  assert any(f.startswith("events.out.tfevents")
             for f in os.listdir(tmp_path / "full" / "tb"))
  assert Checkpointer(str(tmp_path / "full" / "checkpoints")).all_steps() == [3, 6]
  assert json.load(open(tmp_path / "full" / "config.json"))["batch_size"] == 16

  # Pre-empted after step 4, then resumed: same parameters as uninterrupted.
  _, part = pretrain(cfg, str(tmp_path / "resumed"), dataset=ds, stop_at=4,
                     progress=False)
  assert int(part.step) == 4
  _, resumed = pretrain(cfg, str(tmp_path / "resumed"), dataset=ds, resume=True,
                        progress=False)
  assert int(resumed.step) == 6
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               _params(resumed), _params(full))

  # A second run in the same workdir without --resume would overwrite: refused.
  with pytest.raises(FileExistsError, match="--resume"):
    pretrain(cfg, str(tmp_path / "full"), dataset=ds, progress=False)


def test_corrupt_checkpoint_gives_clear_error_and_keeps_files(tmp_path):
  state = {"w": jnp.arange(4.0), "step": jnp.array(3)}
  ck = Checkpointer(str(tmp_path), every=1)
  ck.save(1, state, force=True)
  ck.save(2, state, force=True)
  ck.wait()
  # Corrupt step 2: truncate every data file in it.
  for root, _, files in os.walk(tmp_path / "2"):
    for f in files:
      if not f.startswith("_"):
        open(os.path.join(root, f), "wb").close()
  with pytest.raises(CheckpointError, match="step 2.*step 1"):
    ck.restore(state)
  assert sorted(ck.all_steps()) == [1, 2]
  restored = ck.restore(state, step=1)
  np.testing.assert_array_equal(restored["w"], np.arange(4.0))
  ck.close()


def test_restore_without_checkpoint_is_clear(tmp_path):
  ck = Checkpointer(str(tmp_path / "none"))
  with pytest.raises(CheckpointError, match="no checkpoint"):
    ck.restore({"w": jnp.zeros(2)})
