"""The SGD linear probe's weight-decay selection: a grid fitted in one vmapped
loop vs one fit per value, side by side in one run (a ratio).

    python benchmarks/probe_grid.py [--epochs 20] [--out benchmarks/results/probe_grid.json]

Random Gaussian features of the widths the README's first command probes
(256-d SimCLR features, 784-d raw pixels), 54,000 rows (the 90% fit part of
Fashion-MNIST's train split), grid (1e-5, 1e-4, 1e-3), lr 0.5, batch 1024.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from _machine import cpu_model  # noqa: E402  pylint: disable=wrong-import-position

from ssljax.eval.linear import train_linear_classifier  # noqa: E402

GRID = (1e-5, 1e-4, 1e-3)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--rows", type=int, default=54_000)
  parser.add_argument("--out", default="benchmarks/results/probe_grid.json")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  kw = dict(num_classes=10, epochs=args.epochs, batch_size=1024, lr=0.5)
  rows = []
  for width in (256, 784):
    x = rng.standard_normal((args.rows, width)).astype(np.float32)
    y = rng.integers(0, 10, args.rows)
    # compile both paths first
    jax.block_until_ready(train_linear_classifier(x, y, weight_decay=GRID, **{**kw, "epochs": 1}))
    jax.block_until_ready(train_linear_classifier(x, y, weight_decay=GRID[0], **{**kw, "epochs": 1}))
    t = time.perf_counter()
    stacked = jax.block_until_ready(train_linear_classifier(x, y, weight_decay=GRID, **kw))
    grid_s = time.perf_counter() - t
    t = time.perf_counter()
    diff = 0.0
    for i, wd in enumerate(GRID):
      one = jax.block_until_ready(train_linear_classifier(x, y, weight_decay=wd, **kw))
      diff = max(diff, float(np.abs(np.asarray(one["w"]) - np.asarray(stacked["w"][i])).max()))
    separate_s = time.perf_counter() - t
    row = dict(width=width, rows=args.rows, epochs=args.epochs, grid=GRID,
               vmapped_grid_s=round(grid_s, 2), separate_fits_s=round(separate_s, 2),
               speedup=round(separate_s / grid_s, 2), max_weight_diff=diff)
    print(row)
    rows.append(row)
  out = dict(machine=cpu_model(), devices=str(jax.devices()),
             date=time.strftime("%Y-%m-%d"),
             command="python benchmarks/probe_grid.py " + " ".join(sys.argv[1:]),
             results=rows)
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(out, indent=1))
  print("written to", args.out)


if __name__ == "__main__":
  main()
