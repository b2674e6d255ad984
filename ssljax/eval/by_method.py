"""The evaluation of each method whose paper judges it by its own measure.

``METHOD_EVALUATIONS[name](run, out_dir) -> dict`` for a restored run
(:func:`ssljax.run.restore`): CPC on sequences (audio word / voice
probes), colorization and split-brain (held-out photo colorization quality:
ab error, AuC raw and rebalanced, against gray and the training prior),
video colorization (held-out colour-cluster accuracy against copying the
reference, tracking J). ``experiments/evaluate.py`` runs it for these
methods; the image methods (image CPC included: its per-step accuracies are
``experiments/cpc_fashion_mnist.py``'s) get the standard protocol
(``ssljax.eval.standard``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ssljax.data.photos import load_photos
from ssljax.eval.colorization import (colorize_holdout_photos,
                                      evaluate_colorization,
                                      evaluate_splitbrain)
from ssljax.eval.cpc import evaluate_cpc
from ssljax.eval.video import VideoEvalOptions, evaluate_video_colorization

__all__ = ["METHOD_EVALUATIONS", "evaluate_colorization_run",
           "evaluate_video_run"]


def evaluate_colorization_run(run, out_dir: str, *, test_crops_per_photo: int = 128,
                              test_seed: int = 1) -> dict:
  """Colorization / split-brain on crops of the held-out photos (and, for
  colorization, a PNG of those photos colorized whole in ``out_dir``)."""
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
  """Video colorization and tracking on the held-out videos
  (:class:`~ssljax.eval.video.VideoEvalOptions` fields as ``options``)."""
  opts = VideoEvalOptions(**{"seed": int(run.config.seed), **options})
  return evaluate_video_colorization(
      run.method, {"trained": run.state, "random_init": run.random_state},
      run.train, run.test, opts, out_dir=out_dir)


#: Registered method name -> its own evaluation ``(run, out_dir) -> dict``.
METHOD_EVALUATIONS: dict[str, Callable] = {
    "cpc_sequence": lambda run, out_dir: evaluate_cpc(run),
    "colorization": evaluate_colorization_run,
    "splitbrain": evaluate_colorization_run,
    "video_colorization": evaluate_video_run,
}
