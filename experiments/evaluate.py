"""Evaluate a pretrained checkpoint every way the library knows
(``ssljax.eval.suite``): linear probes, kNN, clustering, pictures, few labels,
robustness, transfer, representation health and efficiency. Methods that
their papers judge by their own measure (CPC, colorization, split-brain,
video colorization: ``ssljax.eval.by_method``) get that evaluation instead,
written to ``DIR/method_eval.json``.

    python experiments/evaluate.py --workdir workdirs/simclr_fmnist
    python experiments/evaluate.py --workdir DIR --sections linear,knn,cluster

Writes ``DIR/eval_suite/report.json`` and PNGs beside it; sections already in
that report (same checkpoint step) are kept, so sections can be run one at a
time. Compare runs with ``experiments/report.py``.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os

from absl import app, flags, logging

from ssljax.eval.by_method import METHOD_EVALUATIONS
from ssljax.eval.report import markdown_report
from ssljax.eval.suite import SECTIONS, SuiteOptions, evaluate_suite
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS),
                              f"Comma-separated subset of {SECTIONS}.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("out", None, "Output folder (default "
                           "WORKDIR/eval_suite).")
_FT_STEPS = flags.DEFINE_integer("finetune_steps", SuiteOptions.finetune_steps,
                                 "Fine-tuning steps per few-label point.")
_AUG_PRESET = flags.DEFINE_enum(
    "linear_aug_preset", SuiteOptions.linear_aug_preset, ["simclr", "moco"],
    "linear_aug section: the papers' augmented linear protocol to follow.")
_AUG_EPOCHS = flags.DEFINE_integer(
    "linear_aug_epochs", SuiteOptions.linear_aug_epochs,
    "linear_aug section: epochs (the papers: 90 SimCLR, 100 MoCo).")
_SKIP_DONE = flags.DEFINE_bool(
    "skip_done", False, "Do not measure again the sections that the report "
    "already holds for this checkpoint step.")
_EMBED = flags.DEFINE_list("embed", list(SuiteOptions.embed_methods),
                           "Embedding pictures: tsne and/or umap.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  opts = SuiteOptions(finetune_steps=_FT_STEPS.value,
                      embed_methods=tuple(_EMBED.value),
                      linear_aug_preset=_AUG_PRESET.value,
                      linear_aug_epochs=_AUG_EPOCHS.value)
  with restore(_WORKDIR.value, _STEP.value) as run:
    if run.config.method in METHOD_EVALUATIONS:
      out = _OUT.value or _WORKDIR.value
      os.makedirs(out, exist_ok=True)
      result = {"step": run.step, **METHOD_EVALUATIONS[run.config.method](
          run, out)}
      path = os.path.join(out, "method_eval.json")
      with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
      print(f"wrote {path}")
      return
    report = evaluate_suite(run, sections=_SECTIONS.value, options=opts,
                            out_dir=_OUT.value, skip_done=_SKIP_DONE.value)
  print(markdown_report([report], image_root=None))


if __name__ == "__main__":
  app.run(main)
