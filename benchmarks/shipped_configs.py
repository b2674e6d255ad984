"""Every shipped config through the one training loop, a few steps each.

    python benchmarks/shipped_configs.py --steps 2 \
        --out benchmarks/results/shipped_configs_smoke.json

For each ``experiments/configs/*.py``: ``experiments/pretrain.py --config
<it> --config.num_steps=<steps>`` in a fresh workdir (the config's own
dataset, batch and model), then the same command again, which must resume
and find nothing left to do. Records the exit status, the wall time, the
logged losses and, for a run that cannot start here, the one-line reason it
printed (e.g. a TFDS dataset on a machine without internet).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from _machine import cpu_model, write_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(config: str, steps: int, workdir: str) -> tuple[int, str, float]:
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "pretrain.py"),
         "--config", config, "--workdir", workdir,
         f"--config.num_steps={steps}", "--config.log_every=1",
         f"--config.checkpoint_every={steps}"]
  t0 = time.time()
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  return out.returncode, (out.stdout + out.stderr).strip(), time.time() - t0


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  results = {}
  for config in sorted(glob.glob(os.path.join(ROOT, "experiments", "configs",
                                              "*.py"))):
    name = os.path.basename(config)
    with tempfile.TemporaryDirectory() as work:
      rc, text, seconds = run(config, args.steps, work)
      entry = {"exit": rc, "seconds": round(seconds, 1)}
      metrics = os.path.join(work, "metrics.jsonl")
      if rc == 0 and os.path.exists(metrics):
        rows = [json.loads(line) for line in open(metrics, encoding="utf-8")]
        entry["losses"] = [r["loss"] for r in rows]
        rc2, text2, _ = run(config, args.steps, work)
        entry["rerun_exit"] = rc2
        entry["rerun_says"] = [line for line in text2.splitlines()
                               if "resuming" in line or "finished" in line]
      else:
        entry["says"] = text.splitlines()[-3:]
    results[name] = entry
    print(name, json.dumps(entry)[:300], flush=True)
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                        capture_output=True, text=True).stdout.strip()
  write_result(args.out, {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "commit": head, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                            time.gmtime()),
      "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
      "steps": args.steps, "configs": results})


if __name__ == "__main__":
  main()
