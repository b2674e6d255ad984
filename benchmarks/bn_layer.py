"""BatchNorm + ReLU layers: flax's ``nn.BatchNorm`` + ``nn.relu`` (autodiff)
against ssljax's fused one (``ssljax.models.norm.BatchNorm``, hand-written
VJP), side by side.

    python benchmarks/bn_layer.py --out benchmarks/results/bn_layer.json

Each layer (NHWC activations of the standard ResNets' SimCLR steps of
``resnet_cpu_step.py``: ResNet-18 at 256 views of 32x32, ResNet-50 at 32
views of 160x160) is timed forward + the gradients of the input, scale and
bias (``jax.grad`` of a weighted sum, batch statistics updated), each side
one ``jax.jit``, in interleaved rounds with the median per-round ratio and a
bootstrap interval (``_compare.py``). ``relu(bn(x) + residual)`` (the end
of a block) is timed too. The two sides' outputs, gradients and running
statistics are compared before timing.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp

import _compare as cmp  # noqa: E402

from ssljax.models.norm import BatchNorm  # noqa: E402

#: (name, activation shape [N, H, W, C], with a residual add)
LAYERS = (("resnet18 stage 1: 256x32x32x64", (256, 32, 32, 64), False),
          ("resnet18 stage 1, block end (+ residual)", (256, 32, 32, 64), True),
          ("resnet18 stage 2: 256x16x16x128", (256, 16, 16, 128), False),
          ("resnet18 stage 4: 256x4x4x512", (256, 4, 4, 512), False),
          ("resnet50 stage 1: 32x40x40x256", (32, 40, 40, 256), False),
          ("resnet50 stage 2: 32x20x20x512", (32, 20, 20, 512), False),
          ("resnet50 stage 4: 32x5x5x2048", (32, 5, 5, 2048), False))


class _Flax(nn.Module):
  @nn.compact
  def __call__(self, x, residual):
    y = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                     name="bn")(x)
    return nn.relu(y if residual is None else y + residual)


class _Fused(nn.Module):
  @nn.compact
  def __call__(self, x, residual):
    return BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                     name="bn")(x, residual=residual, relu=True)


def _sides(shape, with_residual):
  x = jax.random.normal(jax.random.key(0), shape) * 2 + 0.5
  r = jax.random.normal(jax.random.key(1), shape) if with_residual else None
  g = jax.random.normal(jax.random.key(2), shape)
  variables = _Flax().init(jax.random.key(3), x, r)

  def fn(model):
    def loss(params, x, r):
      y, upd = model.apply({"params": params,
                            "batch_stats": variables["batch_stats"]}, x, r,
                           mutable=["batch_stats"])
      return jnp.sum(y * g), upd
    return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
  return ({"flax": fn(_Flax()), "fused": fn(_Fused())},
          (variables["params"], x, r))


def main(argv=None):
  args, load = cmp.layer_arguments(
      __doc__.splitlines()[0], argv, steps=5,
      out="benchmarks/results/bn_layer.json", quick_what="batch 4")
  layers, checks = {}, {}
  for name, shape, with_residual in LAYERS:
    if args.quick:
      shape = (4, *shape[1:])
    fns, inputs = _sides(shape, with_residual)
    a, b = fns["flax"](*inputs), fns["fused"](*inputs)
    checks[name] = {f"leaf_{i}_rel_diff": cmp.rel_diff(u, v) for i, (u, v) in
                    enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b)))}
    if max(checks[name].values()) > 1e-3:   # float32 sums over 10^5 terms
      print(f"{name}: the two sides differ: {checks[name]}; not timed")
      return 1

    rounds, summary, per_call = cmp.time_calls(fns, inputs, args, "fused",
                                               "flax")
    layers[name] = {"input": list(shape), "residual": with_residual,
                    "rounds": rounds.to_dict(),
                    "median_seconds_per_call": per_call,
                    "flax_time_over_fused_time": summary}
    print(f"{name}: flax {per_call['flax'] * 1e3:.1f} ms, fused "
          f"{per_call['fused'] * 1e3:.1f} ms; speed-up {summary['median']:.2f}x "
          f"(interval {summary['interval'][0]:.2f}-{summary['interval'][1]:.2f}x)",
          flush=True)
  return cmp.finish_layer_record(
      args, argv, benchmark="bn_layer", load=load, layers=layers,
      checks=checks,
      what=("forward + gradients (input, scale, bias, residual) of "
           "relu(bn(x) [+ residual]) in training mode, per call"))


if __name__ == "__main__":
  sys.exit(main())
