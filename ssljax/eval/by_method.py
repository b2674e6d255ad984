"""The evaluation of each method whose paper judges it by its own measure.

``METHOD_EVALUATIONS[name](run, out_dir) -> dict`` for a restored run
(:func:`ssljax.run.restore`): CPC on sequences (audio word / voice
probes), colorization and split-brain (held-out colorization quality: ab
error, AuC raw and rebalanced, against gray and the training prior; on
the held-out photos, or for a run on ``colour_crops`` on its test sources,
with linear probes of the frozen encoders too,
:func:`evaluate_colour_crops_run`), video colorization (held-out
colour-cluster accuracy against copying the reference, tracking J).
``experiments/evaluate.py`` runs it for these methods; the image methods
(image CPC included: its per-step accuracies are
``experiments/cpc_fashion_mnist.py``'s) get the standard protocol
(``ssljax.eval.standard``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

from ssljax.data import ArrayDataset, DatasetNotAvailableError, holdout, load
from ssljax.data.colour import COLOUR_CROPS
from ssljax.data.photos import load_photos
from ssljax.eval.colorization import (colorize_holdout_crops,
                                      colorize_holdout_photos,
                                      evaluate_colorization,
                                      evaluate_splitbrain,
                                      training_colour_baselines)
from ssljax.eval.colour_features import (FeatureProbeOptions,
                                         evaluate_fashion_mnist_transfer,
                                         evaluate_source_id)
from ssljax.eval.cpc import evaluate_cpc
from ssljax.eval.video import VideoEvalOptions, evaluate_video_colorization

__all__ = ["BY_SOURCE_SCORES", "ColourCropsEvalOptions", "METHOD_EVALUATIONS",
           "colorization_by_source", "colorization_step_curve",
           "evaluate_colorization_run", "evaluate_colour_crops_run",
           "evaluate_video_run"]


@dataclasses.dataclass(frozen=True)
class ColourCropsEvalOptions:
  """What :func:`evaluate_colour_crops_run` measures (the defaults are the
  full evaluation; the tests shrink them).

  Attributes:
    probe: the linear probes (``None``: from the run's config,
      :meth:`FeatureProbeOptions.from_config`).
    fashion_mnist: probe Fashion-MNIST too (skipped, with the reason, when
      it is not on this machine).
    fashion_mnist_limit: ``0``: all of Fashion-MNIST; ``k``: ``k`` evenly
      spaced images of each of fit, validation and test.
    fashion_mnist_data: ``(fit, validation, test)`` datasets to use instead
      of Fashion-MNIST (tests).
    png_crops_per_source: held-out crops of each test source in the picture
      (0: none).
    train_subset_every: :func:`evaluate_colorization`'s generalization-gap
      subset of the training crops (0: none).
    batch_size: images per batch of the colorization quality.
    by_source: also the colorization quality of each test source on its
      own (:func:`colorization_by_source`).
  """
  probe: FeatureProbeOptions | None = None
  fashion_mnist: bool = True
  fashion_mnist_limit: int = 0
  fashion_mnist_data: tuple | None = None
  png_crops_per_source: int = 2
  train_subset_every: int = 9
  batch_size: int = 128
  by_source: bool = True


def _evenly(ds: ArrayDataset, k: int) -> ArrayDataset:
  if not k or k >= len(ds):
    return ds
  idx = np.linspace(0, len(ds) - 1, k).astype(np.int64)
  return ArrayDataset(ds.images[idx], ds.labels[idx], ds.num_classes,
                      f"{ds.name}[{k} evenly spaced]")


def _fashion_mnist(run, options: ColourCropsEvalOptions):
  if options.fashion_mnist_data is not None:
    return tuple(options.fashion_mnist_data)
  train = load("fashion_mnist", "train",
               source=run.config.get("data_source", "auto"))
  fit, val = holdout(train)
  test = load("fashion_mnist", "test",
              source=run.config.get("data_source", "auto"))
  return tuple(_evenly(d, options.fashion_mnist_limit)
               for d in (fit, val, test))


#: The scores :func:`colorization_by_source` keeps per source and state.
BY_SOURCE_SCORES = ("auc", "auc_rebalanced", "ab_error")


def colorization_by_source(method, states, train_images, test, *,
                           temperature: float = 0.38,
                           batch_size: int = 128) -> dict:
  """The colorization quality of each test source on its own: is a margin
  over a baseline on the pooled crops carried by every source or by one?

  ``test`` is a labelled crops dataset whose labels index ``test.sources``.
  Returns ``{"per_source": {source: {state or baseline: {score: value}}},
  "wins": {"<state> > <baseline>": {score: sources where the state scores
  higher (lower for ab_error), out of "sources"}}, "sources": n,
  "temperature": T}`` for the states (at ``temperature``) and the gray
  (``gray_ab0``) and training-mean baselines, the scores of
  :data:`BY_SOURCE_SCORES`.
  """
  labels = np.asarray(test.labels)
  names = list(getattr(test, "sources", ()) or
               [str(i) for i in range(int(labels.max()) + 1)])
  per_source = {}
  baselines = training_colour_baselines(method, train_images)
  for i, name in enumerate(names):
    imgs = test.images[labels == i]
    if not len(imgs):
      continue
    res = evaluate_colorization(method, states, train_images, imgs,
                                temperatures=(temperature,),
                                batch_size=batch_size, train_subset_every=0,
                                baselines=baselines)
    row = {}
    for k in (*states, "gray_ab0", "train_mean_ab"):
      r = res[k].get(f"T={temperature}", res[k])
      row[k] = {s: float(r[s]) for s in BY_SOURCE_SCORES}
    per_source[name] = row
  wins = {}
  for st in states:
    for other in [o for o in (*states, "gray_ab0", "train_mean_ab")
                  if o != st]:
      wins[f"{st} > {other}"] = {
          s: sum((row[st][s] < row[other][s]) if s == "ab_error"
                 else (row[st][s] > row[other][s])
                 for row in per_source.values())
          for s in BY_SOURCE_SCORES}
  return {"per_source": per_source, "wins": wins,
          "sources": len(per_source), "temperature": temperature}


def colorization_step_curve(run, validation, *, steps=None,
                            temperature: float = 0.38,
                            batch_size: int = 128) -> dict:
  """Early stopping on validation: the colorization quality
  (:data:`BY_SOURCE_SCORES`, annealed mean at ``temperature``) of each
  checkpoint of a restored colorization / split-brain ``run`` (default: all
  of ``run.checkpoint_steps()``) on the ``validation`` crops (uint8 RGB
  ``images``), and the step with the highest rebalanced AuC there. The test
  split is not read.

  Returns ``{"split", "crops", "by_step": {step: {score: value}},
  "chosen_step", "rule"}``.
  """
  steps = [int(s) for s in (steps or run.checkpoint_steps())]
  if not steps:
    raise ValueError(f"{run.workdir} has no checkpoint to choose from.")
  baselines = training_colour_baselines(run.method, run.train.images)
  curve = {}
  for step in steps:
    state = run.state if step == run.step else run.state_at(step)
    res = evaluate_colorization(run.method, {"trained": state},
                                run.train.images, validation.images,
                                temperatures=(temperature,),
                                batch_size=batch_size, train_subset_every=0,
                                baselines=baselines)
    scores = res["trained"][f"T={temperature}"]
    curve[step] = {s: float(scores[s]) for s in BY_SOURCE_SCORES}
  chosen = max(steps, key=lambda s: (curve[s]["auc_rebalanced"], s))
  return {"split": getattr(validation, "name", "validation"),
          "crops": int(len(validation.images)), "by_step": curve,
          "chosen_step": chosen, "temperature": temperature,
          "rule": ("the checkpoint with the highest rebalanced AuC on the "
                   "validation sources (ties: the later step); the test "
                   "sources choose nothing")}


def evaluate_colour_crops_run(run, out_dir: str, *,
                              options: ColourCropsEvalOptions | None = None
                              ) -> dict:
  """A colorization / split-brain run on ``colour_crops``, on its test
  sources (``run.test``, never trained on), for the trained network and the
  same network at random init:

  * ``"colorization"``: :func:`evaluate_colorization` (split-brain: of its
    L -> ab half), beside gray, the training mean ab and mode bin;
  * ``"colorization_by_source"``: the same per test source
    (:func:`colorization_by_source`);
  * ``"splitbrain"`` (split-brain only): :func:`evaluate_splitbrain`, its
    held-out losses beside the training marginals;
  * ``"png"``: ``out_dir/colorization_crops.png``, a few held-out crops of
    each test source (:func:`colorize_holdout_crops`);
  * ``"source_id"`` and ``"fashion_mnist"``: linear probes on the frozen
    encoders' features (:mod:`ssljax.eval.colour_features`);
  * ``"seconds"`` per part.
  """
  options = options or ColourCropsEvalOptions()
  probe_opts = options.probe or FeatureProbeOptions.from_config(run.config)
  states = {"trained": run.state, "random_init": run.random_state}
  test = run.test
  seconds = {}
  result = {"test_split": {"name": test.name, "crops": int(len(test)),
                           "sources": list(getattr(test, "sources", ()))},
            "train_crops": int(len(run.train))}
  t0 = time.perf_counter()
  result["colorization"] = evaluate_colorization(
      run.method, states, run.train.images, test.images,
      batch_size=options.batch_size,
      train_subset_every=options.train_subset_every)
  seconds["colorization"] = time.perf_counter() - t0
  if options.by_source:
    t0 = time.perf_counter()
    result["colorization_by_source"] = colorization_by_source(
        run.method, states, run.train.images, test,
        batch_size=options.batch_size)
    seconds["colorization_by_source"] = time.perf_counter() - t0
  if run.config.method == "splitbrain":
    t0 = time.perf_counter()
    result["splitbrain"] = evaluate_splitbrain(
        run.method, states, run.train.images, test.images,
        chunk=options.batch_size)
    seconds["splitbrain"] = time.perf_counter() - t0
  if options.png_crops_per_source:
    result["png"] = colorize_holdout_crops(
        os.path.join(out_dir, "colorization_crops.png"), run.method,
        run.state, test, per_source=options.png_crops_per_source,
        random_state=run.random_state)
  t0 = time.perf_counter()
  result["source_id"] = evaluate_source_id(run.method, states, test,
                                           options=probe_opts)
  seconds["source_id"] = time.perf_counter() - t0
  if options.fashion_mnist:
    t0 = time.perf_counter()
    try:
      data = _fashion_mnist(run, options)
    except DatasetNotAvailableError as e:
      result["fashion_mnist"] = {"skipped": str(e)}
    else:
      result["fashion_mnist"] = evaluate_fashion_mnist_transfer(
          run.method, states, data=data,
          image_size=tuple(run.train.images.shape[1:3]), options=probe_opts)
    seconds["fashion_mnist"] = time.perf_counter() - t0
  result["seconds"] = seconds
  return result


def evaluate_colorization_run(run, out_dir: str, *, test_crops_per_photo: int = 128,
                              test_seed: int = 1,
                              options: ColourCropsEvalOptions | None = None
                              ) -> dict:
  """Colorization / split-brain: a run on ``colour_crops`` gets
  :func:`evaluate_colour_crops_run` (``options``); otherwise, on crops of
  the held-out opencv-doc photos (and, for colorization, a PNG of those
  photos colorized whole in ``out_dir``)."""
  if run.config.dataset == COLOUR_CROPS:
    return evaluate_colour_crops_run(run, out_dir, options=options)
  data_dir = run.config.get("data_dir") or None
  test = load_photos("test", data_dir=data_dir,
                     crops_per_photo=test_crops_per_photo, seed=test_seed)
  states = {"trained": run.state, "random_init": run.random_state}
  if run.config.method == "splitbrain":
    return evaluate_splitbrain(run.method, states, run.train.images,
                               test.images)
  result = evaluate_colorization(run.method, states, run.train.images,
                                 test.images)
  result["png"] = colorize_holdout_photos(
      os.path.join(out_dir, "colorization_samples.png"), run.method,
      run.state, data_dir=data_dir)
  return result


def evaluate_video_run(run, out_dir: str, **options) -> dict:
  """Video colorization and tracking on the held-out videos: colour
  accuracy by gap against copying the reference and random init, tracking
  J by motion speed against copying the first mask, and the pictures in
  ``out_dir`` (:class:`~ssljax.eval.video.VideoEvalOptions` fields as
  ``options``)."""
  opts = VideoEvalOptions(**{"seed": int(run.config.seed), **options})
  return evaluate_video_colorization(
      run.method, {"trained": run.state, "random_init": run.random_state},
      run.train, run.test, opts, out_dir=out_dir,
      data_dir=run.config.get("data_dir") or None)


#: Registered method name -> its own evaluation ``(run, out_dir) -> dict``.
METHOD_EVALUATIONS: dict[str, Callable] = {
    "cpc_sequence": lambda run, out_dir: evaluate_cpc(run),
    "colorization": evaluate_colorization_run,
    "splitbrain": evaluate_colorization_run,
    "video_colorization": evaluate_video_run,
}
