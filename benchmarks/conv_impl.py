"""The SimCLR train step with each ``encoder.conv_impl`` (XLA's convolution
weight gradients, ``"matmul"``, ``"cpu"``, ``"onednn"``, ``"auto"``:
ssljax.cpu.conv), side by side
in one run.

    python benchmarks/conv_impl.py [--config experiments/configs/simclr_fashion_mnist.py]
                                   [--rounds 3 --steps 3] [--batch-size 256]
                                   [--impls xla,matmul,auto]

Every step is the library's full ``train_step`` (uint8 batch in, on-device
augmentation, NT-Xent, LARS) on the same config and initial weights. Rounds
go over every impl, each round starting with the next one (so that no impl
always runs first); the median images/s of each and the ratios to ``xla``
are printed and written to ``benchmarks/results/conv_impl.json``. Before
timing, the loss and the gradients of each are compared with ``xla``'s on
one batch.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

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

from _machine import cpu_model, malloc_name  # noqa: E402  pylint: disable=wrong-import-position

import ssljax.cpu.conv  # noqa: E402,F401  (registers the CPU convolutions)
from ssljax.train.build import build_method  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (28, 28, 1)


@jax.jit
def perturbed_params(params):
  """``params`` plus 0.1 x a standard normal draw per leaf (fixed key), for
  gradient checks away from zero-initialized layers. One jitted function:
  drawn op by op, the ~100 normals would compile one by one."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  return jax.tree.unflatten(treedef, [
      a + 0.1 * jax.random.normal(k, a.shape, a.dtype)
      for a, k in zip(leaves, keys)])


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
  p.add_argument("--impls", default="xla,matmul",
                 help="comma-separated conv_impl values; the first is the "
                      "reference of the ratios")
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
  impls = [s.strip() for s in args.impls.split(",") if s.strip()]
  ref = impls[0]
  for impl in impls:
    config = load_config_file(args.config)
    config.encoder.conv_impl = impl
    if args.batch_size:
      config.batch_size = args.batch_size
    images = images[:config.batch_size]
    methods[impl], _ = build_method(config, 60_000)
    # conv_impl changes how gradients are computed, not the parameters: one
    # init (a compile of several seconds on a CPU) serves every impl when the
    # shapes agree (copied: the steps donate their state).
    if states and (jax.eval_shape(lambda m=methods[impl]: m.init(
        jax.random.key(0), IMAGE_SHAPE)) == jax.eval_shape(lambda: states[ref])):
      states[impl] = jax.tree.map(jnp.copy, states[ref])
    else:
      states[impl] = methods[impl].init(jax.random.key(0), IMAGE_SHAPE)
    steps[impl] = jax.jit(methods[impl].train_step, donate_argnums=0)

  # Same loss and gradients on one batch of views.
  m = methods[ref]
  v1, v2 = jax.jit(m.views)(images, jax.random.key(2))
  # At initialization each block's last BN scale is zero, which stops the
  # gradients of the block's convolutions: compare at perturbed parameters.
  check_params = perturbed_params(states[ref].params)
  grads = {}
  for impl, meth in methods.items():
    st = states[impl]
    (loss, _), g = jax.jit(jax.value_and_grad(meth.loss, has_aux=True))(
        check_params, st.batch_stats, v1, v2)
    grads[impl] = (float(loss), g)
  loss_diff, grad_diff = {}, {}
  for impl in impls[1:]:
    loss_diff[impl] = abs(grads[ref][0] - grads[impl][0]) / abs(grads[ref][0])
    grad_diff[impl] = max(jax.tree.leaves(jax.tree.map(
        lambda a, b: float(jnp.linalg.norm(a - b) / (jnp.linalg.norm(a) + 1e-30)),
        grads[ref][1], grads[impl][1])))
    print(f"load {load:.2f}; loss {ref} {grads[ref][0]:.6f} {impl} "
          f"{grads[impl][0]:.6f} (rel {loss_diff[impl]:.1e}); max per-tensor "
          f"grad rel diff {grad_diff[impl]:.1e}")

  key = jax.random.key(1)
  for impl in steps:                      # compile + warm up
    for _ in range(2):
      states[impl], metrics = steps[impl](states[impl], images, key)
    jax.block_until_ready(metrics)
  rates = {impl: [] for impl in steps}
  for r in range(args.rounds):
    for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
      t = time.perf_counter()
      for _ in range(args.steps):
        states[impl], metrics = steps[impl](states[impl], images, key)
      jax.block_until_ready(metrics)
      rates[impl].append(len(images) * args.steps / (time.perf_counter() - t))
  med = {impl: float(np.median(r)) for impl, r in rates.items()}
  ratios = {impl: med[impl] / med[ref] for impl in impls[1:]}
  per_round = {impl: [a / b for a, b in zip(rates[impl], rates[ref])]
               for impl in impls[1:]}
  print("images/s: " + " | ".join(f"{i} {med[i]:.1f}" for i in impls) + "; " +
        ", ".join(f"{i}/{ref} {ratios[i]:.3f} (rounds "
                  + " ".join(f"{x:.2f}" for x in per_round[i]) + ")"
                  for i in impls[1:]))
  out = dict(machine=cpu_model(), malloc=malloc_name(), devices=str(jax.devices()),
             date=time.strftime("%Y-%m-%d %H:%M"), load_average_start=load,
             load_average_end=os.getloadavg()[0], config=args.config,
             batch_size=len(images), rounds=args.rounds, steps=args.steps,
             jax=jax.__version__, loss_rel_diff=loss_diff,
             grad_max_rel_diff=grad_diff, images_per_s=rates,
             median_images_per_s=med, reference=ref,
             ratios_over_reference=ratios, per_round_ratios=per_round,
             command="python benchmarks/conv_impl.py " + " ".join(
                 sys.argv[1:] if argv is None else argv))
  out_path.parent.mkdir(parents=True, exist_ok=True)
  out_path.write_text(json.dumps(out, indent=2) + "\n")
  print(f"wrote {out_path}")
  return out


if __name__ == "__main__":
  main()
