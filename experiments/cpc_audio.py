"""Sequence CPC on espeak-ng spoken words: pre-train, then evaluate.

    python experiments/cpc_audio.py --config experiments/configs/cpc_audio.py \
        --workdir workdirs/cpc_audio [--config.num_steps=1000]

Writes to ``--workdir``: ``config.json``, ``metrics.jsonl`` and TensorBoard
events (loss, ``acc_k<k>`` per step k, ``mi_bound``), the final Orbax
checkpoint, and ``eval.json``:

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

import functools
import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags
from tqdm.auto import tqdm

from ssljax.data import epoch_permutation, steps_per_epoch
from ssljax.data.speech import spoken_words
from ssljax.eval.features import extract_features
from ssljax.eval.linear import linear_probe_accuracy
from ssljax.parallel import (check_batch_divides, data_sharding, make_data_mesh,
                             replicated_sharding)
from ssljax.train.build import build_method
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import MetricWriter
from ssljax.train.loop import save_config
from ssljax.train.validate import validate_config

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)


def load_data(config, split: str):
  d = config.data
  return spoken_words(split, repeats=d.repeats, seed=d.seed, length=d.length,
                      test_fraction=d.test_fraction,
                      cache_dir=d.get("cache_dir") or None)


def audio_batches(audio: np.ndarray, batch_size: int, seed: int):
  """Global batches of clips, one seeded permutation per epoch."""
  spe = steps_per_epoch(len(audio), batch_size)
  epoch = 0
  while True:
    order = epoch_permutation(len(audio), seed, epoch)
    for i in range(spe):
      yield audio[order[i * batch_size:(i + 1) * batch_size]]
    epoch += 1


def train(config, workdir, train_ds, mesh):
  method, steps = build_method(config, len(train_ds))
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  state = jax.device_put(method.init(init_key, (train_ds.length,)),
                         replicated_sharding(mesh))
  step_fn = jax.jit(method.train_step, donate_argnums=0)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  it = audio_batches(train_ds.audio, config.batch_size, config.seed)
  t0, seen = time.perf_counter(), 0
  with jax.set_mesh(mesh), tqdm(total=steps, unit="step") as bar:
    for step in range(1, steps + 1):
      batch = jax.device_put(next(it), data_sharding(mesh, 2))
      state, metrics = step_fn(state, batch, data_key)
      seen += config.batch_size
      bar.update(1)
      if step % config.log_every == 0 or step == steps:
        metrics = jax.device_get(metrics)
        metrics["clips_per_sec"] = seen / (time.perf_counter() - t0)
        writer.write(step, metrics)
        bar.set_postfix(loss=f"{float(metrics['loss']):.3f}",
                        acc=f"{float(metrics['acc']):.3f}")
        t0, seen = time.perf_counter(), 0
  writer.close()
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=1)
  ckpt.save(steps, state, force=True)
  ckpt.close()
  random_state = method.init(init_key, (train_ds.length,))
  return method, state, random_state


def step_accuracy(method, state, audio, batch_size, mesh):
  """Mean per-step (loss, accuracy) over the full batches of ``audio``, each
  prediction scored against all B*T frames of its batch."""
  fn = jax.jit(functools.partial(method.prediction_accuracy, negatives="batch"))
  losses, accs = [], []
  with jax.set_mesh(mesh):
    for i in range(len(audio) // batch_size):
      x = jax.device_put(audio[i * batch_size:(i + 1) * batch_size],
                         data_sharding(mesh, 2))
      loss_k, acc_k = fn(state, x)
      losses.append(np.asarray(loss_k))
      accs.append(np.asarray(acc_k))
  return np.mean(losses, 0), np.mean(accs, 0)


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
    loss_k, acc_k = step_accuracy(method, state, test_ds.audio,
                                  config.batch_size, mesh)
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
  save_config(config, workdir)
  train_ds, test_ds = load_data(config, "train"), load_data(config, "test")
  t_data = time.perf_counter() - t_start
  method, state, random_state = train(config, workdir, train_ds, mesh)
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


if __name__ == "__main__":
  app.run(main)
