"""Each convolution of an encoder, forward and forward+backward, ssljax (XLA)
vs PyTorch (oneDNN), side by side: which layers lose the CPU time.

    python benchmarks/conv_layers.py [--config experiments/configs/simclr_fashion_mnist.py]
                                     [--batch-size 256] [--rounds 3 --reps 10]

The layers are found by running the config's encoder once with every
``nn.Conv`` call intercepted (input shape, kernel, strides, padding), so any
encoder config works. Each layer is timed on random data at the train step's
size (2 views per source image):

- ``fwd``: the forward convolution alone;
- ``train``: the forward pass plus the gradients the train step needs (as in
  a train step, which keeps the output for the next layer): the weight
  gradient, and the input gradient for every layer but the first (whose input
  is the image). ssljax is timed with every ``conv_impl`` value (``xla``:
  ``lax.conv_general_dilated``'s own gradients; ``matmul``: the weight gradient
  as matrix products; ``cpu``: per layer the faster formulation on XLA:CPU;
  ``ssljax.cpu.conv``; ``onednn``: oneDNN), PyTorch with autograd
  (channels_last, the machine's thread count unless ``--torch-threads``).

Before timing, PyTorch's output and gradients are compared with JAX's on the
same data. Rounds go over every layer and variant in turn; each figure is the
median over rounds of the median of ``--reps`` calls. Results:
``benchmarks/results/conv_layers.json``.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import os
import statistics
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from _machine import cpu_model, malloc_name, write_result  # noqa: E402  pylint: disable=wrong-import-position

import ssljax.cpu.conv  # noqa: E402,F401  (registers the CPU convolutions)
from ssljax.models.conv import CONV_IMPLS  # noqa: E402
from ssljax.train.build import build_method, load_config_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NHWC = ("NHWC", "HWIO", "NHWC")


def conv_layers(config, image_shape=(28, 28, 1)) -> list[dict]:
  """Every convolution the config's encoder applies, in call order:
  ``{"name", "in_shape" [1, H, W, C], "kernel" (kh, kw, cin, cout),
  "strides", "padding" ((lo, hi), (lo, hi))}``."""
  method, _ = build_method(config, 60_000)
  found = []

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, nn.Conv) and context.method_name == "__call__":
      x = args[0]
      ks = tuple(module.kernel_size)
      strides = module.strides or (1,) * len(ks)
      strides = (strides,) * len(ks) if isinstance(strides, int) else tuple(strides)
      pad = module.padding
      if isinstance(pad, str):
        pad = lax.padtype_to_pads(x.shape[1:3], ks, strides, pad)
      elif isinstance(pad, int):
        pad = ((pad, pad),) * len(ks)
      else:
        pad = tuple((p, p) if isinstance(p, int) else tuple(p) for p in pad)
      found.append(dict(
          name="/".join(str(p) for p in module.path[-2:]),
          in_shape=(1,) + tuple(x.shape[1:]),
          kernel=ks + (x.shape[-1], module.features),
          strides=strides, padding=tuple(tuple(int(v) for v in p) for p in pad)))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda k: method.init(k, image_shape), jax.random.key(0))
  # init may trace the model more than once: keep the first pass
  seen, layers = set(), []
  for layer in found:
    if layer["name"] in seen:
      break
    seen.add(layer["name"])
    layers.append(layer)
  return layers


def rel(a, b) -> float:
  """Largest absolute difference relative to the largest magnitude of ``b``."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _median_call_ms(fn, reps: int) -> float:
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1e3 * statistics.median(times)


def jax_variants(layer, n: int, rng) -> tuple[dict, dict]:
  """``{variant: zero-argument callable}`` and the JAX values to check."""
  kh, kw, cin, cout = layer["kernel"]
  _, h, w, _ = layer["in_shape"]
  strides, pad = layer["strides"], layer["padding"]
  first = layer["index"] == 0
  x = jnp.asarray(rng.standard_normal((n, h, w, cin), np.float32))
  k = jnp.asarray(rng.standard_normal((kh, kw, cin, cout), np.float32)
                  * np.sqrt(2.0 / (kh * kw * cin)))
  out_shape = jax.eval_shape(
      lambda a, b: lax.conv_general_dilated(a, b, strides, pad,
                                            dimension_numbers=NHWC), x, k).shape
  g = jnp.asarray(rng.standard_normal(out_shape, np.float32))
  fwd = jax.jit(lambda a, b: lax.conv_general_dilated(
      a, b, strides, pad, dimension_numbers=NHWC))
  fns = {"jax_fwd": lambda: fwd(x, k).block_until_ready()}
  grads = {}
  for impl, conv in CONV_IMPLS.items():
    f = lambda a, b, conv=conv: conv(a, b, strides, pad, dimension_numbers=NHWC)
    # The output is returned too: otherwise XLA drops the forward pass, which
    # the gradients do not need, and the figure would be the backward alone.
    if first:   # the image needs no gradient
      def train(a, b, gg, f=f):
        y, vjp = jax.vjp(lambda bb: f(a, bb), b)
        return y, vjp(gg)
    else:
      def train(a, b, gg, f=f):
        y, vjp = jax.vjp(f, a, b)
        return y, vjp(gg)
    train = jax.jit(train)
    fns[f"jax_train_{impl}"] = (
        lambda train=train: jax.block_until_ready(train(x, k, g)))
    grads[impl] = train(x, k, g)[1]
  values = dict(x=x, k=k, g=g, y=fwd(x, k), grads=grads)
  return fns, values


