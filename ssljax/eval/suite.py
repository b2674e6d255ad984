"""The evaluation suite: every way to judge a pretrained checkpoint, in one call.

``evaluate_suite(run, sections=...)`` evaluates a restored run (the caller
restores it: ``ssljax.run.restore(workdir, step)``, as
``experiments/evaluate.py`` does) and writes ``workdir/eval_suite/report.json``
plus PNG pictures next to it. Sections (``SECTIONS``):

- ``linear``: linear probe on frozen features, the mini-batch SGD protocol of
  the run's config and the full-batch L-BFGS solver with L2 chosen on a
  held-out train split; beside the random-init encoder and raw pixels.
- ``knn``: weighted kNN (k, t from the config), cosine and euclidean.
- ``cluster``: k-means on test features: NMI, ARI, Hungarian accuracy.
- ``pictures``: t-SNE and UMAP of test features, a retrieval grid, the
  training curves (loss, lr, MI bound, kNN monitor).
- ``few_labels``: 1% and 10% of the labels (class-balanced, seeded):
  fine-tuned pretrained encoder, the same network from scratch, a linear probe;
  and test accuracy against labels per class (``label_curve``), pretrained vs
  scratch, as a PNG.
- ``robustness``: probe accuracy under corruptions x severities, relative to
  clean.
- ``transfer``: linear probe on another dataset (``transfer_dataset``, default
  scikit-learn digits resized to the run's image size) beside random init and
  raw pixels.
- ``health``: alignment and uniformity (two augmented views of test images),
  effective rank and the collapse report of the test features.
- ``efficiency``: images/s and time per epoch from ``metrics.jsonl``; kNN
  accuracy of every saved checkpoint against its training time
  (:func:`training_seconds`).
- ``linear_aug``: the papers' offline linear protocol, a linear layer trained
  on the frozen encoder fed freshly augmented images
  (:mod:`ssljax.eval.linear_aug`; preset ``linear_aug_preset`` = "simclr" or
  "moco", ``linear_aug_epochs`` epochs, crops from the run's
  ``augment.area_range`` when it has one), beside the random-init encoder.

Each section's cost is bounded by its options (``SuiteOptions``), so the suite
runs on a CPU in minutes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Sequence

import jax
import numpy as np

from ssljax import data as data_lib
from ssljax.augment import simclr_views
from ssljax.eval import clustering, finetune, health, plots, robustness
from ssljax.eval.knn import knn_accuracy
from ssljax.eval.linear import linear_probe
from ssljax.eval.linear_aug import augmented_linear_probe
from ssljax.train.logging import read_jsonl

SECTIONS = ("linear", "knn", "cluster", "pictures", "few_labels", "robustness",
            "transfer", "health", "efficiency", "linear_aug")


@dataclasses.dataclass
class SuiteOptions:
  """Sizes and settings of the suite's sections (defaults fit a CPU)."""
  seed: int = 0
  embed_points: int = 3000              # t-SNE / UMAP
  embed_methods: Sequence[str] = ("tsne", "umap")
  retrieval_queries: int = 8
  retrieval_k: int = 8
  label_fractions: Sequence[float] = (0.01, 0.1)
  label_curve: Sequence[int] = (10, 100, 1000, 0)   # per class; 0 = all
  finetune_steps: int = 400
  finetune_batch: int = 128
  finetune_lr: float = 0.05
  corruptions: Sequence[str] = robustness.CORRUPTIONS
  severities: Sequence[int] = (1, 3, 5)
  transfer_dataset: str = "digits"
  health_examples: int = 2000
  efficiency_knn_train: int = 10000
  efficiency_knn_test: int = 2000
  linear_aug_preset: str = "simclr"
  linear_aug_epochs: int = 10
  linear_aug_batch: int = 512


