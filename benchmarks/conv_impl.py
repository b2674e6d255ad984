"""The SimCLR train step with XLA's convolution weight gradients vs
``encoder.conv_impl="matmul"`` (ssljax.models.conv), side by side in one run.

    python benchmarks/conv_impl.py [--config experiments/configs/simclr_fashion_mnist.py]
                                   [--rounds 3 --steps 3] [--batch-size 256]

Both steps are the library's full ``train_step`` (uint8 batch in, on-device
augmentation, NT-Xent, LARS) on the same config and initial weights; rounds
alternate, the median images/s of each and the ratio are printed and written
to ``benchmarks/results/conv_impl.json``. Before timing, the loss and the
gradients of both are compared on one batch.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model, malloc_name  # noqa: E402  pylint: disable=wrong-import-position

from ssljax.train.build import build_method  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (28, 28, 1)


def load_config_file(path: str):
  spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=str(REPO / "experiments/configs/simclr_fashion_mnist.py"))
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--quick", action="store_true", help="batch 16, 1 round of 1 step")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.rounds, args.steps = args.batch_size or 16, 1, 1
  out_path = args.out or REPO / "benchmarks/results" / (
      "conv_impl_quick.json" if args.quick else "conv_impl.json")
  load = os.getloadavg()[0]
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, size=(args.batch_size or 256, *IMAGE_SHAPE), dtype=np.uint8))
  methods, states, steps = {}, {}, {}
  for impl in ("xla", "matmul"):
    config = load_config_file(args.config)
    config.encoder.conv_impl = impl
    if args.batch_size:
      config.batch_size = args.batch_size
    images = images[:config.batch_size]
    methods[impl], _ = build_method(config, 60_000)
    states[impl] = methods[impl].init(jax.random.key(0), IMAGE_SHAPE)
    steps[impl] = jax.jit(methods[impl].train_step, donate_argnums=0)

  # Same loss and gradients on one batch of views.
  m = methods["xla"]
  v1, v2 = jax.jit(m.views)(images, jax.random.key(2))
  grads = {}
  for impl, meth in methods.items():
    st = states[impl]
    (loss, _), g = jax.jit(jax.value_and_grad(meth.loss, has_aux=True))(
        st.params, st.batch_stats, v1, v2)
    grads[impl] = (float(loss), g)
  loss_diff = abs(grads["xla"][0] - grads["matmul"][0]) / abs(grads["xla"][0])
  grad_diff = max(jax.tree.leaves(jax.tree.map(
      lambda a, b: float(jnp.linalg.norm(a - b) / (jnp.linalg.norm(a) + 1e-30)),
      grads["xla"][1], grads["matmul"][1])))
  print(f"load {load:.2f}; loss xla {grads['xla'][0]:.6f} matmul "
        f"{grads['matmul'][0]:.6f} (rel {loss_diff:.1e}); max per-tensor grad "
        f"rel diff {grad_diff:.1e}")

  key = jax.random.key(1)
  for impl in steps:                      # compile + warm up
    for _ in range(2):
      states[impl], metrics = steps[impl](states[impl], images, key)
    jax.block_until_ready(metrics)
  rates = {impl: [] for impl in steps}
  for _ in range(args.rounds):
    for impl in steps:
      t = time.perf_counter()
      for _ in range(args.steps):
        states[impl], metrics = steps[impl](states[impl], images, key)
      jax.block_until_ready(metrics)
      rates[impl].append(len(images) * args.steps / (time.perf_counter() - t))
  med = {impl: float(np.median(r)) for impl, r in rates.items()}
  ratio = med["matmul"] / med["xla"]
  print(f"images/s: xla {med['xla']:.1f} | matmul {med['matmul']:.1f} | "
        f"ratio matmul/xla {ratio:.3f}")
  out = dict(machine=cpu_model(), malloc=malloc_name(), devices=str(jax.devices()),
             date=time.strftime("%Y-%m-%d %H:%M"), load_average_start=load,
             load_average_end=os.getloadavg()[0], config=args.config,
             batch_size=len(images), rounds=args.rounds, steps=args.steps,
             jax=jax.__version__, loss_rel_diff=loss_diff,
             grad_max_rel_diff=grad_diff, images_per_s=rates,
             median_images_per_s=med, ratio_matmul_over_xla=ratio,
             command="python benchmarks/conv_impl.py " + " ".join(
                 sys.argv[1:] if argv is None else argv))
  out_path.parent.mkdir(parents=True, exist_ok=True)
  out_path.write_text(json.dumps(out, indent=2) + "\n")
  print(f"wrote {out_path}")
  return out


if __name__ == "__main__":
  main()
