"""The evaluation suite end to end on a tiny run (scikit-learn digits): every
section writes its figures and pictures, and the report compares runs."""

import json
import os

import numpy as np

from helpers import tiny_config

from ssljax.eval.by_method import METHOD_EVALUATIONS
from ssljax.eval.report import markdown_report, write_report
from ssljax.eval.suite import SECTIONS, SuiteOptions, evaluate_suite
from ssljax.methods import METHODS
from ssljax.run import restore
from ssljax.train.loop import pretrain


def test_suite_all_sections_and_report(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_config(dataset="digits", num_steps=4, checkpoint_every=2,
                       batch_size=32)
  # a weight-decay grid, as the shipped configs use (chosen on held-out data)
  config.eval = type(config.eval)({
      **config.eval.to_dict(), "knn_k": 10, "feature_batch_size": 64,
      "linear_batch_size": 64, "linear_weight_decay": (1e-4, 1e-2)})
  pretrain(config, workdir, progress=False)
  opts = SuiteOptions(embed_points=100, embed_methods=("tsne",),
                      label_fractions=(0.1,), label_curve=(5, 0),
                      finetune_steps=3, finetune_batch=16,
                      corruptions=("gaussian_noise", "occlusion"),
                      severities=(1, 5), health_examples=64,
                      efficiency_knn_train=200, efficiency_knn_test=50,
                      linear_aug_epochs=2, linear_aug_batch=32)
  # two calls: sections measured earlier are kept in report.json
  with restore(workdir) as run:
    assert run.step == 4 and run.checkpoint_steps() == [2, 4]
    first = evaluate_suite(run, sections=("linear", "knn"), options=opts,
                           progress=False, log=lambda *_: None)
  # all sections, skipping those already measured (the same figures, timings)
  logged = []
  with restore(workdir) as run:
    rep = evaluate_suite(run, sections=SECTIONS, options=opts,
                         progress=False, log=logged.append, skip_done=True)
  assert rep["seconds"]["linear"] == first["seconds"]["linear"]
  assert rep["sections"]["knn"] == first["sections"]["knn"]
  assert sum("kept from the earlier report" in m for m in logged) == 2
  s = rep["sections"]
  print("section seconds", {k: round(v, 1) for k, v in rep["seconds"].items()})
  assert set(s) == set(SECTIONS) and rep["step"] == 4
  for name in ("trained", "random_init", "raw_pixels"):
    for solver in ("sgd", "lbfgs"):
      assert 0.0 <= s["linear"][name][solver] <= 1.0
  # raw pixels of digits are easy: the probe must do far better than chance
  assert s["linear"]["raw_pixels"]["lbfgs"] > 0.8
  assert 0 <= s["cluster"]["raw_pixels"]["nmi"] <= 1
  # 10% of each class of the 1,350 training images (the last 150 of digits'
  # 1,500 are the validation split), rounded per class
  from ssljax import data
  counts = np.bincount(data.load("digits", "train").labels[:1350])
  assert s["few_labels"]["fractions"]["0.1"]["labels"] == sum(
      round(0.1 * c) for c in counts)
  assert s["few_labels"]["curve"]["5"]["labels"] == 50
  # the robustness probe is the linear section's SGD probe, on clean images
  # (up to one test image: numpy vs XLA float32 logits)
  assert abs(s["robustness"]["clean"] - s["linear"]["trained"]["sgd"]) <= 1 / 297
  assert s["transfer"]["dataset"] == "digits"
  assert s["health"]["trained"]["feature_dim"] == 8
  assert [p["step"] for p in s["efficiency"]["checkpoints"]] == [2, 4]
  t2, t4 = (p["train_seconds"] for p in s["efficiency"]["checkpoints"])
  assert 0 < t2 < t4
  assert 0.0 <= s["linear_aug"]["trained"] <= 1.0
  assert len(s["linear_aug"]["trained_losses"]) == 2
  assert list(s["linear_aug"]["settings"]["crop_area"]) == [0.3, 1.0]  # the run's
  out = os.path.join(workdir, "eval_suite")
  for rel in ("embedding_tsne.png", "retrieval.png", "curves.png",
              "label_curve.png", "accuracy_vs_time.png"):
    with open(os.path.join(out, rel), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", rel
  with open(os.path.join(out, "report.json")) as f:
    assert json.load(f)["sections"].keys() == s.keys()

  md, html = write_report([workdir, workdir], str(tmp_path / "report"))
  text = open(md).read()
  assert "## Linear probe" in text and "## Few labels" in text
  assert "with augmentation" in text
  assert text.count("| run |") >= 8
  lin = f"{100 * s['linear']['trained']['sgd']:.2f}"
  assert lin in text
  assert os.path.exists(tmp_path / "report" / "run" / "retrieval.png")
  assert "<table>" in open(html).read()
  assert "# ssljax evaluation report" in markdown_report([rep])


def test_method_evaluations_cover_registered_methods_only():
  # experiments/evaluate.py runs these for the methods their papers judge by
  # their own measure; every name must be a registered method.
  assert set(METHOD_EVALUATIONS) <= set(METHODS)
  # image CPC is an image-feature method: the standard protocol judges it
  assert {"cpc_sequence", "colorization", "splitbrain",
          "video_colorization"} == set(METHOD_EVALUATIONS)


def test_evaluate_skips_only_the_same_checkpoint(tmp_path):
  """experiments/evaluate.py --skip_done (standard.holds_checkpoint): a
  results file holds this checkpoint when its step and its parameter digest
  match; a run trained again into the workdir (same step, other weights) is
  evaluated again; older files without a digest are judged by the step."""
  from ssljax.eval.standard import holds_checkpoint, tree_digest  # pylint: disable=import-outside-toplevel
  params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
  digest = tree_digest(params)
  assert digest == tree_digest({"w": params["w"].copy()})
  assert digest != tree_digest({"w": params["w"] + 1})
  assert digest != tree_digest({"w": params["w"].astype(np.float64)})
  path = tmp_path / "r.json"
  assert not holds_checkpoint(str(path), 10, digest)
  path.write_text(json.dumps({"step": 10, "params_sha256": digest}))
  assert holds_checkpoint(str(path), 10, digest)
  assert not holds_checkpoint(str(path), 12, digest)
  assert not holds_checkpoint(str(path), 10, tree_digest({"w": params["w"] + 1}))
  path.write_text(json.dumps({"step": 10}))            # written before digests
  assert holds_checkpoint(str(path), 10, digest)
