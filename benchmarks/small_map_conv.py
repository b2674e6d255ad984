"""Convolutions on feature maps smaller than the kernel: XLA:CPU's own
convolution against ``conv_impl="cpu"``'s im2col product
(``ssljax.cpu.conv._patches_conv``), side by side.

    python benchmarks/small_map_conv.py --out benchmarks/results/small_map_conv.json

Each layer (NHWC input, 3x3 kernel, stride 1, SAME padding, 1,024 maps: the
shapes of DINO's 12x12 local crops in the Fashion-MNIST ResNet, plus a
4x4 map where the kernel fits, as a control that keeps XLA's convolution) is
timed forward + both gradients (``jax.grad`` of a weighted sum), each side
one ``jax.jit``, in interleaved rounds with the median per-round ratio and a
bootstrap interval (``_compare.py``). The two sides' outputs and gradients
are compared before timing.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import sys

import jax
import jax.numpy as jnp
from jax import lax

import _compare as cmp  # noqa: E402

import ssljax.cpu.conv as cpu_conv  # noqa: E402

#: (name, input shape [N, H, W, C], output channels)
LAYERS = (("2x2x256", (1024, 2, 2, 256), 256),
          ("1x1x256", (1024, 1, 1, 256), 256),
          ("2x2x64", (1024, 2, 2, 64), 64),
          ("4x4x256 (kernel fits: control)", (1024, 4, 4, 256), 256))
_DN = ("NHWC", "HWIO", "NHWC")


def _sides(shape, cout):
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], cout)) * 0.05
  g = jax.random.normal(jax.random.key(2), (*shape[:3], cout))
  convs = {"xla": lax.conv_general_dilated, "cpu": cpu_conv.conv_cpu}

  def fn(conv):
    loss = lambda x, w: jnp.sum(conv(x, w, (1, 1), "SAME",
                                     dimension_numbers=_DN) * g)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  return {k: fn(c) for k, c in convs.items()}, (x, w)


def main(argv=None):
  args, load = cmp.layer_arguments(
      __doc__.splitlines()[0], argv, steps=3,
      out="benchmarks/results/small_map_conv.json", quick_what="8 maps")
  layers, checks = {}, {}
  for name, shape, cout in LAYERS:
    if args.quick:
      shape = (8, *shape[1:])
    fns, (x, w) = _sides(shape, cout)
    (va, ga), (vb, gb) = fns["xla"](x, w), fns["cpu"](x, w)
    checks[name] = {"value_rel_diff": abs(float(va - vb)) / abs(float(va)),
                    "dx_rel_diff": cmp.rel_diff(ga[0], gb[0]),
                    "dw_rel_diff": cmp.rel_diff(ga[1], gb[1])}
    if max(checks[name].values()) > 1e-4:
      print(f"{name}: the two sides differ: {checks[name]}; not timed")
      return 1

    rounds, summary, per_call = cmp.time_calls(fns, (x, w), args, "xla",
                                               "cpu")
    layers[name] = {"input": list(shape), "cout": cout,
                    "rounds": rounds.to_dict(),
                    "median_seconds_per_call": per_call,
                    "cpu_time_over_xla_time": summary}
    print(f"{name}: xla {per_call['xla'] * 1e3:.1f} ms, cpu (patches where "
          f"the map is smaller than the kernel) {per_call['cpu'] * 1e3:.1f} ms; "
          f"speed-up {1 / summary['median']:.2f}x (interval "
          f"{1 / summary['interval'][1]:.2f}-{1 / summary['interval'][0]:.2f}x)",
          flush=True)
  return cmp.finish_layer_record(
      args, argv, benchmark="small_map_conv", load=load, layers=layers,
      checks=checks,
      what="forward + both gradients of a 3x3 SAME conv, per call")


if __name__ == "__main__":
  sys.exit(main())
