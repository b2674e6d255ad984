"""Evaluate a video colorization run: colorization of held-out frames against
copying the reference, and tracking by label propagation
(``ssljax.eval.video``), for the trained network and the same network at
random init. Train first with the one loop::

    python experiments/pretrain.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization
    python experiments/video_colorization.py \
        --workdir workdirs/video_colorization \
        --out benchmarks/results/video_colorization_eval.json \
        --png_dir benchmarks/results --gaps=1,2,4,8,16,32

Writes ``WORKDIR/video_colorization_eval.json`` (and ``--out``) and the PNGs
in the workdir (copied to ``--png_dir`` when each is < 300 KB).
``--options='{"num_sequences": 4}'`` overrides fields of
``ssljax.eval.video.VideoEvalOptions``.
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

from ssljax.eval.video import VideoEvalOptions, evaluate_video_colorization
from ssljax.run import restore
from ssljax.train.logging import read_jsonl

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("out", "", "Also write the JSON here.")
_PNG_DIR = flags.DEFINE_string("png_dir", "", "Also copy the PNGs here.")
_GAPS = flags.DEFINE_list("gaps", [], "Also colorize the held-out targets from "
                          "references this many frames back, e.g. 1,2,4,8.")
_OPTIONS = flags.DEFINE_string("options", "{}", "JSON overrides of "
                               "VideoEvalOptions fields.")


def main(argv):
  del argv
  t0 = time.perf_counter()
  workdir = _WORKDIR.value
  with restore(workdir, _STEP.value) as run:
    options = VideoEvalOptions(**{
        "seed": int(run.config.seed), "gaps": tuple(int(g) for g in _GAPS.value),
        **json.loads(_OPTIONS.value)})
    result = evaluate_video_colorization(
        run.method, {"trained": run.state, "random_init": run.random_state},
        run.train, run.test, options, out_dir=workdir)
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
      "eval_seconds": round(time.perf_counter() - t0, 1), "config": config}
  for path in dict.fromkeys(
      [os.path.join(workdir, "video_colorization_eval.json"), _OUT.value]):
    if path:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      with open(path, "w") as f:
        json.dump(result, f, indent=1)
      print(f"wrote {path}")
  print(json.dumps({"colorization": result["colorization"]["all_held_out"],
                    "tracking_J": {k: v["J_mean_frames_1_to_end"] for k, v in
                                   result["tracking"].items()
                                   if isinstance(v, dict) and
                                   "J_mean_frames_1_to_end" in v}}, indent=1))


if __name__ == "__main__":
  app.run(main)
