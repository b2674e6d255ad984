"""MoCo step time against the queue size K (4096 / 16384 / 65536) at a fixed batch.

Launch (on an otherwise idle machine)::

    python benchmarks/moco_queue.py
    python benchmarks/moco_queue.py --quick --out /tmp/moco_queue_quick.json  # smoke test

What is measured. The model and hyperparameters are those of
``experiments/configs/moco_v2_fashion_mnist.py`` (built by the library,
``ssljax.train.build.build_method``); only ``moco.queue_size`` changes. For each
K the full ``MoCo.train_step`` is jitted with the state donated (uint8 images
in: augmentation, momentum update, key forward with split BN, query forward
and backward, SGD update, enqueue) and timed on one fixed uint8 batch.

What to expect. The queue enters a step twice: the logits ``q @ queue.T``
(N x K x D multiply-adds, and as much again for the gradient w.r.t. q) grow
linearly with K; the enqueue (``lax.dynamic_update_slice`` of N rows into the
donated queue) must not. The script also

* times the donated, jitted ``ssljax.methods.moco.enqueue`` alone for each K
  (its time should not grow with K), and
* counts, in each compiled train step, the ``copy`` instructions of the
  ``[K, D]`` queue (0 means the queue is updated in place).

Rounds. Every round times each K for ``--steps`` steps (order reversed on odd
rounds); compile and ``--warmup`` steps are excluded; timings end with
``jax.block_until_ready``. Reported: the median seconds per step over rounds,
images/s, and each K's ratio to K = 4096 (the first size). JSON goes to
``--out`` (default ``benchmarks/results/moco_queue.json``; with ``--quick``
``benchmarks/results/moco_queue_quick.json``).
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import datetime
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from _machine import cpu_model  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ssljax.methods.moco import enqueue  # noqa: E402
from ssljax.train.build import build_method, load_config_file  # noqa: E402

CONFIG_PATH = REPO / "experiments" / "configs" / "moco_v2_fashion_mnist.py"
NUM_EXAMPLES = 60000           # Fashion-MNIST train split (sets the lr schedule)
IMAGE_SHAPE = (28, 28, 1)
DEFAULT_OUT = REPO / "benchmarks" / "results" / "moco_queue.json"
QUICK_OUT = REPO / "benchmarks" / "results" / "moco_queue_quick.json"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--queue-sizes", type=lambda s: [int(x) for x in s.split(",")],
                 default=[4096, 16384, 65536],
                 help="comma-separated K values; ratios are to the first")
  p.add_argument("--batch-size", type=int, default=None,
                 help="global batch (default: the config's, 256)")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--steps", type=int, default=5, help="timed steps per round")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps per K before the rounds (after compile)")
  p.add_argument("--enqueue-iters", type=int, default=200,
                 help="timed enqueue-only calls per K and round")
  p.add_argument("--quick", action="store_true",
                 help="smoke test: batch 32, 1 round, 2 steps, 1 warm-up step")
  p.add_argument("--out", type=Path, default=None,
                 help=f"JSON output (default {DEFAULT_OUT.relative_to(REPO)}; "
                      f"{QUICK_OUT.relative_to(REPO)} with --quick)")
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size = args.batch_size or 32
    args.rounds, args.steps, args.warmup = 1, 2, 1
    args.enqueue_iters = 20
  if args.out is None:
    args.out = QUICK_OUT if args.quick else DEFAULT_OUT
  return args


def machine_info() -> dict:
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = None
  import flax
  import optax
  return {
      "cpu_model": cpu_model(),
      "platform": platform.platform(),
      "logical_cores": os.cpu_count(),
      "cores_available_to_process": affinity,
      "python": platform.python_version(),
      "jax": jax.__version__, "flax": flax.__version__,
      "optax": optax.__version__,
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }


def queue_copies(compiled_text: str, k: int, d: int) -> int:
  """``copy`` instructions of an f32[K, D] array in the entry computation."""
  entry = compiled_text.split("ENTRY", 1)[-1]
  shape = re.compile(rf"= f32\[{k},{d}\]\S* copy\(")
  return len(shape.findall(entry))


def timed(fn, carry, args, steps):
  jax.block_until_ready(carry)
  gc.collect()
  t0 = time.perf_counter()
  for _ in range(steps):
    carry = fn(carry, *args)
  jax.block_until_ready(carry)
  return carry, time.perf_counter() - t0


def main(argv=None):
  args = parse_args(argv)
  info = machine_info()
  load_start = os.getloadavg()
  print(f"CPU: {info['cpu_model']} | {info['logical_cores']} logical cores "
        f"({info['cores_available_to_process']} available) | jax {info['jax']} "
        f"| backend {info['jax_backend']}")
  print(f"load average at start: {load_start[0]:.2f}")
  if load_start[0] > 0.5 * (info["cores_available_to_process"] or 1):
    print("WARNING: the machine is busy; timings will be noisy.")

  base = load_config_file(str(CONFIG_PATH))
  batch = args.batch_size or base.batch_size
  sizes = list(args.queue_sizes)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (batch, *IMAGE_SHAPE), dtype=np.uint8))
  data_key = jax.random.key(1)

  runs = {}
  for k in sizes:
    config = load_config_file(str(CONFIG_PATH))
    config.batch_size = batch
    config.moco.queue_size = k
    method, total = build_method(config, NUM_EXAMPLES)
    state = method.init(jax.random.key(0), IMAGE_SHAPE)
    d = state.queue.shape[1]
    step_jit = jax.jit(method.train_step, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step_jit.lower(state, images, data_key).compile()
    compile_s = time.perf_counter() - t0
    copies = queue_copies(compiled.as_text(), k, d)

    def step(state, images, key, _fn=compiled):
      return _fn(state, images, key)[0]

    state, warm_s = timed(step, state, (images, data_key), args.warmup)
    enq_keys = jnp.ones((batch, d), jnp.float32)
    enq_state = (jnp.zeros((k, d)), jnp.int32(0))
    enq_compiled = jax.jit(enqueue, donate_argnums=(0, 1)).lower(
        *enq_state, enq_keys).compile()
    enq_copies = queue_copies(enq_compiled.as_text(), k, d)

    def enq(carry, keys, _fn=enq_compiled):
      return _fn(carry[0], carry[1], keys)

    enq_state, _ = timed(enq, enq_state, (enq_keys,), 3)
    runs[k] = dict(step=step, state=state, enq=enq, enq_state=enq_state,
                   enq_keys=enq_keys, compile_s=compile_s,
                   warmup_s=warm_s, queue_copies_in_step=copies,
                   queue_copies_in_enqueue=enq_copies, dim=d, total_steps=total)
    print(f"K={k:>6}: compiled in {compile_s:.1f}s; copies of the [K, D] queue "
          f"in the compiled step: {copies}, in enqueue: {enq_copies}", flush=True)

  rows = []
  print(f"\nbatch {batch}, {args.rounds} rounds x {args.steps} steps "
        f"(+ {args.enqueue_iters} enqueue-only calls) per K")
  for r in range(args.rounds):
    order = sizes if r % 2 == 0 else sizes[::-1]
    row = {"round": r, "order": order, "step_s": {}, "enqueue_us": {}}
    for k in order:
      run = runs[k]
      run["state"], secs = timed(run["step"], run["state"], (images, data_key),
                                 args.steps)
      run["enq_state"], esecs = timed(run["enq"], run["enq_state"],
                                      (run["enq_keys"],), args.enqueue_iters)
      row["step_s"][str(k)] = secs / args.steps
      row["enqueue_us"][str(k)] = 1e6 * esecs / args.enqueue_iters
    rows.append(row)
    print(f"round {r}: " + "  ".join(
        f"K={k}: {row['step_s'][str(k)]:.4f} s/step, enqueue "
        f"{row['enqueue_us'][str(k)]:.1f} us" for k in sizes), flush=True)

  med = {str(k): statistics.median(row["step_s"][str(k)] for row in rows)
         for k in sizes}
  med_enq = {str(k): statistics.median(row["enqueue_us"][str(k)] for row in rows)
             for k in sizes}
  ref = str(sizes[0])
  ratio = {k: v / med[ref] for k, v in med.items()}
  ratio_enq = {k: v / med_enq[ref] for k, v in med_enq.items()}
  load_end = os.getloadavg()
  print(f"\n{'K':>7} {'s/step':>9} {'images/s':>9} {'ratio':>7} "
        f"{'enqueue us':>11} {'ratio':>7} {'queue copies':>13}")
  for k in sizes:
    s = str(k)
    print(f"{k:>7} {med[s]:>9.4f} {batch / med[s]:>9.1f} {ratio[s]:>7.3f} "
          f"{med_enq[s]:>11.1f} {ratio_enq[s]:>7.3f} "
          f"{runs[k]['queue_copies_in_step']:>13}")
  print(f"load average at end: {load_end[0]:.2f}")

  d = runs[sizes[0]]["dim"]
  result = {
      "benchmark": "moco_queue",
      "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
      "machine": info,
      "load_average_1min": {"start": load_start[0], "end": load_end[0]},
      "timed_region": (
          "step: the jitted, state-donated MoCo.train_step on a fixed uint8 "
          "batch (augmentation, momentum update, key forward, query forward + "
          "backward, SGD, enqueue); compile and warm-up excluded. enqueue: the "
          "jitted ssljax.methods.moco.enqueue alone, queue and pointer donated."),
      "config": {
          "config_file": str(CONFIG_PATH.relative_to(REPO)),
          "batch_size": batch, "embedding_dim": d, "queue_sizes": sizes,
          "rounds": args.rounds, "steps_per_round": args.steps,
          "warmup_steps": args.warmup, "enqueue_iters": args.enqueue_iters,
          "quick": args.quick,
      },
      "per_k": {str(k): {
          "compile_s": runs[k]["compile_s"],
          "queue_copies_in_compiled_step": runs[k]["queue_copies_in_step"],
          "queue_copies_in_compiled_enqueue": runs[k]["queue_copies_in_enqueue"],
          "logit_macs_per_step_fwd": batch * k * d,
      } for k in sizes},
      "rounds": rows,
      "median_step_s": med,
      "median_images_per_s": {k: batch / v for k, v in med.items()},
      "step_ratio_to_first_k": ratio,
      "median_enqueue_us": med_enq,
      "enqueue_ratio_to_first_k": ratio_enq,
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()
