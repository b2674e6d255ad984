"""Evaluate a pretrained checkpoint every way the library knows
(``ssljax.eval.suite``): linear probes, kNN, clustering, pictures, few labels,
robustness, transfer, representation health and efficiency.

    python experiments/evaluate.py --workdir workdirs/simclr_fmnist
    python experiments/evaluate.py --workdir DIR --sections linear,knn,cluster

Writes ``DIR/eval_suite/report.json`` and PNGs beside it; sections already in
that report (same checkpoint step) are kept, so sections can be run one at a
time. Compare runs with ``experiments/report.py``.
"""

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

from absl import app, flags, logging

from ssljax.eval.suite import SECTIONS, SuiteOptions, evaluate_suite

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
  report = evaluate_suite(_WORKDIR.value, sections=_SECTIONS.value,
                          step=_STEP.value, options=opts, out_dir=_OUT.value,
                          skip_done=_SKIP_DONE.value)
  from ssljax.eval.report import markdown_report  # pylint: disable=import-outside-toplevel
  print(markdown_report([report], image_root=None))


if __name__ == "__main__":
  app.run(main)
