"""Train-step time of several configs, interleaved in one process (a ratio).

    python benchmarks/step_cost_ratio.py experiments/configs/simclr_fashion_mnist.py \
        experiments/configs/moco_v2_fashion_mnist.py [--rounds 10 --steps 3]

Each config's full ``train_step`` (uint8 batch in, augmentation included) is
compiled, warmed up, then timed in interleaved rounds (``_compare``: the
order alternates, or is shuffled per round with ``--order shuffle``). For
every config after the first, the per-round cost ratio (its seconds / the
first config's seconds in the same round) is summarized by its median and a
95% bootstrap interval; the median seconds per step are printed too, and the
record (``_compare.results_record``: machine, commit, load, every round's
times) is written as JSON with ``--out``. Used to give methods equal
wall-clock budgets. The run is refused (exit status 2) when the machine is
busy, unless ``--allow_load`` (the record is then flagged).

A config path followed by ``+online_probe`` is that config with the online
linear probe (``ssljax.methods.online_probe``) switched on, e.g. to measure its
cost::

    python benchmarks/step_cost_ratio.py experiments/configs/simclr_fashion_mnist.py \
        experiments/configs/simclr_fashion_mnist.py+online_probe
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import statistics
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np

REPO = Path(__file__).resolve().parents[1]

import _compare as cmp  # noqa: E402
from ssljax.train.build import build_method, load_config_file  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("configs", nargs="+")
  cmp.add_arguments(p, rounds=cmp.MIN_ROUNDS)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--num-examples", type=int, default=60000)
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if len(set(args.configs)) != len(args.configs):
    raise SystemExit("each config may be given once")
  load = cmp.check_load(args.max_load, args.allow_load)
  states = {}

  def side(name, step, images):
    def run(steps):
      state = states[name]
      for _ in range(steps):
        state, _ = step(state, images, jax.random.key(1))
      jax.block_until_ready(state)
      states[name] = state
    return run

  sides = {}
  for name in args.configs:
    path, _, extra = name.partition("+")
    c = load_config_file(path)
    if extra == "online_probe":
      c.unlock()
      c.online_probe = ml_collections.ConfigDict(dict(lr=0.1))
    elif extra:
      raise SystemExit(f"unknown variant +{extra} (only +online_probe)")
    method, _ = build_method(c, args.num_examples)
    states[name] = method.init(jax.random.key(0), (28, 28, 1))
    images = jax.numpy.asarray(np.random.default_rng(0).integers(
        0, 256, (c.batch_size, 28, 28, 1), dtype=np.uint8))
    if getattr(method, "takes_labels", False):
      images = {"image": images, "label": jax.numpy.asarray(
          np.arange(c.batch_size) % 10, np.int32)}
    sides[name] = side(name, jax.jit(method.train_step, donate_argnums=0),
                       images)
    sides[name](2)   # compile and warm up, untimed
  rounds = cmp.interleaved_rounds(sides, rounds=args.rounds,
                                  steps_per_round=args.steps, warmup=0,
                                  order=args.order)
  cmp.finish_load(load)
  first = args.configs[0]
  med = {k: statistics.median(v) / args.steps for k, v in rounds.times.items()}
  summaries = {f"{k}_vs_{first}": cmp.ratio_summary(
      rounds.times[first], rounds.times[k], confidence=args.confidence,
      n_boot=args.n_boot) for k in args.configs[1:]}
  print(f"{first}: {med[first]:.3f} s/step")
  for k in args.configs[1:]:
    s = summaries[f"{k}_vs_{first}"]
    print(f"{k}: {med[k]:.3f} s/step; cost ratio to the first (its seconds / "
          f"the first's, per round): median {s['median']:.3f}, "
          f"{100 * s['confidence']:.0f}% interval [{s['interval'][0]:.3f}, "
          f"{s['interval'][1]:.3f}]")
  result = cmp.results_record(
      benchmark="step_cost_ratio", rounds=rounds, summaries=summaries,
      load=load, argv=[Path(sys.argv[0]).name] + (
          sys.argv[1:] if argv is None else list(argv)),
      machine={"jax": jax.__version__, "jax_backend": jax.default_backend()},
      extra={"configs": args.configs,
             "ratio_direction": ("summary[k_vs_first]: per-round seconds of "
                                 "k / seconds of the first config (a cost "
                                 "ratio: > 1, k is slower)"),
             "seconds_per_step": med,
             "ratio_to_first": {first: 1.0, **{
                 k: summaries[f"{k}_vs_{first}"]["median"]
                 for k in args.configs[1:]}}})
  if args.out:
    cmp.write_record(args.out, result)
  return result


if __name__ == "__main__":
  main()