class _Run:
  """A restored run (``ssljax.run.RestoredRun`` or anything with its
  attributes) and the features computed from it, cached."""

  def __init__(self, restored, progress=True):
    self.restored = restored
    self.workdir = restored.workdir
    self.config = restored.config
    self.train, self.test = restored.train, restored.test
    self.method = restored.method
    self.mesh = restored.mesh
    self.state, self.random_state = restored.state, restored.random_state
    self.step = int(restored.step)
    self.progress = progress
    self._feats = {}

  def features(self, which: str, images: np.ndarray, tag: str, state=None):
    key = (which, tag)
    if key not in self._feats:
      st = state if state is not None else (
          self.state if which == "trained" else self.random_state)
      self._feats[key] = self.restored.encode(
          images, state=st, batch_size=self.config.eval.feature_batch_size,
          desc=f"{which} {tag}", progress=self.progress)
    return self._feats[key]

  def probe_kwargs(self):
    ev = self.config.eval
    wd = ev.linear_weight_decay
    return dict(epochs=ev.linear_epochs, batch_size=ev.linear_batch_size,
                lr=ev.linear_lr, seed=self.config.seed,
                weight_decay=tuple(wd) if isinstance(wd, (list, tuple)) else wd)


def _raw(images):
  return images.reshape(len(images), -1).astype(np.float32) / 255.0


