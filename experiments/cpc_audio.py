"""Sequence CPC on espeak-ng spoken words: pre-train, then evaluate.

    python experiments/cpc_audio.py --config experiments/configs/cpc_audio.py \
        --workdir workdirs/cpc_audio [--config.num_steps=1000]

Writes to ``--workdir``: ``config.json``, ``metrics.jsonl`` and TensorBoard
events (loss, ``acc_k<k>`` per step k, ``mi_bound``), Orbax checkpoints, and
``eval.json``. Training is the shared loop of ``experiments/pretrain.py``
(``ssljax.train.pretrain`` with the spoken-words dataset): SIGTERM/SIGINT
save a checkpoint and exit, re-running the command resumes (``--noresume``
refuses a workdir with checkpoints), a non-finite loss stops the run.
``eval.json`` holds:

* linear-probe accuracy of word identity and voice identity on the held-out
  utterances, from frozen features pooled over time (``c``: mean context,
  ``z``: mean encoder output, ``c_last``: the last context vector), for the
  trained network and the same network at its random initialization;
* the held-out per-step prediction accuracy and loss (candidates: all
  ``batch_size * T`` frames of a test batch, whatever the training candidate
  set) for both.

The dataset (``ssljax.data.speech.spoken_words``) is synthesized with
espeak-ng on first use and cached.
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
from absl import app, flags, logging
from ml_collections import config_flags

from ssljax.data.speech import spoken_words
from ssljax.eval.features import extract_features
from ssljax.eval.linear import linear_probe_accuracy
from ssljax.parallel import check_batch_divides, make_data_mesh
from ssljax.train.checkpoint import CheckpointError
from ssljax.train.loop import (ConfigMismatchError, NonFiniteError, Preempted,
                               pretrain)
from ssljax.train.validate import validate_config

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_RESUME = flags.DEFINE_bool(
    "resume", None, "As experiments/pretrain.py: unset resumes automatically "
    "when --workdir holds checkpoints of the same config; --noresume refuses.")


def load_data(config, split: str):
  d = config.data
  return spoken_words(split, repeats=d.repeats, seed=d.seed, length=d.length,
                      test_fraction=d.test_fraction,
                      cache_dir=d.get("cache_dir") or None)


def train(config, workdir, train_ds, resume):
  """Pre-train with the shared loop (checkpoints, resume, SIGTERM/SIGINT
  save-and-exit, non-finite guard); returns the method, the trained state and
  the same network at its random initialization."""
  method, state = pretrain(config, workdir, dataset=train_ds, resume=resume)
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  random_state = method.init(init_key, train_ds.input_shape)
  return method, state, random_state


def evaluate(config, method, states, train_ds, test_ds, mesh):
  ev = config.eval

  def pooled(variables, x):
    z, c = method.representations(variables, x)
    return jax.numpy.concatenate([z.mean(1), c.mean(1), c[:, -1]], -1)

  results = {}
  for name, state in states.items():
    t0 = time.perf_counter()
    variables = {"params": state.params}
    feats = {}
    for split, ds in (("train", train_ds), ("test", test_ds)):
      f = extract_features(pooled, variables, ds.audio, mesh=mesh,
                           batch_size=ev.feature_batch_size, desc=f"{name} {split}")
      zd, cd = method.model.encoder.features[-1], method.model.context.features
      feats[split] = {"z": f[:, :zd], "c": f[:, zd:zd + cd],
                      "c_last": f[:, zd + cd:]}
    res = {}
    for pool in ev.pools:
      for label in ("word", "voice"):
        num_classes = len(getattr(train_ds, label + "s"))
        res[f"{label}/{pool}"] = linear_probe_accuracy(
            feats["train"][pool], getattr(train_ds, label),
            feats["test"][pool], getattr(test_ds, label),
            num_classes=num_classes, epochs=ev.linear_epochs,
            batch_size=ev.linear_batch_size, lr=ev.linear_lr,
            weight_decay=ev.linear_weight_decay, seed=config.seed)
    loss_k, acc_k = method.held_out_prediction_accuracy(
        state, test_ds.audio, batch_size=config.batch_size, mesh=mesh)
    res["test_step_loss"] = [float(v) for v in loss_k]
    res["test_step_accuracy"] = [float(v) for v in acc_k]
    res["seconds"] = time.perf_counter() - t0
    results[name] = res
  return results


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config, workdir = _CONFIG.value, _WORKDIR.value
  if config is None:
    raise app.UsageError("--config is required.")
  t_start = time.perf_counter()
  mesh = make_data_mesh()
  validate_config(config)
  check_batch_divides(config.batch_size, mesh)
  train_ds, test_ds = load_data(config, "train"), load_data(config, "test")
  t_data = time.perf_counter() - t_start
  resume = "auto" if _RESUME.value is None else _RESUME.value
  try:
    method, state, random_state = train(config, workdir, train_ds, resume)
  except Preempted as e:
    print(f"pre-empted: {e}", flush=True)
    return 0
  except (ConfigMismatchError, FileExistsError, NonFiniteError,
          CheckpointError) as e:
    print(f"cpc_audio: {e}", file=sys.stderr, flush=True)
    return 1
  t_train = time.perf_counter() - t_start - t_data
  results = evaluate(config, method, {"cpc": state, "random_init": random_state},
                     train_ds, test_ds, mesh)
  results["timing_seconds"] = {"data": t_data, "train": t_train,
                               "total": time.perf_counter() - t_start}
  results["dataset"] = {"train": len(train_ds), "test": len(test_ds),
                        "words": list(train_ds.words),
                        "voices": list(train_ds.voices)}
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"{'features':<16} {'CPC':>8} {'random':>8}")
  for key in results["cpc"]:
    if "/" in key:
      print(f"{key:<16} {100 * results['cpc'][key]:>7.2f}% "
            f"{100 * results['random_init'][key]:>7.2f}%")
  print("held-out accuracy per step k:",
        " ".join(f"{a:.3f}" for a in results["cpc"]["test_step_accuracy"]))
  print("random init:                 ",
        " ".join(f"{a:.3f}" for a in results["random_init"]["test_step_accuracy"]))
  print(f"timing: {results['timing_seconds']}")
  return 0


if __name__ == "__main__":
  app.run(main)
