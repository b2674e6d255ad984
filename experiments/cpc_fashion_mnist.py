"""CPC v2-style image CPC on Fashion-MNIST: pre-train, then evaluate.

    python experiments/cpc_fashion_mnist.py \
        --config experiments/configs/cpc_fashion_mnist.py \
        --workdir workdirs/cpc_fmnist [--config.num_steps=2000]

Pre-training is ``ssljax.train.loop.pretrain`` (the same loop, checkpoints
and ``metrics.jsonl`` as ``experiments/pretrain.py``). Evaluation writes
``eval.json`` in ``--workdir``:

* linear-probe and weighted-kNN (k=200, t=0.1) accuracy on frozen features
  pooled over the 7x7 patch grid (``z``: mean patch embedding, ``c``: mean
  context, ``zc``: both), for the trained network and the same network at
  random initialization, plus raw pixels; probes train on the first
  ``eval.probe_train_examples`` training images and score the first
  ``eval.probe_test_examples`` test images (0 = all);
* the held-out per-step prediction accuracy (every patch of a test batch of
  ``batch_size`` images a candidate) for both networks.

``experiments/linear_eval.py --workdir ...`` evaluates the same checkpoint on
the full splits with the pool of ``config.cpc.pool``.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from ssljax.eval.features import extract_features
from ssljax.eval.knn import knn_accuracy
from ssljax.eval.linear import linear_probe_accuracy
from ssljax.parallel import make_data_mesh
from ssljax.train.checkpoint import CheckpointError
from ssljax.train.loop import (ConfigMismatchError, NonFiniteError, Preempted,
                               load_dataset, pretrain)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_RESUME = flags.DEFINE_bool(
    "resume", None, "As experiments/pretrain.py: unset resumes automatically "
    "when --workdir holds checkpoints of the same config; --noresume refuses.")


def _first(ds, n):
  n = len(ds) if not n else min(n, len(ds))
  return ds.images[:n], ds.labels[:n]


def evaluate(config, method, states, train, test, mesh):
  ev = config.eval
  tr_x, tr_y = _first(train, ev.probe_train_examples)
  te_x, te_y = _first(test, ev.probe_test_examples)

  def pooled(variables, x):
    z, c = method.representations(variables, x)
    return jnp.concatenate([z.mean((1, 2)), c.mean((1, 2))], -1)

  def scores(a, b, knn=True):
    out = {"linear": linear_probe_accuracy(
        a, tr_y, b, te_y, num_classes=train.num_classes, epochs=ev.linear_epochs,
        batch_size=ev.linear_batch_size, lr=ev.linear_lr,
        weight_decay=ev.linear_weight_decay, seed=config.seed)}
    if knn:
      out["knn"] = knn_accuracy(a, tr_y, b, te_y, num_classes=train.num_classes,
                                k=ev.knn_k, t=ev.knn_t)
    return out

  results = {}
  zd = method.model.encoder.features
  for name, state in states.items():
    t0 = time.perf_counter()
    variables = {"params": state.params}
    f_tr, f_te = (extract_features(pooled, variables, x, mesh=mesh,
                                   batch_size=ev.feature_batch_size,
                                   desc=f"{name} {split}")
                  for split, x in (("train", tr_x), ("test", te_x)))
    res = {"z": scores(f_tr[:, :zd], f_te[:, :zd]),
           "c": scores(f_tr[:, zd:], f_te[:, zd:], knn=False),
           "zc": scores(f_tr, f_te, knn=False)}
    loss_k, acc_k = method.held_out_prediction_accuracy(
        state, test.images, batch_size=config.batch_size, mesh=mesh,
        max_batches=ev.step_accuracy_batches)
    res["test_step_loss"] = [float(v) for v in loss_k]
    res["test_step_accuracy"] = [float(v) for v in acc_k]
    res["seconds"] = time.perf_counter() - t0
    results[name] = res
  raw = [x.reshape(len(x), -1).astype(np.float32) / 255.0 for x in (tr_x, te_x)]
  results["raw_pixels"] = {"pixels": scores(raw[0], raw[1])}
  results["probe_examples"] = {"train": len(tr_y), "test": len(te_y)}
  return results


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config, workdir = _CONFIG.value, _WORKDIR.value
  if config is None:
    raise app.UsageError("--config is required.")
  t_start = time.perf_counter()
  train, test = load_dataset(config, "train"), load_dataset(config, "test")
  resume = "auto" if _RESUME.value is None else _RESUME.value
  try:
    method, state = pretrain(config, workdir, dataset=train, resume=resume)
  except Preempted as e:
    print(f"pre-empted: {e}", flush=True)
    return 0
  except (ConfigMismatchError, FileExistsError, NonFiniteError,
          CheckpointError) as e:
    print(f"cpc_fashion_mnist: {e}", file=sys.stderr, flush=True)
    return 1
  t_train = time.perf_counter() - t_start
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  random_state = method.init(init_key, train.image_shape)
  mesh = make_data_mesh()
  results = evaluate(config, method, {"cpc": state, "random_init": random_state},
                     train, test, mesh)
  results["timing_seconds"] = {"train": t_train,
                               "total": time.perf_counter() - t_start}
  with open(os.path.join(workdir, "cpc_eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"{'features':<10} {'CPC lin':>8} {'random':>8} {'CPC kNN':>8} {'random':>8}")
  for pool in ("z", "c", "zc"):
    a, b = results["cpc"][pool], results["random_init"][pool]
    line = f"{pool:<10} {100 * a['linear']:>7.2f}% {100 * b['linear']:>7.2f}%"
    if "knn" in a:
      line += f" {100 * a['knn']:>7.2f}% {100 * b['knn']:>7.2f}%"
    print(line)
  px = results["raw_pixels"]["pixels"]
  print(f"raw pixels {100 * px['linear']:>7.2f}%          {100 * px['knn']:>7.2f}%")
  print("held-out accuracy per step k:",
        " ".join(f"{a:.3f}" for a in results["cpc"]["test_step_accuracy"]),
        "| random init:",
        " ".join(f"{a:.3f}" for a in results["random_init"]["test_step_accuracy"]))
  print(f"timing: {results['timing_seconds']}")
  return 0


if __name__ == "__main__":
  app.run(main)