def torch_variants(layer, values, threads: int | None):
  """``{variant: callable}`` for PyTorch and the largest relative differences
  of its output and gradients from JAX's (``conv_impl="xla"``)."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  if threads:
    torch.set_num_threads(threads)
  first = layer["index"] == 0
  (pt, pb), (pl, pr) = layer["padding"]
  symmetric = pt == pb and pl == pr
  cl = torch.channels_last
  x = torch.from_numpy(np.array(values["x"])).permute(0, 3, 1, 2).contiguous(
      memory_format=cl)
  k = torch.from_numpy(np.array(values["k"])).permute(3, 2, 0, 1).contiguous(
      memory_format=cl)
  g = torch.from_numpy(np.array(values["g"])).permute(0, 3, 1, 2).contiguous(
      memory_format=cl)
  x.requires_grad_(not first)
  k.requires_grad_(True)

  def conv(a, b):
    if not symmetric:
      a = F.pad(a, (pl, pr, pt, pb))
    return F.conv2d(a, b, stride=layer["strides"],
                    padding=(pt, pl) if symmetric else 0)

  def fwd():
    with torch.no_grad():
      conv(x, k)

  def train():
    x.grad = k.grad = None
    conv(x, k).backward(g)

  with torch.no_grad():
    y = conv(x, k).permute(0, 2, 3, 1).numpy()
  train()
  jax_grads = values["grads"]["xla"]
  checks = {"forward": rel(y, values["y"]),
            "weight_gradient": rel(k.grad.permute(2, 3, 1, 0).numpy(),
                                   jax_grads[-1])}
  if not first:
    checks["input_gradient"] = rel(x.grad.permute(0, 2, 3, 1).numpy(), jax_grads[0])
  return {"torch_fwd": fwd, "torch_train": train}, checks


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=str(REPO / "experiments/configs/simclr_fashion_mnist.py"))
  p.add_argument("--batch-size", type=int, default=0,
                 help="source images (default: the config's); 2 views each")
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--reps", type=int, default=10)
  p.add_argument("--torch-threads", type=int, default=0)
  p.add_argument("--no-torch", action="store_true", help="time only the JAX side")
  p.add_argument("--quick", action="store_true", help="batch 8, 1 round of 2 calls")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.rounds, args.reps = args.batch_size or 8, 1, 2
  out_path = args.out or REPO / "benchmarks/results" / (
      "conv_layers_quick.json" if args.quick else "conv_layers.json")
  config = load_config_file(args.config)
  views = 2 * (args.batch_size or config.batch_size)
  layers = conv_layers(config)
  rng = np.random.default_rng(0)
  load_start = os.getloadavg()[0]
  variants, checks = [], {}
  for i, layer in enumerate(layers):
    layer["index"] = i
    fns, values = jax_variants(layer, views, rng)
    g = values["grads"]
    checks[layer["name"]] = {
        f"jax_{impl}_vs_xla_gradients": max(rel(a, b) for a, b in zip(g[impl], g["xla"]))
        for impl in CONV_IMPLS if impl != "xla"}
    if not args.no_torch:
      tfns, torch_checks = torch_variants(layer, values, args.torch_threads or None)
      checks[layer["name"]].update(torch_checks)
      fns.update(tfns)
    for fn in fns.values():   # compile / warm up
      fn()
    variants.append(fns)
  times = [{name: [] for name in fns} for fns in variants]
  for r in range(args.rounds):
    for fns, t in zip(variants, times):
      names = list(fns) if r % 2 == 0 else list(fns)[::-1]
      for name in names:
        t[name].append(_median_call_ms(fns[name], args.reps))
  rows = []
  for layer, t in zip(layers, times):
    kh, kw, cin, cout = layer["kernel"]
    rows.append(dict(
        name=layer["name"], input=f"{layer['in_shape'][1]}x{layer['in_shape'][2]}x{cin}",
        kernel=f"{kh}x{kw} {cin}->{cout}", stride=layer["strides"][0],
        input_gradient=layer["index"] != 0,
        ms={name: statistics.median(v) for name, v in t.items()}))
  totals = {name: sum(row["ms"][name] for row in rows) for name in rows[0]["ms"]}
  result = dict(
      date=time.strftime("%Y-%m-%d %H:%M", time.gmtime()), cpu=cpu_model(),
      malloc=malloc_name(), jax=jax.__version__, views=views,
      config=os.path.relpath(args.config, REPO), rounds=args.rounds, reps=args.reps,
      load_average_start=load_start, load_average_end=os.getloadavg()[0],
      layers=rows, totals_ms=totals, checks=checks)
  if not args.no_torch:
    import torch  # pylint: disable=import-outside-toplevel
    result.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    result["ratio_torch_over_jax_train"] = {
        impl: totals["torch_train"] / totals[f"jax_train_{impl}"] for impl in CONV_IMPLS}
  cols = list(totals)
  print(f"{views} views; ms per call (median of {args.rounds} rounds x {args.reps} calls)")
  print(f"{'layer':28s} {'input':>10s} {'kernel':>14s} s " + " ".join(f"{c:>17s}" for c in cols))
  for row in rows:
    print(f"{row['name']:28s} {row['input']:>10s} {row['kernel']:>14s} {row['stride']} "
          + " ".join(f"{row['ms'][c]:17.1f}" for c in cols))
  print(f"{'total':57s} " + " ".join(f"{totals[c]:17.1f}" for c in cols))
  worst = {}
  for c in checks.values():
    for name, v in c.items():
      worst[name] = max(worst.get(name, 0.0), v)
  print("largest relative differences: " + ", ".join(
      f"{name} {v:.1e}" for name, v in worst.items()))
  write_result(out_path, result)
  return result


if __name__ == "__main__":
  main()
