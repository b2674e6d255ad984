"""Train-step time of several configs, interleaved in one process (a ratio).

    python benchmarks/step_cost_ratio.py experiments/configs/simclr_fashion_mnist.py \
        experiments/configs/moco_v2_fashion_mnist.py [--rounds 3 --steps 3]

Each config's full ``train_step`` (uint8 batch in, augmentation included) is
compiled, warmed up, then timed in rounds that alternate the order; the median
seconds per step and the ratio to the first config are printed (and written as
JSON with ``--out``). Used to give methods equal wall-clock budgets.

A config path followed by ``+online_probe`` is that config with the online
linear probe (``ssljax.methods.online_probe``) switched on, e.g. to measure its
cost::

    python benchmarks/step_cost_ratio.py experiments/configs/simclr_fashion_mnist.py \
        experiments/configs/simclr_fashion_mnist.py+online_probe
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ssljax.train.build import build_method, load_config_file  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("configs", nargs="+")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--num-examples", type=int, default=60000)
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  fns = {}
  for name in args.configs:
    path, _, extra = name.partition("+")
    c = load_config_file(path)
    if extra == "online_probe":
      c.unlock()
      c.online_probe = ml_collections.ConfigDict(dict(lr=0.1))
    elif extra:
      raise SystemExit(f"unknown variant +{extra} (only +online_probe)")
    method, _ = build_method(c, args.num_examples)
    state = method.init(jax.random.key(0), (28, 28, 1))
    images = jax.numpy.asarray(np.random.default_rng(0).integers(
        0, 256, (c.batch_size, 28, 28, 1), dtype=np.uint8))
    if getattr(method, "takes_labels", False):
      images = {"image": images, "label": jax.numpy.asarray(
          np.arange(c.batch_size) % 10, np.int32)}
    step = jax.jit(method.train_step, donate_argnums=0)
    state, _ = step(state, images, jax.random.key(1))
    state, _ = step(state, images, jax.random.key(1))
    jax.block_until_ready(state)
    fns[name] = [step, state, images]
  times = {k: [] for k in fns}
  for r in range(args.rounds):
    order = list(fns) if r % 2 == 0 else list(fns)[::-1]
    for k in order:
      step, state, images = fns[k]
      t0 = time.perf_counter()
      for _ in range(args.steps):
        state, _ = step(state, images, jax.random.key(1))
      jax.block_until_ready(state)
      fns[k][1] = state
      times[k].append((time.perf_counter() - t0) / args.steps)
  first = list(fns)[0]
  med = {k: statistics.median(v) for k, v in times.items()}
  result = {"seconds_per_step": med,
            "ratio_to_first": {k: med[k] / med[first] for k in med},
            "rounds": args.rounds, "steps": args.steps,
            "load_average": __import__("os").getloadavg()[0]}
  for k in med:
    print(f"{k}: {med[k]:.3f} s/step  ratio {med[k] / med[first]:.3f}")
  if args.out:
    args.out.write_text(json.dumps(result, indent=2) + "\n")
  return result


if __name__ == "__main__":
  main()
