"""Evaluate a video colorization run: colorization of held-out frames against
copying the reference (by gap) and random init, and tracking by label
propagation by motion speed against copying the first mask
(``ssljax.eval.video``). Train first with the one loop::

    python experiments/pretrain.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization
    python experiments/video_colorization.py \
        --workdir workdirs/video_colorization \
        --out benchmarks/results/video_colorization_gaps_eval.json \
        --png_dir benchmarks/results/video_colorization_gaps

Writes ``WORKDIR/video_colorization_eval.json`` (and ``--out``, with its
provenance) and the PNGs in the workdir (copied to ``--png_dir`` when each
is < 300 KB). ``--options='{"sequences_per_speed": 4}'`` overrides fields
of ``ssljax.eval.video.VideoEvalOptions`` (the defaults: gaps
1,2,4,8,16,32; 8 tracking sequences at each of 0, 1, 2, 4 px/frame; 8 of
vtest.avi's walking people).

The copy-the-reference baseline needs no training (under a minute)::

    python experiments/video_colorization.py --copy_baseline_only \
        --out benchmarks/results/video_copy_baseline_by_gap.json

(the config's data and colour clusters: the k-means the run fits on its
training frames; held-out tree.avi, and the training videos for where
copying fails).
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import dataclasses
import datetime
import json
import os
import shutil
import sys
import time

import jax
from absl import app, flags

from ssljax.eval.provenance import provenance
from ssljax.eval.video import (VideoEvalOptions, copy_baseline_by_gap,
                               evaluate_video_colorization, train_mean_ab)
from ssljax.methods.video_colorization import (fit_color_clusters,
                                               training_frames)
from ssljax.run import restore
from ssljax.train.build import load_config_file
from ssljax.train.logging import read_jsonl
from ssljax.train.start import load_dataset

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.")
_COPY_ONLY = flags.DEFINE_bool(
    "copy_baseline_only", False, "Only the copy-the-reference baseline by "
    "gap on the config's data (no run, no network): held-out and training "
    "videos.")
_CONFIG = flags.DEFINE_string(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs", "video_colorization.py"),
    "--copy_baseline_only: the config whose data and clusters to use.")
_COPY_GAPS = flags.DEFINE_list(
    "copy_gaps", ["1", "2", "4", "8", "12", "16", "24", "32"],
    "--copy_baseline_only: gaps on the held-out videos.")
_TRAIN_GAPS = flags.DEFINE_list(
    "train_video_gaps", ["1", "2", "4", "8", "12", "16", "24", "32", "48",
                         "64"],
    "--copy_baseline_only: gaps on the training videos.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("out", "", "Also write the JSON here.")
_PNG_DIR = flags.DEFINE_string("png_dir", "", "Also copy the PNGs here.")
_GAPS = flags.DEFINE_list("gaps", ["1", "2", "4", "8", "16", "32"],
                          "Colorize the held-out targets from references "
                          "this many frames back (empty: not measured).")
_OPTIONS = flags.DEFINE_string("options", "{}", "JSON overrides of "
                               "VideoEvalOptions fields.")


def copy_baseline(config_path: str) -> dict:
  """The copy-the-reference baseline by gap on ``config_path``'s data, with
  the colour clusters its run fits (k-means of the training frames,
  ``config.video_colorization.num_clusters``, at the encoder's stride,
  seeded by ``config.seed``): on the held-out videos (the same targets at
  every gap) and on the training videos."""
  config = load_config_file(config_path)
  train, test = load_dataset(config, "train"), load_dataset(config, "test")
  k = int(config.video_colorization.get("num_clusters", 16))
  stride = 2 ** (len(config.encoder.get("widths", (0, 0, 0))) - 1)
  centroids = fit_color_clusters(training_frames(train), num_clusters=k,
                                 stride=stride, seed=int(config.seed))
  mean_ab = train_mean_ab(list(train.videos.values()))
  common = dict(centroids=centroids, mean_ab=mean_ab, num_refs=test.num_refs,
                stride=test.stride, grid_stride=stride)
  gaps = lambda v: [int(g) for g in v]
  return {
      "what": "colorizing a target frame by copying the last reference "
              "frame's colours at the same pixel (cluster accuracy at the "
              "embedding grid; ab error at full resolution), by the gap from "
              "that reference to the target; no network",
      "config": os.path.relpath(config_path), "dataset": config.dataset,
      "frames": {"train": {n: int(len(v)) for n, v in train.videos.items()},
                 "test": {n: int(len(v)) for n, v in test.videos.items()}},
      "frame_size": list(next(iter(test.videos.values())).shape[1:3]),
      "training_clip_gaps": {"min": int(train.gaps.min()),
                             "max": int(train.gaps.max()),
                             "num_clips": int(len(train))},
      "num_clusters": k, "grid_stride": stride,
      "centroids_ab": [[round(float(x), 2) for x in c] for c in centroids],
      "train_mean_ab": [round(float(x), 2) for x in mean_ab],
      "held_out": copy_baseline_by_gap(test.videos, gaps(_COPY_GAPS.value),
                                       **common),
      "training_videos": copy_baseline_by_gap(
          train.videos, gaps(_TRAIN_GAPS.value), **common),
  }


def main(argv):
  del argv
  t0 = time.perf_counter()
  if _COPY_ONLY.value:
    result = {**copy_baseline(_CONFIG.value),
              "seconds": round(time.perf_counter() - t0, 1),
              "provenance": provenance()}
    for path in dict.fromkeys([_OUT.value]):
      if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
          json.dump(result, f, indent=1)
        print(f"wrote {path}")
    for part in ("held_out", "training_videos"):
      table = result[part]["pooled"]
      print(part, {g: round(table[g]["copy_reference"]["cluster_acc"], 3)
                   for g in table})
    return
  workdir = _WORKDIR.value
  if not workdir:
    raise app.UsageError("--workdir is required (or --copy_baseline_only).")
  with restore(workdir, _STEP.value) as run:
    options = VideoEvalOptions(**{
        "seed": int(run.config.seed), "gaps": tuple(int(g) for g in _GAPS.value),
        **json.loads(_OPTIONS.value)})
    result = evaluate_video_colorization(
        run.method, {"trained": run.state, "random_init": run.random_state},
        run.train, run.test, options, out_dir=workdir,
        data_dir=run.config.get("data_dir") or None)
    step, checkpoint = run.step, run.checkpoint_path(run.step)
    config = json.loads(run.config.to_json())
  metrics = os.path.join(workdir, "metrics.jsonl")
  rows = read_jsonl(metrics) if os.path.exists(metrics) else []
  copied = {}
  if _PNG_DIR.value:
    os.makedirs(_PNG_DIR.value, exist_ok=True)
    for k, p in result.get("pngs", {}).items():
      if os.path.getsize(p) < 300_000:
        copied[k] = shutil.copy(p, _PNG_DIR.value)
  result = {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"cores": os.cpu_count(), "jax": jax.__version__,
                  "backend": jax.default_backend(),
                  "device": jax.devices()[0].device_kind},
      "checkpoint": checkpoint, "step": step,
      "train": {"first_log": rows[0] if rows else None,
                "last_log": rows[-1] if rows else None},
      **result, "pngs_copied": copied, "options": dataclasses.asdict(options),
      "eval_seconds": round(time.perf_counter() - t0, 1), "config": config,
      "provenance": provenance()}
  for path in dict.fromkeys(
      [os.path.join(workdir, "video_colorization_eval.json"), _OUT.value]):
    if path:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      with open(path, "w") as f:
        json.dump(result, f, indent=1)
      print(f"wrote {path}")
  by_gap = result.get("colorization_by_gap", {}).get("all_held_out", {})
  print(json.dumps({
      "cluster_acc_by_gap": {
          g: {k: round(v["cluster_acc"], 4) for k, v in row.items()
              if isinstance(v, dict)} for g, row in by_gap.items()},
      "tracking_J_by_speed": {
          b: {k: round(v["J_mean_frames_1_to_end"], 4) for k, v in p.items()
              if isinstance(v, dict) and "J_mean_frames_1_to_end" in v}
          for b, p in {**result["tracking"]["by_speed"],
                       "moving": result["tracking"].get("moving", {})}.items()},
      "verdict": result.get("verdict")}, indent=1))


if __name__ == "__main__":
  app.run(main)
