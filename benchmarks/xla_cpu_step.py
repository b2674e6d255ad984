"""The SimCLR train step with and without ssljax's XLA:CPU flags
(``ssljax/cpu/xla_flags.py``: convolutions on XLA's own kernels instead of
YNNPACK), one child process per setting, interleaved rounds.

    python benchmarks/xla_cpu_step.py [--rounds 4 --steps 6]
    python benchmarks/xla_cpu_step.py --quick --out /tmp/xla_cpu_quick.json

Each child is ``benchmarks/malloc_step.py --child`` (the library's full
``train_step`` of the command-1 config: uint8 batch in, augmentation,
NT-Xent, LARS; same weights and batch), run under the same allocator with
``SSLJAX_XLA_CPU_FLAGS`` unset (the flags applied) or ``off`` (jaxlib's
defaults). The order alternates between rounds; the medians over rounds of
each child's median step time, their ratio, and the losses (which should agree
to float rounding) are printed and written to
``benchmarks/results/xla_cpu_step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_model, write_result  # noqa: E402  pylint: disable=wrong-import-position

from ssljax.cpu import xla_flags as xla_cpu  # noqa: E402  pylint: disable=wrong-import-position

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"ssljax_flags": {}, "jaxlib_defaults": {xla_cpu.ENV_CHOICE: "off"}}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=str(
      REPO / "experiments/configs/simclr_fashion_mnist.py"))
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--rounds", type=int, default=4)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--quick", action="store_true", help="batch 16, 1 round of 2 steps")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.rounds, args.steps = args.batch_size or 16, 1, 2
  out_path = args.out or REPO / "benchmarks/results/xla_cpu_step.json"
  base = {k: v for k, v in os.environ.items()
          if k not in ("XLA_FLAGS", xla_cpu.ENV_CHOICE)}
  cmd = [sys.executable, str(REPO / "benchmarks/malloc_step.py"), "--child",
         "--config", args.config, "--steps", str(args.steps),
         "--batch-size", str(args.batch_size)]
  load = os.getloadavg()[0]
  runs = {name: [] for name in SETTINGS}
  for r in range(args.rounds):
    order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
    for name in order:
      out = subprocess.run(cmd, env={**base, **SETTINGS[name]}, capture_output=True,
                           text=True, check=True, timeout=1800)
      line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
      runs[name].append(json.loads(line))
      print(f"round {r}: {name:16s} {runs[name][-1]['median_ms']:7.1f} ms/step  "
            f"XLA_FLAGS={runs[name][-1]['xla_flags']!r}", flush=True)
  med = {name: statistics.median(run["median_ms"] for run in runs[name])
         for name in SETTINGS}
  speedup = med["jaxlib_defaults"] / med["ssljax_flags"]
  per_round = [d["median_ms"] / f["median_ms"]
               for f, d in zip(runs["ssljax_flags"], runs["jaxlib_defaults"])]
  losses = [run["loss"] for name in SETTINGS for run in runs[name]]
  result = dict(
      date=time.strftime("%Y-%m-%d %H:%M", time.gmtime()), cpu=cpu_model(),
      cores=os.cpu_count(), load_average_start=load,
      load_average_end=os.getloadavg()[0], config=os.path.relpath(args.config, REPO),
      rounds=args.rounds, steps=args.steps, flags=list(xla_cpu.CPU_XLA_FLAGS),
      median_ms=med, speedup=speedup, speedup_per_round=per_round,
      loss_spread=max(losses) - min(losses), runs=runs)
  print(f"median ms/step: ssljax flags {med['ssljax_flags']:.1f}, jaxlib defaults "
        f"{med['jaxlib_defaults']:.1f}; speed-up {speedup:.2f}x (per round: "
        + ", ".join(f"{x:.2f}" for x in per_round) + f"); loss spread "
        f"{result['loss_spread']:.1e}")
  write_result(out_path, result)
  return result


if __name__ == "__main__":
  main()
