"""Choose the fine-tuning and from-scratch recipes of the evaluation protocol
(``ssljax.eval.standard.ProtocolOptions``) on the validation split.

    python benchmarks/finetune_recipe.py --workdir workdirs/reproduce/simclr_s0 \
        --out benchmarks/results/finetune_recipe.json

For each share of labels (the protocol's class-balanced subsets of the fit
split) and each learning rate of the grid, fine-tunes the run's pre-trained
encoder and trains the same network from scratch, for the protocol's step
counts, and records the validation accuracy (the test split is not read). The
protocol's defaults are the best learning rates found here (SGD, for the
BatchNorm ResNets). For another network, ``--optimizer adamw`` with
Adam-sized learning rates; put the winners in its config
(``eval.finetune_optimizer``, ``eval.finetune_lr``, ``eval.scratch_lr``:
``ssljax.eval.standard.protocol_options``).
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import dataclasses
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssljax.eval import standard  # noqa: E402
from ssljax.eval.provenance import provenance  # noqa: E402
from ssljax.run import restore  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished pretrain.py run.",
                               required=True)
_OUT = flags.DEFINE_string("out", "benchmarks/results/finetune_recipe.json",
                           "Results file.")
_PRE_LRS = flags.DEFINE_list("pretrained_lrs", ["0.01", "0.05", "0.2"],
                             "Fine-tuning learning rates.")
_SCRATCH_LRS = flags.DEFINE_list("scratch_lrs", ["0.03", "0.1", "0.3"],
                                 "From-scratch learning rates.")
_FULL = flags.DEFINE_bool("full", False, "Also train from scratch on all the "
                          "fit labels (standard.ALL_LABELS; the supervised "
                          "reference, reported on validation and test).")
_GRID = flags.DEFINE_bool("grid", True, "Run the learning-rate grids.")
_OPTIMIZER = flags.DEFINE_enum(
    "optimizer", "sgd", list(standard.ft.OPTIMIZERS), "Optimizer of both grids (and of "
    "--full): the protocol's SGD, or AdamW for networks trained with Adam "
    "(e.g. image CPC's LayerNorm patch encoder; then give it Adam-sized "
    "learning rates, e.g. --pretrained_lrs 3e-4,1e-3,3e-3).")


def main(argv):
  del argv
  opts = standard.ProtocolOptions()
  out = {"provenance": provenance(), "workdir": _WORKDIR.value,
         "optimizer": _OPTIMIZER.value, "grid": {}}
  with restore(_WORKDIR.value) as run:
    fit, val, _ = standard.splits(run)      # the test split is not used
    subsets = standard.label_subsets(fit.labels, opts.label_fractions,
                                     opts.subset_seed)
    plans = [("pretrained", run.state, dict(opts.finetune), _PRE_LRS.value),
             ("scratch", run.random_state, dict(opts.scratch), _SCRATCH_LRS.value)]
    for name, state, recipes, lrs in plans if _GRID.value else ():
      for fraction, idx in subsets.items():
        for lr in map(float, lrs):
          recipe = dataclasses.replace(recipes[fraction], lr=lr,
                                       optimizer=_OPTIMIZER.value)
          t0 = time.perf_counter()
          acc = standard.finetune_scores(run.method, state, fit, val, None,
                                         idx, recipe)["validation"]
          key = f"{name} {100 * fraction:g}%"
          out["grid"].setdefault(key, {})[lr] = {
              "validation": acc, "seconds": time.perf_counter() - t0,
              "recipe": dataclasses.asdict(recipe)}
          print(f"{key} lr={lr}: validation {100 * acc:.2f}% "
                f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if _FULL.value:
      # one recipe, no choice: the supervised reference, validation and test
      import numpy as np   # noqa: PLC0415
      recipe = dataclasses.replace(standard.ALL_LABELS[1],
                                   optimizer=_OPTIMIZER.value)
      t0 = time.perf_counter()
      res = standard.finetune_scores(run.method, run.random_state, fit, val,
                                     run.test, np.arange(len(fit)), recipe)
      out["scratch_all_labels"] = {**res, "seconds": time.perf_counter() - t0,
                                   "labels": len(fit)}
      print(f"scratch 100%: validation {100 * res['validation']:.2f}% test "
            f"{100 * res['test']:.2f}%", flush=True)
  out["best_lr"] = {k: max(v, key=lambda lr: v[lr]["validation"])
                    for k, v in out["grid"].items()}
  if os.path.exists(_OUT.value):      # keep the other part of an earlier run
    with open(_OUT.value) as f:
      old = json.load(f)
    for key in ("grid", "best_lr", "scratch_all_labels"):
      if not out.get(key) and old.get(key):
        out[key] = old[key]
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps(out["best_lr"]))


if __name__ == "__main__":
  app.run(main)
