"""Evaluate a pretrained checkpoint.

    python experiments/evaluate.py --workdir workdirs/simclr_fmnist
    python experiments/evaluate.py --workdir DIR --results benchmarks/results/x.json
    python experiments/evaluate.py --workdir DIR --suite linear,knn,cluster,pictures

Image methods get the standard protocol (``ssljax.eval.standard``, the README
table's numbers): linear probe and weighted kNN on frozen features, 1% and 10%
of the labels (frozen probe and fine-tuning), next to the same network at
random init, raw pixels and the same network trained from scratch on the
labels alone; every choice on the validation split, the test split read once.
Writes ``DIR/eval_protocol.json`` (and ``--results``, with the command, commit,
date and machine). The baselines do not depend on the pre-training, so each is
computed once and cached in ``--baselines``: the from-scratch network per
network and label subset (5 minutes for the SimCLR network on a 2-core CPU),
the random-init network's probes and kNN per network and seed, the raw
pixels' per dataset. With them cached, the evaluation of a run of the SimCLR
network takes 5 min 25 s on a 2-core CPU, 40 s of it for the frozen probes
and kNN and 4 min 37 s for fine-tuning on 1% and 10% of the labels (3,000
SGD steps of 128 images), against 9 min 4 s of parts uncached
(``benchmarks/results/evaluate_time_cached.json``); ``--no_finetune`` skips
the fine-tuning.

Methods that their papers judge by their own measure (CPC on sequences,
colorization, split-brain, video colorization: ``ssljax.eval.by_method``) get
that evaluation, written to ``DIR/method_eval.json`` (colorization and
split-brain trained on ``colour_crops``: the colorization quality on its test
sources, a picture of held-out crops, and linear probes of the frozen
encoders for source identification and Fashion-MNIST).

``--suite`` runs sections of the extended suite instead (``ssljax.eval.suite``:
clustering, pictures, robustness, transfer, health, efficiency, the augmented
linear protocol), written to ``DIR/eval_suite/report.json``; compare runs with
``experiments/report.py``.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import dataclasses
import json
import os
import sys

from absl import app, flags, logging

from ssljax.cli import flags_parser
from ssljax.eval import standard
from ssljax.eval.by_method import METHOD_EVALUATIONS
from ssljax.eval.provenance import provenance
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_RESULTS = flags.DEFINE_string("results", None, "Also write the results, with "
                               "their provenance, to this JSON file.")
_BASELINES = flags.DEFINE_string("baselines", "workdirs/baselines",
                                 "Cache of the baselines that do not depend "
                                 "on the pre-training (from scratch, random "
                                 "init, raw pixels).")
_NO_FINETUNE = flags.DEFINE_bool("no_finetune", False, "Skip fine-tuning and "
                                 "the from-scratch baseline (about 1 minute).")
_ALL_LABELS = flags.DEFINE_bool(
    "scratch_all_labels", False, "Also train the network from scratch on all "
    "the fit labels (the supervised reference; about 10 minutes on 2 cores).")
_SUITE = flags.DEFINE_list("suite", [], "Run these sections of the extended "
                           "suite instead (ssljax.eval.suite.SECTIONS, or all).")
_SKIP_DONE = flags.DEFINE_bool("skip_done", True, "Do nothing when the "
                               "results already hold this checkpoint step "
                               "(--suite: keep the sections already measured).")
_FT_STEPS = flags.DEFINE_integer("finetune_steps", 400, "--suite few_labels: "
                                 "fine-tuning steps per point.")
_AUG_PRESET = flags.DEFINE_enum(
    "linear_aug_preset", "simclr", ["simclr", "moco"],
    "--suite linear_aug: the papers' augmented linear protocol to follow.")
_AUG_EPOCHS = flags.DEFINE_integer(
    "linear_aug_epochs", 10, "--suite linear_aug: epochs (the papers: 90 "
    "SimCLR, 100 MoCo; not in the default protocol: 10 epochs stop short).")
_EMBED = flags.DEFINE_list("embed", ["tsne", "umap"],
                           "--suite pictures: tsne and/or umap.")


def _write(result: dict, *paths: str | None) -> None:
  result = {**result, "provenance": provenance()}
  for path in paths:
    if path:
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
      print(f"wrote {path}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    run = restore(_WORKDIR.value, _STEP.value)
  except FileNotFoundError as e:
    print(f"evaluate: {e}", file=sys.stderr)
    return 1
  with run:
    method = run.config.method
    digest = standard.tree_digest(run.state.params)
    if _SUITE.value:
      from ssljax.eval.report import markdown_report   # noqa: PLC0415
      from ssljax.eval.suite import (SECTIONS, SuiteOptions,  # noqa: PLC0415
                                     evaluate_suite)
      sections = SECTIONS if _SUITE.value == ["all"] else _SUITE.value
      opts = SuiteOptions(finetune_steps=_FT_STEPS.value,
                          embed_methods=tuple(_EMBED.value),
                          linear_aug_preset=_AUG_PRESET.value,
                          linear_aug_epochs=_AUG_EPOCHS.value)
      report = evaluate_suite(run, sections=sections, options=opts,
                              skip_done=_SKIP_DONE.value)
      print(markdown_report([report], image_root=None))
      return 0
    if method in METHOD_EVALUATIONS:
      out = os.path.join(_WORKDIR.value, "method_eval.json")
      if _SKIP_DONE.value and standard.holds_checkpoint(
          _RESULTS.value or out, run.step, digest):
        print(f"{_RESULTS.value or out} already holds step {run.step}")
        return 0
      result = {"method": method, "step": run.step, "params_sha256": digest,
                **METHOD_EVALUATIONS[method](run, _WORKDIR.value)}
      _write(result, out, _RESULTS.value)
      return 0
    out = os.path.join(_WORKDIR.value, "eval_protocol.json")
    if _SKIP_DONE.value and standard.holds_checkpoint(
        _RESULTS.value or out, run.step, digest):
      print(f"{_RESULTS.value or out} already holds step {run.step}")
      return 0
    options = standard.protocol_options(run.config)
    options = dataclasses.replace(
        options, do_finetune=not _NO_FINETUNE.value,
        scratch=options.scratch + ((standard.ALL_LABELS,)
                                   if _ALL_LABELS.value else ()))
    result = standard.evaluate(run, options, cache_dir=_BASELINES.value)
    result["workdir"] = _WORKDIR.value
    result["params_sha256"] = digest
  print(standard.format_summary(result))
  _write(result, out, _RESULTS.value)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=flags_parser("evaluate"))
