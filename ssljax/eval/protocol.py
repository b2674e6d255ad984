"""Evaluate a pre-training run: linear probe + weighted kNN on frozen features,
next to the same encoder at random initialization and raw pixels.

Writes ``workdir/eval.json``::

    {"simclr": {"linear": 0.88, "knn": 0.86},
     "random_init": {"linear": ..., "knn": ...},
     "raw_pixels": {"linear": ..., "knn": ...}}

(accuracies as fractions of the full test split).

The run comes from the caller, restored (``ssljax.run.restore(workdir)``, as
``experiments/linear_eval.py`` does); this module needs only its ``config``,
``train`` / ``test`` splits, ``step``, ``workdir``, ``random_state`` and its
restore-and-encode function ``encode(images, state=None, ...)``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from ssljax.eval.knn import knn_accuracy
from ssljax.eval.linear import linear_probe


def _scores(train_x, train_y, test_x, test_y, num_classes, ev, seed):
  wd = ev.linear_weight_decay
  lin = linear_probe(
      train_x, train_y, test_x, test_y, num_classes=num_classes,
      solver=ev.get("linear_solver", "sgd"), l2=ev.get("linear_l2"),
      epochs=ev.linear_epochs, batch_size=ev.linear_batch_size, lr=ev.linear_lr,
      weight_decay=tuple(wd) if isinstance(wd, (list, tuple)) else wd, seed=seed)
  knn = knn_accuracy(train_x, train_y, test_x, test_y, num_classes=num_classes,
                     k=ev.knn_k, t=ev.knn_t)
  reg = {k: lin[k] for k in ("weight_decay", "l2") if k in lin}
  return {"linear": lin["accuracy"], "knn": knn, **reg}


def evaluate_run(run, *, baselines: bool = True, progress: bool = True,
                 eval_overrides: dict | None = None) -> dict:
  """Evaluate a restored run (:func:`ssljax.run.restore`: its checkpoint, the
  latest or the one asked for) and write ``run.workdir/eval.json``.

  ``eval_overrides`` replaces keys of the run's saved ``config.eval`` (e.g.
  ``{"linear_epochs": 100}`` to re-evaluate an old run with today's probe).
  """
  config = run.config
  ev = config.eval
  if eval_overrides:
    unknown = [k for k in eval_overrides
               if k not in ev and k not in ("linear_solver", "linear_l2")]
    if unknown:
      raise KeyError(f"unknown eval keys {unknown}; the run's eval config has "
                     f"{sorted(ev.keys())}.")
    # a fresh ConfigDict: an override may change a value's type (a float
    # weight decay -> a tuple to select from)
    ev = type(ev)({**ev.to_dict(), **eval_overrides})
  train, test = run.train, run.test

  results, timings = {}, {}
  encoders = {config.method: None}          # None: the restored state
  if baselines:
    encoders["random_init"] = run.random_state
  for name, state in encoders.items():
    t0 = time.perf_counter()
    feats = [run.encode(ds.images, state=state, batch_size=ev.feature_batch_size,
                        desc=f"{name} {split}", progress=progress)
             for split, ds in (("train", train), ("test", test))]
    results[name] = _scores(feats[0], train.labels, feats[1], test.labels,
                            train.num_classes, ev, config.seed)
    timings[name] = time.perf_counter() - t0
  if baselines:
    t0 = time.perf_counter()
    raw = [ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0
           for ds in (train, test)]
    results["raw_pixels"] = _scores(raw[0], train.labels, raw[1], test.labels,
                                    train.num_classes, ev, config.seed)
    timings["raw_pixels"] = time.perf_counter() - t0
  if jax.process_index() == 0:
    with open(os.path.join(run.workdir, "eval.json"), "w") as f:
      json.dump(results, f, indent=2)
  return {"results": results, "step": int(run.step), "seconds": timings,
          "test_examples": len(test), "train_examples": len(train)}


def format_table(results: dict) -> str:
  lines = [f"{'encoder':<14} {'linear':>8} {'kNN':>8}", "-" * 32]
  for name, r in results.items():
    lines.append(f"{name:<14} {100 * r['linear']:>7.2f}% {100 * r['knn']:>7.2f}%")
  return "\n".join(lines)
