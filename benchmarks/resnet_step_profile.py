"""Where the ResNet SimCLR step spends its time on the CPU (issue 28, item 1):
ssljax per part and per layer, beside PyTorch eager per ATen operator.

    python benchmarks/resnet_step_profile.py --encoder resnet18 \\
        --out benchmarks/results/resnet18_step_profile.json
    python benchmarks/resnet_step_profile.py --quick --out /tmp/p.json  # smoke

The step is ``resnet_cpu_step.py``'s (``gpu_session_step.py``'s SimCLR step:
ResNet-18 with the CIFAR stem, 128 images = 256 views of 32x32x3, 2-layer
head, NT-Xent, SGD with momentum; or ResNet-50 with the ImageNet stem at
160x160, 16 images), with what a user gets by default on a CPU
(``ssljax.cpu.startup``, ``conv_impl="auto"``, float32). Both sides start
from the same weights and views.

* ssljax: the jitted, state-donating step traced with ``jax.profiler``; every
  executed XLA operation is assigned to a part (``step_profile.part_of``:
  convolutions on oneDNN, XLA convolutions, batch norm, ReLU and residual
  adds, head, other) and to a layer (``step_profile.layer_of``), from the
  HLO metadata of the compiled step.
* PyTorch: the eager step (channels_last) under ``torch.profiler``, self CPU
  time per ATen operator, also grouped into the same parts
  (:func:`torch_part`).

XLA:CPU runs independent operations concurrently, so the parts can add up
to more than a step's wall time; wall times are measured separately, before
the traced steps. One process, sides one after the other (a profile, not a
ratio: ``resnet_cpu_step.py`` gives the interleaved ratio).
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _compare as cmp  # noqa: E402  pylint: disable=wrong-import-position
import gpu_session_step as gss  # noqa: E402  pylint: disable=wrong-import-position
import resnet_cpu_step  # noqa: E402  pylint: disable=wrong-import-position
import step_profile as sp  # noqa: E402  pylint: disable=wrong-import-position

REPO = Path(__file__).resolve().parents[1]

#: ATen operator -> the part of ``step_profile.PARTS`` it belongs to (first
#: matching prefix wins; the rest is "other").
TORCH_PARTS = (
    ("convolution_backward", "conv backward"),
    ("mkldnn_convolution", "conv forward"),
    ("convolution", "conv forward"),
    ("native_batch_norm", "batch norm (forward and backward)"),
    ("batch_norm", "batch norm (forward and backward)"),
    ("relu", "ReLU and residual adds"),
    ("threshold_backward", "ReLU and residual adds"),
    ("add_", "ReLU and residual adds / optimizer"),
    ("mm", "matmuls (head, loss)"),
    ("addmm", "matmuls (head, loss)"),
)


def torch_part(op: str) -> str:
  name = op.removeprefix("aten::")
  for prefix, part in TORCH_PARTS:
    if name.startswith(prefix):
      return part
  return "other"


def torch_step_profile(step, steps: int, top: int = 20) -> dict:
  """A warmed-up torch ``step()`` (returns the loss): wall time per step over
  ``steps`` steps, then ``steps`` more under ``torch.profiler``: self CPU
  time per ATen operator (the ``top`` largest) and per part
  (:func:`torch_part`), in ms per step."""
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=import-outside-toplevel
  t = time.perf_counter()
  for _ in range(steps):
    loss = step()
  float(loss)
  wall = (time.perf_counter() - t) / steps
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      loss = step()
    float(loss)
  ops = {e.key: e.self_cpu_time_total / 1e3 / steps
         for e in prof.key_averages()}
  parts = collections.Counter()
  for op, ms in ops.items():
    parts[torch_part(op)] += ms
  ops = dict(sorted(ops.items(), key=lambda kv: -kv[1]))
  return {"wall_ms_per_step": wall * 1e3, "sum_of_ops_ms": sum(ops.values()),
          "parts_ms": dict(parts.most_common()),
          "top_ops_ms": dict(list(ops.items())[:top])}


def short_part(part: str) -> str:
  """A part's name up to its first parenthesis (for the printed table)."""
  return part.split(" (")[0]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--encoder", choices=sorted(resnet_cpu_step.CPU_DEFAULTS),
                 default="resnet18")
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--image-size", type=int, default=0)
  p.add_argument("--conv-impl", default="auto",
                 choices=("auto", "xla", "matmul", "cpu", "onednn"))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--quick", action="store_true",
                 help="tiny widths, batch 4, 1 step (a smoke test)")
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--max_load", type=float, default=0.5)
  p.add_argument("--allow_load", action="store_true")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  d = resnet_cpu_step.CPU_DEFAULTS[args.encoder]
  args.batch_size = args.batch_size or (4 if args.quick else d["batch_size"])
  args.image_size = args.image_size or (16 if args.quick else d["image_size"])
  if args.quick:
    args.steps = 1
  load = cmp.check_load(args.max_load, args.allow_load or args.quick)

  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from ssljax.methods.base import loss_step  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import build_method  # pylint: disable=import-outside-toplevel

  spec = gss.ENCODERS[args.encoder]
  stage_sizes = spec["stage_sizes"]
  widths = (4, 8, 8, 8) if args.quick else None
  ns = argparse.Namespace(encoder=args.encoder, conv_impl=args.conv_impl,
                          dry_run=args.quick, batch_size=args.batch_size,
                          stage_sizes=stage_sizes, widths=widths)
  config = gss.ssljax_config(ns, "float32")
  b, s = args.batch_size, args.image_size
  method, _ = build_method(config, 50000, input_shape=(s, s, 3))
  state = jax.jit(lambda k: method.init(k, (s, s, 3)))(jax.random.key(0))
  rng = np.random.default_rng(0)
  v1_np = rng.standard_normal((b, s, s, 3), np.float32)
  v2_np = rng.standard_normal((b, s, s, 3), np.float32)
  init_host = jax.device_get(state)

  def step(st, a, b_):
    return loss_step(method, st, a, b_, metrics=lambda loss, z: {"loss": loss})

  jx = sp.profile_step(jax.jit(step, donate_argnums=0), state,
                       (jnp.asarray(v1_np), jnp.asarray(v2_np)), args.steps)

  tr = None
  if not args.no_torch:
    import torch  # pylint: disable=import-outside-toplevel
    import _torch_resnet as trn  # pylint: disable=import-outside-toplevel
    if args.quick:
      torch.set_num_threads(1)
    torch.manual_seed(0)
    model = trn.build_model(stage_sizes=stage_sizes, block=spec["block"],
                            widths=widths, stem=spec["stem"], **gss.HEAD)
    trn.load_flax(model, init_host.params, init_host.batch_stats)
    trainer = trn.TorchSimCLRTrainer(
        model, temperature=gss.TEMPERATURE, lr=gss.LR, momentum=gss.MOMENTUM,
        weight_decay=gss.WEIGHT_DECAY, memory_format=torch.channels_last)
    to = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    t1, t2 = to(v1_np), to(v2_np)
    for _ in range(3):
      float(trainer.step(t1, t2))
    tr = {**torch_step_profile(lambda: trainer.step(t1, t2), args.steps),
          "threads": torch.get_num_threads()}

  cmp.finish_load(load)
  print(f"{args.encoder}, {2 * b} views of {s}x{s}x3 a step, conv_impl "
        f"{args.conv_impl}, {args.steps} profiled steps, load "
        f"{load['start'][0]:.2f}")
  print(f"\nssljax: {jx['wall_ms_per_step']:.1f} ms/step wall, "
        f"{jx['sum_of_parts_ms']:.1f} ms of XLA operations")
  for part, ms in jx["parts_ms"].items():
    print(f"  {ms:8.1f} ms  {short_part(part)}   ("
          + ", ".join(f"{k} {v:.1f}" for k, v in
                      list(jx["parts_by_kind_ms"][part].items())[:4]) + ")")
  print("  traced events that are not HLO operations (largest):")
  for name, ms in list(jx["other_events_ms"].items())[:8]:
    print(f"  {ms:8.1f} ms  {name}")
  print("  by layer:")
  for layer, ms in list(jx["layers_ms"].items())[:25]:
    print(f"  {ms:8.1f} ms  {layer}")
  if tr:
    print(f"\nPyTorch eager: {tr['wall_ms_per_step']:.1f} ms/step wall, "
          f"{tr['sum_of_ops_ms']:.1f} ms self CPU time")
    for part, ms in tr["parts_ms"].items():
      print(f"  {ms:8.1f} ms  {part}")
    print("  largest operators:")
    for op, ms in list(tr["top_ops_ms"].items())[:12]:
      print(f"  {ms:8.1f} ms  {op}")
  record = cmp.plain_record(
      benchmark="resnet_step_profile",
      argv=sys.argv if argv is None else ["resnet_step_profile.py", *argv],
      machine={"jax": jax.__version__},
      extra={"encoder": args.encoder, "batch_size": b, "views_per_step": 2 * b,
             "image_size": s, "conv_impl": args.conv_impl,
             "steps": args.steps, "quick": bool(args.quick), "load": load,
             "load_flagged": bool(load.get("load_flagged", False)),
             "ssljax": jx, "pytorch": tr})
  if args.out:
    cmp.write_record(args.out, record)
  return record


if __name__ == "__main__":
  main()
