"""The quick table: linear probe + weighted kNN on frozen features, next to the
same encoder at random initialization and raw pixels
(``experiments/linear_eval.py``, the main job's table).

It is the standard protocol (:mod:`ssljax.eval.standard`) without fine-tuning:
every choice (the probe's weight decay) on the run's fixed validation split,
the test split read once. Writes ``workdir/eval.json``::

    {"simclr": {"linear": 0.88, "knn": 0.86, "weight_decay": ...,
                "validation_linear": ..., "validation_knn": ...},
     "random_init": {...}, "raw_pixels": {...}}

(test accuracies as fractions of the full test split).
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax

from ssljax.eval import standard


def evaluate_run(run, *, baselines: bool = True, progress: bool = True,
                 eval_overrides: dict | None = None) -> dict:
  """Evaluate a restored run (:func:`ssljax.run.restore`) and write
  ``run.workdir/eval.json``.

  ``eval_overrides`` replaces keys of the run's saved ``config.eval`` (e.g.
  ``{"linear_epochs": 100}`` to re-evaluate an old run with today's probe).
  """
  config = run.config
  if eval_overrides:
    ev = config.eval
    unknown = [k for k in eval_overrides if k not in ev]
    if unknown:
      raise KeyError(f"unknown eval keys {unknown}; the run's eval config has "
                     f"{sorted(ev.keys())}.")
    config = type(config)(config.to_dict())
    config.eval = type(ev)({**ev.to_dict(), **eval_overrides})
    run = dataclasses.replace(run, config=config)
  options = dataclasses.replace(standard.ProtocolOptions(), do_finetune=False,
                                baselines=baselines, label_fractions=())
  out = standard.evaluate(run, options, progress=progress)
  results = {}
  for which, r in out["results"].items():
    name = config.method if which == "trained" else which
    results[name] = {"linear": r["linear"]["test"], "knn": r["knn"]["test"],
                     "weight_decay": r["linear"]["weight_decay"],
                     "validation_linear": r["linear"]["validation"],
                     "validation_knn": r["knn"]["validation"]}
  if jax.process_index() == 0:
    with open(os.path.join(run.workdir, "eval.json"), "w") as f:
      json.dump(results, f, indent=2)
  return {"results": results, "step": int(run.step), "seconds": out["seconds"],
          "test_examples": out["splits"]["sizes"][2],
          "train_examples": out["splits"]["sizes"][0],
          "validation_examples": out["splits"]["sizes"][1]}


def format_table(results: dict) -> str:
  lines = [f"{'encoder':<14} {'linear':>8} {'kNN':>8}", "-" * 32]
  for name, r in results.items():
    lines.append(f"{name:<14} {100 * r['linear']:>7.2f}% {100 * r['knn']:>7.2f}%")
  return "\n".join(lines)
