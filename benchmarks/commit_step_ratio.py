"""Command 1's training at two commits, side by side: same numbers, and speed.

    python benchmarks/commit_step_ratio.py --base 8cd10e1 --rounds 10 \
        --steps 60 --out benchmarks/results/refactor_step_ratio.json

Checks out ``--base`` into a temporary git worktree and, in interleaved
rounds (``_compare``: base then this tree, then the other way round, ...),
runs ``experiments/pretrain.py`` with the command-1 config
(``experiments/configs/simclr_fashion_mnist.py``) for ``--steps`` steps in a
fresh workdir, each side with its own ``ssljax`` (``PYTHONPATH``). From each
run's ``metrics.jsonl`` it takes the losses (the two sides must agree: same
seed, same computation) and the training speed (images/s of the logged
intervals after the first, which holds the compilation; a round's time is
its inverse, seconds per image). Writes ``_compare``'s record: the per-round
times, the ratio (this tree's images/s / base's, per round) with its median
and a 95% bootstrap interval, the load before and after, and the largest
loss difference. The run is refused (exit status 2) on a busy machine
unless ``--allow_load`` (the record is then flagged).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import _compare as cmp
from _machine import cpu_model

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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--base", required=True, help="the commit to compare with")
  cmp.add_arguments(parser, rounds=cmp.MIN_ROUNDS)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--log-every", type=int, default=10)
  parser.add_argument("--out", required=True)
  parser.add_argument("--config", default=CONFIG, help="the config file, "
                      "relative to each tree (each side runs its own version)")
  args = parser.parse_args()
  load = cmp.check_load(args.max_load, args.allow_load)
  base_tree = tempfile.mkdtemp(prefix="ssljax_base_")
  subprocess.run(["git", "worktree", "add", "--detach", base_tree, args.base],
                 check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  runs = {"base": [], "new": []}

  def side(name, tree):
    def run(steps):
      out = run_side(tree, steps, args.log_every, args.config)
      runs[name].append(out)
      print(f"  {name}: {out['images_per_sec']:.1f} images/s", flush=True)
      return 1.0 / out["images_per_sec"]   # seconds per image
    return run

  try:
    rounds = cmp.interleaved_rounds(
        {"base": side("base", base_tree), "new": side("new", ROOT)},
        rounds=args.rounds, steps_per_round=args.steps, warmup=0,
        order=args.order, self_timed=True)
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", base_tree],
                   cwd=ROOT, check=False)
  cmp.finish_load(load)
  # this tree's images/s over base's = base's seconds / this tree's seconds
  summary = cmp.ratio_summary(rounds.times["new"], rounds.times["base"],
                              confidence=args.confidence, n_boot=args.n_boot)
  loss_diff = max(abs(a - b) for rb, rn in zip(runs["base"], runs["new"])
                  for a, b in zip(rb["loss"], rn["loss"]))
  result = cmp.results_record(
      benchmark="commit_step_ratio", rounds=rounds,
      summaries={"new_vs_base": summary}, load=load,
      machine={"cpu": cpu_model(), "cores": os.cpu_count()},
      extra={"base": args.base, "config": args.config, "steps": args.steps,
             "round_time_unit": "seconds per image (1 / images_per_sec)",
             "ratio_direction": ("summary.new_vs_base: per round, this "
                                 "tree's images/s / base's (> 1: this tree "
                                 "is faster)"),
             "runs": runs, "max_abs_loss_difference": loss_diff})
  cmp.write_record(args.out, result)
  print(cmp.format_summary(summary, "this tree", "base") +
        f"; max |loss difference| {loss_diff:.3g}")


if __name__ == "__main__":
  main()
