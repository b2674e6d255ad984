"""Colorization / split-brain on ``colour_crops`` with the checkpoint chosen
on the validation sources (early stopping), then evaluated once on the test
sources.

    python experiments/pretrain.py \\
        --config experiments/configs/colorization_colour_crops.py \\
        --workdir workdirs/colorization_ckpts --config.keep_checkpoints=10
    python experiments/colorization_select_step.py \\
        --workdir workdirs/colorization_ckpts \\
        --results benchmarks/results/colorization_colour_crops_select_eval.json

Every kept checkpoint is scored on the validation split of the dataset
(``colour_crops:validation``, 4 sources never trained on and never tested
on) by its rebalanced AuC (``ssljax.eval.by_method.colorization_step_curve``);
the chosen checkpoint then gets the evaluation of ``experiments/evaluate.py``
(``evaluate_colour_crops_run``: colorization quality, per source, picture,
feature probes), written with the selection curve to
``WORKDIR/method_eval_selected.json`` and ``--results``.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os

from absl import app, flags, logging

from ssljax.eval.by_method import (colorization_step_curve,
                                   evaluate_colour_crops_run)
from ssljax.eval.provenance import provenance
from ssljax.run import restore
from ssljax.train.start import load_dataset

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py run on "
                               "colour_crops (colorization or splitbrain).",
                               required=True)
_RESULTS = flags.DEFINE_string("results", None, "Also write the results, with "
                               "their provenance, to this JSON file.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  with restore(_WORKDIR.value) as run:
    if run.config.method not in ("colorization", "splitbrain") or (
        run.config.dataset != "colour_crops"):
      raise app.UsageError(
          f"{_WORKDIR.value} is a {run.config.method} run on "
          f"{run.config.dataset}; this script takes colorization or splitbrain "
          "runs on colour_crops.")
    selection = colorization_step_curve(
        run, load_dataset(run.config, "validation"))
  for step, scores in selection["by_step"].items():
    print(f"step {step:>6}: validation rebalanced AuC "
          f"{scores['auc_rebalanced']:.4f}, raw {scores['auc']:.4f}")
  print(f"chosen on validation: step {selection['chosen_step']}")
  with restore(_WORKDIR.value, selection["chosen_step"]) as run:
    result = {"method": run.config.method, "step": run.step,
              "step_selection": selection,
              **evaluate_colour_crops_run(run, _WORKDIR.value)}
  out = os.path.join(_WORKDIR.value, "method_eval_selected.json")
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1, default=str)
  if _RESULTS.value:
    os.makedirs(os.path.dirname(_RESULTS.value) or ".", exist_ok=True)
    with open(_RESULTS.value, "w", encoding="utf-8") as f:
      json.dump({**result, "provenance": provenance()}, f, indent=1,
                default=str)
    print(f"wrote {_RESULTS.value}")
  col = result["colorization"]
  print("test sources, rebalanced AuC: trained "
        f"{col['trained']['T=0.38']['auc_rebalanced']:.4f}, random init "
        f"{col['random_init']['T=0.38']['auc_rebalanced']:.4f}, gray "
        f"{col['gray_ab0']['auc_rebalanced']:.4f}")


if __name__ == "__main__":
  app.run(main)