def section_linear(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  res = {}
  tr, te = run.train, run.test
  for name, (a, b) in {
      "trained": (run.features("trained", tr.images, "train"),
                  run.features("trained", te.images, "test")),
      "random_init": (run.features("random", tr.images, "train"),
                      run.features("random", te.images, "test")),
      "raw_pixels": (_raw(tr.images), _raw(te.images))}.items():
    sgd = linear_probe(a, tr.labels, b, te.labels, num_classes=tr.num_classes,
                       solver="sgd", **run.probe_kwargs())
    lb = linear_probe(a, tr.labels, b, te.labels, num_classes=tr.num_classes,
                      solver="lbfgs", seed=opts.seed)
    res[name] = {"sgd": sgd["accuracy"], "lbfgs": lb["accuracy"],
                 "lbfgs_l2": lb["l2"], "lbfgs_validation": lb["validation"]}
  return res


def section_knn(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del opts, out_dir
  ev = run.config.eval
  tr, te = run.train, run.test
  res = {}
  for which in ("trained", "random"):
    a = run.features(which, tr.images, "train")
    b = run.features(which, te.images, "test")
    res[which] = {
        "cosine": knn_accuracy(a, tr.labels, b, te.labels,
                               num_classes=tr.num_classes, k=ev.knn_k, t=ev.knn_t),
        "euclidean": knn_accuracy(a, tr.labels, b, te.labels,
                                  num_classes=tr.num_classes, k=ev.knn_k,
                                  t=ev.knn_t, metric="euclidean")}
  return res


def section_cluster(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  te = run.test
  res = {}
  for which in ("trained", "random"):
    res[which] = clustering.cluster_scores(
        run.features(which, te.images, "test"), te.labels, seed=opts.seed,
        normalize=True)
  res["raw_pixels"] = clustering.cluster_scores(_raw(te.images), te.labels,
                                                seed=opts.seed)
  return res


def section_pictures(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  tr, te = run.train, run.test
  feats = run.features("trained", te.images, "test")
  files = {}
  for m in opts.embed_methods:
    path = os.path.join(out_dir, f"embedding_{m}.png")
    plots.embedding_plot(feats, te.labels, path, method=m,
                         class_names=data_lib.class_names(run.config.dataset,
                                                          te.num_classes),
                         max_points=opts.embed_points, seed=opts.seed,
                         title=f"{run.config.method} test features ({m})")
    files[f"embedding_{m}"] = path
  q = np.random.default_rng(opts.seed).choice(len(te), opts.retrieval_queries,
                                              replace=False)
  path = os.path.join(out_dir, "retrieval.png")
  plots.retrieval_grid(te.images[q], tr.images, feats[q],
                       run.features("trained", tr.images, "train"), path,
                       k=opts.retrieval_k, query_labels=te.labels[q],
                       bank_labels=tr.labels,
                       class_names=data_lib.class_names(run.config.dataset,
                                                        te.num_classes))
  files["retrieval"] = path
  metrics = os.path.join(run.workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    path = os.path.join(out_dir, "curves.png")
    plots.curves_plot([metrics], path, run_names=[os.path.basename(
        os.path.normpath(run.workdir))])
    files["curves"] = path
  return {"files": {k: os.path.relpath(v, out_dir) for k, v in files.items()}}


def _finetune_acc(run, state, idx, opts, seed):
  tr, te = run.train, run.test
  return finetune.finetune_accuracy(
      run.method, state, tr.images, tr.labels, te.images, te.labels,
      subset=idx, num_classes=tr.num_classes, steps=opts.finetune_steps,
      batch_size=opts.finetune_batch, lr=opts.finetune_lr, seed=seed)


def section_few_labels(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  tr, te = run.train, run.test
  a = run.features("trained", tr.images, "train")
  b = run.features("trained", te.images, "test")
  res = {"fractions": {}, "curve": {}, "finetune_steps": opts.finetune_steps}
  for frac in opts.label_fractions:
    idx = finetune.balanced_subset(tr.labels, fraction=frac, seed=opts.seed)
    res["fractions"][str(frac)] = {
        "labels": int(len(idx)),
        "finetune_pretrained": _finetune_acc(run, run.state, idx, opts, opts.seed),
        "from_scratch": _finetune_acc(run, run.random_state, idx, opts, opts.seed),
        "linear_probe": linear_probe(a[idx], tr.labels[idx], b, te.labels,
                                     num_classes=tr.num_classes, solver="lbfgs",
                                     seed=opts.seed)["accuracy"]}
  for per_class in opts.label_curve:
    idx = (np.arange(len(tr)) if per_class == 0 else
           finetune.balanced_subset(tr.labels, per_class=per_class, seed=opts.seed))
    key = "all" if per_class == 0 else str(per_class)
    res["curve"][key] = {
        "labels": int(len(idx)),
        "finetune_pretrained": _finetune_acc(run, run.state, idx, opts, opts.seed),
        "from_scratch": _finetune_acc(run, run.random_state, idx, opts, opts.seed)}
  path = os.path.join(out_dir, "label_curve.png")
  _label_curve_png(res["curve"], path, title=f"{run.config.method}: "
                   f"{opts.finetune_steps} fine-tuning steps per point")
  res["files"] = {"label_curve": os.path.relpath(path, out_dir)}
  return res


def _label_curve_png(curve: dict, path: str, title: str):
  fig = plots.figure_class()(figsize=(6, 4), dpi=100)
  ax = fig.add_subplot()
  n = [v["labels"] for v in curve.values()]
  for key, label in (("finetune_pretrained", "pretrained, fine-tuned"),
                     ("from_scratch", "from scratch")):
    ax.plot(n, [100 * v[key] for v in curve.values()], "o-", label=label)
  ax.set_xscale("log")
  ax.set_xlabel("labelled training images")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)


def section_robustness(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  tr, te = run.train, run.test
  probe = linear_probe(run.features("trained", tr.images, "train"), tr.labels,
                       run.features("trained", te.images, "test"), te.labels,
                       num_classes=tr.num_classes, solver="sgd",
                       return_classifier=True, **run.probe_kwargs())
  clf = probe["classifier"]

  def predict_fn(images):
    f = run.restored.encode(np.asarray(images), batch_size=1000, progress=False)
    logits = ((f - clf["mean"]) / clf["std"]) @ clf["w"] + clf["b"]
    return logits.argmax(-1)

  acc = robustness.accuracy_fn(predict_fn, te.labels, batch_size=len(te))
  return robustness.robustness_table(acc, te.images,
                                     corruptions=opts.corruptions,
                                     severities=opts.severities, seed=opts.seed,
                                     batch_size=1000)


def _resize_to(images: np.ndarray, shape) -> np.ndarray:
  h, w, c = shape
  x = jax.image.resize(images.astype(np.float32),
                       (len(images), h, w, images.shape[-1]), "bilinear")
  x = np.asarray(np.clip(np.round(x), 0, 255), np.uint8)
  if x.shape[-1] != c:
    x = np.repeat(x[..., :1], c, -1) if c == 3 else x.mean(-1, keepdims=True).astype(np.uint8)
  return x


def section_transfer(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  name = opts.transfer_dataset
  dtr, dte = data_lib.load(name, "train"), data_lib.load(name, "test")
  xtr = _resize_to(dtr.images, run.train.image_shape)
  xte = _resize_to(dte.images, run.train.image_shape)
  res = {"dataset": name, "train_examples": len(dtr), "test_examples": len(dte)}
  for which in ("trained", "random"):
    a = run.features(which, xtr, f"{name} train")
    b = run.features(which, xte, f"{name} test")
    res[which] = linear_probe(a, dtr.labels, b, dte.labels,
                              num_classes=dtr.num_classes, solver="lbfgs",
                              seed=opts.seed)["accuracy"]
  res["raw_pixels"] = linear_probe(_raw(xtr), dtr.labels, _raw(xte), dte.labels,
                                   num_classes=dtr.num_classes, solver="lbfgs",
                                   seed=opts.seed)["accuracy"]
  return res


def section_health(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  te = run.test
  n = min(opts.health_examples, len(te))
  aug = dict(run.config.get("augment") or {})
  aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
  v1, v2 = simclr_views(jax.random.key(opts.seed), te.images[:n], **aug)
  to_u8 = lambda v: np.asarray(np.round(np.asarray(v) * 255), np.uint8)
  res = {"views": "config.augment" if aug else "simclr_view defaults"}
  for which, state in (("trained", run.state), ("random", run.random_state)):
    f1 = run.features(which, to_u8(v1), "health view 1", state)
    f2 = run.features(which, to_u8(v2), "health view 2", state)
    full = run.features(which, te.images, "test")
    report = {k: float(v) for k, v in health.collapse_report(full).items()}
    res[which] = {"alignment": float(health.alignment(f1, f2)),
                  "uniformity": float(health.uniformity(full[:n])),
                  "feature_dim": int(full.shape[1]), **report}
  return res


def training_seconds(rows, batch_size: int, step: int) -> float:
  """Training time (s) to reach ``step``, summed over the logged intervals
  from their ``images_per_sec`` (``batch_size`` images per step); unaffected
  by pauses, resumes or files touched later. A step past the last row is
  charged at the last row's rate."""
  rows = sorted((r for r in rows if r.get("images_per_sec")),
                key=lambda r: r["step"])
  t, prev = 0.0, 0
  for r in rows:
    if prev >= step:
      break
    hi = min(r["step"], step)
    t += (hi - prev) * batch_size / r["images_per_sec"]
    prev = hi
  if rows and prev < step:
    t += (step - prev) * batch_size / rows[-1]["images_per_sec"]
  return t


def section_efficiency(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  res = {}
  metrics = os.path.join(run.workdir, "metrics.jsonl")
  rows = []
  if os.path.exists(metrics):
    rows = [r for r in read_jsonl(metrics) if "images_per_sec" in r]
    if rows:
      ips = float(np.median([r["images_per_sec"] for r in rows]))
      res["images_per_sec_median"] = ips
      res["seconds_per_epoch"] = len(run.train) / ips
  # kNN accuracy of every checkpoint against the training time to reach it
  # (from the logged images/s; without a log, the checkpoint's write time
  # after config.json's).
  ev = run.config.eval
  rng = np.random.default_rng(opts.seed)
  tri = rng.choice(len(run.train), min(opts.efficiency_knn_train, len(run.train)),
                   replace=False)
  tei = rng.choice(len(run.test), min(opts.efficiency_knn_test, len(run.test)),
                   replace=False)
  t_start = os.path.getmtime(os.path.join(run.workdir, "config.json"))
  points = []
  for step in run.restored.checkpoint_steps():
    st = run.restored.state_at(step)
    a = run.features(f"step{step}", run.train.images[tri], "knn bank", st)
    b = run.features(f"step{step}", run.test.images[tei], "knn queries", st)
    if rows:
      secs = training_seconds(rows, run.config.batch_size, int(step))
    else:
      secs = os.path.getmtime(run.restored.checkpoint_path(step)) - t_start
    points.append({"step": int(step), "train_seconds": float(secs),
                   "knn": knn_accuracy(a, run.train.labels[tri], b,
                                       run.test.labels[tei],
                                       num_classes=run.train.num_classes,
                                       k=ev.knn_k, t=ev.knn_t)})
  res["checkpoints"] = points
  res["knn_subset"] = {"bank": len(tri), "queries": len(tei)}
  if points:
    fig = plots.figure_class()(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([p["train_seconds"] / 60 for p in points],
            [100 * p["knn"] for p in points], "o-")
    ax.set_xlabel("training minutes (from the logged images/s)" if rows
                  else "minutes (checkpoint write times)")
    ax.set_ylabel("kNN accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, "accuracy_vs_time.png")
    fig.savefig(path)
    res["files"] = {"accuracy_vs_time": os.path.relpath(path, out_dir)}
  return res


def section_linear_aug(run: _Run, opts: SuiteOptions, out_dir: str) -> dict:
  del out_dir
  aug = run.config.get("augment") or {}
  crop = tuple(aug.get("area_range", ())) or None
  kw = dict(num_classes=run.train.num_classes, preset=opts.linear_aug_preset,
            epochs=opts.linear_aug_epochs, batch_size=opts.linear_aug_batch,
            seed=opts.seed, eval_batch_size=run.config.eval.feature_batch_size)
  if crop:
    kw["crop_area"] = crop
  res = {"preset": opts.linear_aug_preset}
  for name, st in (("trained", run.state), ("random_init", run.random_state)):
    out = augmented_linear_probe(
        run.method.encode, {"params": st.params, "batch_stats": st.batch_stats},
        run.train.images, run.train.labels, run.test.images, run.test.labels,
        **kw)
    res[name] = out["accuracy"]
    res[f"{name}_losses"] = out["losses"]
    res["settings"] = out["preset"]
  return res


_SECTION_FNS = {name: globals()[f"section_{name}"] for name in SECTIONS}


def evaluate_suite(run, *, sections: Sequence[str] = SECTIONS,
                   options: SuiteOptions | None = None,
                   out_dir: str | None = None, progress: bool = True,
                   log=print, skip_done: bool = False) -> dict:
  """Run ``sections`` on a restored run (``ssljax.run.restore(workdir,
  step)``; the caller closes it); returns the report (also written to
  ``out_dir/report.json``, default ``run.workdir/eval_suite``).

  Sections an earlier call measured on the same checkpoint step are kept;
  with ``skip_done`` they are not measured again either."""
  unknown = [s for s in sections if s not in SECTIONS]
  if unknown:
    raise ValueError(f"unknown sections {unknown}; choose from {SECTIONS}.")
  opts = options or SuiteOptions()
  run = _Run(run, progress)
  out_dir = out_dir or os.path.join(run.workdir, "eval_suite")
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "report.json")
  report = {"workdir": os.path.abspath(run.workdir), "method": run.config.method,
            "dataset": run.config.dataset, "step": run.step,
            "options": dataclasses.asdict(opts), "sections": {}, "seconds": {}}
  if os.path.exists(path):      # keep sections measured by earlier calls
    with open(path) as f:
      old = json.load(f)
    if old.get("step") == run.step:
      report["sections"].update(old.get("sections", {}))
      report["seconds"].update(old.get("seconds", {}))
  for name in sections:
    if skip_done and name in report["sections"]:
      log(f"[evaluate] {name}: kept from the earlier report (step {run.step})")
      continue
    t0 = time.perf_counter()
    report["sections"][name] = _SECTION_FNS[name](run, opts, out_dir)
    report["seconds"][name] = time.perf_counter() - t0
    log(f"[evaluate] {name}: {report['seconds'][name]:.0f} s")
    if jax.process_index() == 0:
      tmp = path + ".tmp"
      with open(tmp, "w") as f:
        json.dump(report, f, indent=2, default=float)
      os.replace(tmp, path)
  return report
