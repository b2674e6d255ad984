"""Any method's full train step with two ``encoder.conv_impl`` values, side by
side (interleaved rounds, median ratio with a bootstrap interval, load check).

    python benchmarks/method_conv_impl.py \
        --config experiments/configs/cpc_fashion_mnist.py \
        --impls xla,auto --rounds 10 --steps 5 \
        --out benchmarks/results/cpc_image_conv_impl.json

    python benchmarks/method_conv_impl.py \
        --config experiments/configs/dino_fashion_mnist.py \
        --impls xla,auto --rounds 10 --steps 2 \
        --out benchmarks/results/dino_conv_impl.json

Built for image CPC (issue 24: too slow to reach a useful budget), whose patch
encoder ran XLA's own convolutions while the ResNets used the faster CPU
formulations (``ssljax.cpu.conv``); it takes any config with an
``encoder.conv_impl`` key (``benchmarks/conv_impl.py`` does SimCLR). Both
sides run the library's ``train_step`` (uint8 batch of the config's size,
augmentation on device) from the same initial state. Before timing, the two
must compute the same thing up to float rounding (recorded): for a method
whose ``loss`` is ``(params, batch, key)`` (image and sequence CPC), its loss
and gradients at the same parameters, batch and key; for the others (DINO,
the two-view methods), the network's outputs and their parameter gradients
on the views the method trains on (``crops`` / ``views`` of the batch:
DINO's 12x12 local crops included). The summary is the second impl's time over the first's,
per round (below 1: the second is faster, by 1 / ratio).
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import _compare as cmp  # noqa: E402
from conv_impl import perturbed_params  # noqa: E402

import ssljax.cpu.conv  # noqa: E402,F401  (registers the CPU convolutions)
from ssljax.models.conv import resolve_conv_impl  # noqa: E402
from ssljax.train.build import build_method  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (28, 28, 1)


def _config(path: str, impl: str, batch_size: int):
  spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.encoder.conv_impl = impl
  if batch_size:
    config.batch_size = batch_size
  return config


def _view_batches(method, images, key):
  """The arrays of views ``[n, h, w, c]`` the method's network sees in a
  step (DINO: global and local crops; two-view methods: both views)."""
  if hasattr(method, "crops"):
    return [c.reshape(-1, *c.shape[2:]) for c in method.crops(images, key)
            if c is not None]
  return list(method.views(images, key))


def _loss_and_grads(method, params, state, images, key):
  """``(scalar, gradients)`` that both sides must agree on (module doc)."""
  if hasattr(method, "crops") or hasattr(method, "views"):
    batches = _view_batches(method, images, key)
    stats = state.batch_stats["net"]

    def f(p):
      total = 0.0
      for i, x in enumerate(batches):
        (_, out), _ = method.model.apply(
            {"params": p["net"], "batch_stats": stats}, x, train=True,
            mutable=["batch_stats"])
        w = jax.random.normal(jax.random.key(100 + i), out.shape[1:])
        total = total + jnp.mean(out.astype(jnp.float32) * w)
      return total
    value, g = jax.jit(jax.value_and_grad(f))(params)
    return float(value), g
  (loss, _), g = jax.jit(jax.value_and_grad(method.loss, has_aux=True))(
      params, images, key)
  return float(loss), g


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="experiments/configs/cpc_fashion_mnist.py")
  p.add_argument("--impls", default="xla,auto",
                 help="two conv_impl values: reference, candidate")
  p.add_argument("--steps", type=int, default=5, help="steps per round")
  p.add_argument("--batch_size", "--batch-size", type=int, default=0,
                 help="default: the config's")
  p.add_argument("--out", default="benchmarks/results/cpc_image_conv_impl.json")
  p.add_argument("--quick", action="store_true",
                 help="a smoke run: batch 4, 1 round of 1 step, no load check")
  cmp.add_arguments(p)
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.rounds, args.steps = 4, 1, 1
    args.allow_load = True
  impls = [s.strip() for s in args.impls.split(",") if s.strip()]
  if len(impls) != 2:
    p.error(f"--impls takes two conv_impl values; got {impls}")
  load = cmp.check_load(args.max_load, args.allow_load)

  methods, states, steps = {}, {}, {}
  for impl in impls:
    config = _config(args.config, impl, args.batch_size)
    methods[impl], _ = build_method(config, 54_000, input_shape=IMAGE_SHAPE)
    batch_size = int(config.batch_size)
    states[impl] = methods[impl].init(jax.random.key(0), IMAGE_SHAPE)
    steps[impl] = jax.jit(methods[impl].train_step, donate_argnums=0)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, size=(batch_size, *IMAGE_SHAPE), dtype=np.uint8))
  key = jax.random.key(1)

  # The same computation: loss and gradients of each at the same (perturbed:
  # the residual blocks' last convolutions start at zero) parameters, batch
  # and key. (Not one optimizer step: AdamW's first update is the sign of the
  # gradient and would hide differences.)
  a, b = impls
  same_init = all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(jnp.array_equal(x, y)), states[a].params,
      states[b].params)))

  params = perturbed_params(states[a].params)
  grads = {}
  for impl in impls:
    grads[impl] = _loss_and_grads(methods[impl], params, states[a], images,
                                  key)
  loss_rel = abs(grads[a][0] - grads[b][0]) / abs(grads[a][0])
  grad_rel = max(jax.tree.leaves(jax.tree.map(
      lambda x, y: float(jnp.linalg.norm(x - y) / (jnp.linalg.norm(x) + 1e-30)),
      grads[a][1], grads[b][1])))
  print(f"same initial parameters: {same_init}; loss {a} {grads[a][0]:.6f} "
        f"{b} {grads[b][0]:.6f} (rel {loss_rel:.1e}); gradients: max "
        f"per-tensor rel diff {grad_rel:.1e}")
  if not same_init or loss_rel > 1e-4 or grad_rel > 1e-3:
    print("the two sides do not compute the same step: not timed")
    return 1

  def side(impl):
    def run(n):
      for _ in range(n):
        states[impl], metrics = steps[impl](states[impl], images, key)
      jax.block_until_ready(metrics)
    return run
  rounds = cmp.interleaved_rounds({i: side(i) for i in impls},
                                  rounds=args.rounds,
                                  steps_per_round=args.steps, warmup=2,
                                  order=args.order)
  summary = cmp.ratio_summary(rounds.times[a], rounds.times[b],
                              confidence=args.confidence, n_boot=args.n_boot)
  cmp.finish_load(load)
  images_per_s = {i: [batch_size * args.steps / t for t in rounds.times[i]]
                  for i in impls}
  record = cmp.results_record(
      benchmark="method_conv_impl", rounds=rounds,
      summaries={f"{b}_time_over_{a}_time": summary}, load=load,
      argv=["benchmarks/method_conv_impl.py",
            *(sys.argv[1:] if argv is None else argv)],
      extra={"config": args.config, "batch_size": batch_size,
             "impls": impls,
             "resolved": {i: resolve_conv_impl(i) for i in impls},
             "checks": {"same_initial_parameters": same_init,
                        "loss_rel_diff": loss_rel,
                        "grad_max_rel_diff": grad_rel},
             "median_images_per_s": {i: float(np.median(v))
                                     for i, v in images_per_s.items()}})
  # ratio_summary's ratio is time_b / time_a: below 1, the second impl is
  # faster, by 1 / ratio.
  print(cmp.format_summary(summary, a, b))
  print(f"{b} speed over {a}: {1 / summary['median']:.3f}x "
        f"(interval {1 / summary['interval'][1]:.3f}-"
        f"{1 / summary['interval'][0]:.3f}x)")
  if not args.quick:
    cmp.write_record(args.out, record)
    print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
