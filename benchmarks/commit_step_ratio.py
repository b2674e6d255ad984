"""Command 1's training at two commits, side by side: same numbers, and speed.

    python benchmarks/commit_step_ratio.py --base 8cd10e1 --rounds 10 \
        --steps 60 --out benchmarks/results/refactor_step_ratio.json

Checks out ``--base`` into a temporary git worktree and, in interleaved
rounds (base, this tree, base, ...), runs ``experiments/pretrain.py`` with the
command-1 config (``experiments/configs/simclr_fashion_mnist.py``) for
``--steps`` steps in a fresh workdir, each side with its own ``ssljax``
(``PYTHONPATH``). From each run's ``metrics.jsonl`` it takes the losses (the
two sides must agree: same seed, same computation) and the training speed
(images/s of the logged intervals after the first, which holds the
compilation). Writes the per-round speeds, the ratio (this tree / base) per
round with its median and a 95% bootstrap interval, and the largest loss
difference.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from _machine import cpu_model, write_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "experiments/configs/simclr_fashion_mnist.py"


def run_side(tree: str, steps: int, log_every: int, config: str = CONFIG) -> dict:
  with tempfile.TemporaryDirectory() as work:
    cmd = [sys.executable, os.path.join(tree, "experiments", "pretrain.py"),
           "--config", os.path.join(tree, config), "--workdir", work,
           f"--config.num_steps={steps}", f"--config.log_every={log_every}",
           f"--config.checkpoint_every={steps}"]
    env = {**os.environ, "PYTHONPATH": tree}
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, cwd=tree,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    rows = [json.loads(line) for line in
            open(os.path.join(work, "metrics.jsonl"), encoding="utf-8")]
  return {"wall_s": wall,
          "images_per_sec": float(np.median([r["images_per_sec"]
                                             for r in rows[1:]])),
          "loss": [r["loss"] for r in rows]}


def bootstrap(ratios, n=10_000, seed=0):
  rng = np.random.default_rng(seed)
  r = np.asarray(ratios)
  meds = np.median(rng.choice(r, (n, len(r))), axis=1)
  return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", required=True, help="the commit to compare with")
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--log-every", type=int, default=10)
  parser.add_argument("--out", required=True)
  parser.add_argument("--config", default=CONFIG, help="the config file, "
                      "relative to each tree (each side runs its own version)")
  args = parser.parse_args()
  base_tree = tempfile.mkdtemp(prefix="ssljax_base_")
  subprocess.run(["git", "worktree", "add", "--detach", base_tree, args.base],
                 check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  rounds = []
  try:
    for i in range(args.rounds):
      base = run_side(base_tree, args.steps, args.log_every, args.config)
      new = run_side(ROOT, args.steps, args.log_every, args.config)
      rounds.append({"base": base, "new": new,
                     "ratio": new["images_per_sec"] / base["images_per_sec"]})
      print(f"round {i}: base {base['images_per_sec']:.1f}, this tree "
            f"{new['images_per_sec']:.1f} images/s, ratio "
            f"{rounds[-1]['ratio']:.3f}", flush=True)
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", base_tree],
                   cwd=ROOT, check=False)
  ratios = [r["ratio"] for r in rounds]
  loss_diff = max(abs(a - b) for r in rounds
                  for a, b in zip(r["base"]["loss"], r["new"]["loss"]))
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                        capture_output=True, text=True).stdout.strip()
  result = {"command": " ".join(sys.argv), "base": args.base, "head": head,
            "config": args.config, "steps": args.steps, "rounds": rounds,
            "ratio_median": statistics.median(ratios),
            "ratio_ci95": bootstrap(ratios), "max_abs_loss_difference": loss_diff,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()}}
  write_result(args.out, result)
  print(f"ratio {result['ratio_median']:.3f} (95% CI {result['ratio_ci95']}), "
        f"max |loss difference| {loss_diff:.3g}")


if __name__ == "__main__":
  main()
