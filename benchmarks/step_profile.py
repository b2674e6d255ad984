"""Where a SimCLR train step spends its time: ssljax (XLA) vs PyTorch, per part.

Launch (on an otherwise idle machine)::

    python benchmarks/step_profile.py                  # conv_impl from the config
    python benchmarks/step_profile.py --conv-impl xla
    python benchmarks/step_profile.py --quick --out /tmp/p.json   # smoke test

Both sides run the command-1 SimCLR step (``experiments/configs/
simclr_fashion_mnist.py``; the model, loss and LARS of
``benchmarks/simclr_throughput.py``) on the same batch. The JAX side is the
library's full ``train_step`` (uint8 in, augmentation on device), traced with
``jax.profiler`` (Perfetto trace); every executed XLA operation is assigned
to a part of the model from the HLO metadata of the compiled step (the
``op_name`` path, e.g. ``transpose(jvp(EncoderWithHead))/encoder/BasicBlock_1/
Conv_0/dot_general``). The PyTorch side is the eager step on pre-augmented
views, profiled with ``torch.profiler`` and grouped by ATen operator.

Times are summed over the operations of ``--steps`` steps and divided by the
number of steps. XLA:CPU runs independent operations concurrently on its
thread pool, so the JAX parts can add up to more than the wall time of a
step; the wall time is printed next to them.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

import jax
import jax.numpy as jnp

from ssljax.cpu.malloc import loaded_malloc
from ssljax.train.build import build_method

REPO = Path(__file__).resolve().parents[1]
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"",
                    re.M)

#: (part, test on the HLO op_name path), first match wins. The loss and the
#: optimizer update carry no module path (bare ``mul``, ``add``, ...), so
#: they fall into "other" (:func:`part_of`).
PARTS = (
    ("conv on oneDNN (conv_impl=onednn: custom calls, forward and gradients)",
     lambda p: p.endswith("/ffi_call")
     and re.search(r"/(Conv_\d+|proj_conv|stem_conv|out_conv)/", p)),
    ("conv gradients outside XLA convolutions (matmul weight gradients: "
     "slices, patches, products; conv_impl=cpu: space-to-depth reshapes)",
     lambda p: "transpose(" in p and re.search(r"/(Conv_\d+|proj_conv|stem_conv|out_conv)/", p)
     and not p.endswith("conv_general_dilated")),
    ("conv backward (XLA convolutions: input gradient, and weight gradient "
     "with conv_impl=xla)",
     lambda p: "transpose(" in p and p.endswith("conv_general_dilated")),
    ("conv forward", lambda p: p.endswith("conv_general_dilated")),
    ("conv forward, other than XLA convolutions (conv_impl=cpu: the stem's "
     "broadcast products)",
     lambda p: re.search(r"/(Conv_\d+|proj_conv|stem_conv|out_conv)/", p)),
    ("batch norm (forward and backward)",
     lambda p: re.search(r"/(stem_bn|proj_bn|out_bn|BatchNorm_\d+)/", p)),
    ("ReLU and residual adds", lambda p: "/encoder/" in p),
    ("projection head", lambda p: "/head/" in p),
)


def part_of(op_name: str) -> str:
  for part, test in PARTS:
    if test(op_name):
      return part
  if "jit(norm)" in op_name:
    return "LARS parameter and update norms"
  if ("vmap(" in op_name or "simclr_views" in op_name or "threefry" in op_name
      or "_uniform" in op_name):
    return "augmentation and random keys (on device)"
  return "other (NT-Xent, LARS update, schedule, copies)"


def hlo_op_names(compiled_text: str) -> dict[str, str]:
  """``{instruction name: op_name metadata}`` of a compiled module's text."""
  return dict(_INSTR.findall(compiled_text))


def jax_profile(method, state, images, key, steps: int) -> dict:
  """The library's full ``train_step`` (uint8 images in), profiled."""
  return profile_step(jax.jit(method.train_step, donate_argnums=0), state,
                      (images, key), steps)


def profile_step(step, state, args, steps: int, part=None) -> dict:
  """Profile the jitted ``step(state, *args) -> (state, metrics)`` (state
  donated): wall time per step, then one traced run of ``steps`` steps with
  every XLA operation assigned to ``part(op_name)`` (default
  :func:`part_of`); also per layer (:func:`layer_of`)."""
  part = part or part_of
  for _ in range(3):
    state, metrics = step(state, *args)
  jax.block_until_ready(metrics)
  op_names = hlo_op_names(step.lower(state, *args).compile().as_text())
  t = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, *args)
  jax.block_until_ready(metrics)
  wall = (time.perf_counter() - t) / steps
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    for _ in range(steps):
      state, metrics = step(state, *args)
    jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
    trace = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)
    with gzip.open(trace[0]) as f:
      events = json.load(f)["traceEvents"]
  parts, ops, layers = (collections.Counter(), collections.Counter(),
                        collections.Counter())
  kinds = collections.defaultdict(collections.Counter)
  other = collections.Counter()      # events that are not HLO operations
  threads = collections.Counter()    # HLO-operation time per thread
  for e in events:
    if e.get("ph") != "X":
      continue
    if e["name"] not in op_names:
      # runtime bookkeeping (and anything else traced), kept by name
      other[re.sub(r"[.\d]+$", "", str(e["name"]))[:80]] += (
          e.get("dur", 0) / 1e3 / steps)
      continue
    ms = e["dur"] / 1e3 / steps
    threads[f"{e.get('pid')}/{e.get('tid')}"] += ms
    name = part(op_names[e["name"]])
    parts[name] += ms
    layers[layer_of(op_names[e["name"]])] += ms
    # the kind of operation: the instruction name without its number, e.g.
    # concatenate, pad_slice_fusion, dot_general, ynn_fusion (a YNNPACK call)
    kinds[name][re.sub(r"[.\d]+$", "", e["name"])] += ms
    ops[f"{e['name']}  ({op_names[e['name']].split('/', 1)[-1]})"] += ms
  return {"wall_ms_per_step": wall * 1e3, "parts_ms": dict(parts.most_common()),
          "parts_by_kind_ms": {p: dict(k.most_common()) for p, k in kinds.items()},
          "layers_ms": dict(layers.most_common()),
          "hlo_ms_by_thread": dict(threads.most_common(8)),
          "other_events_ms": dict(other.most_common(15)),
          "sum_of_parts_ms": sum(parts.values()),
          "top_ops_ms": dict(ops.most_common(15))}


_LAYER = re.compile(r"/((?:BasicBlock|BottleneckBlock|Block)_\d+|stem_\w+|head)/"
                    r"(?:([\w]+)/)?")


def layer_of(op_name: str) -> str:
  """The block (``BasicBlock_3``; the stem's ``stem_conv`` / ``stem_bn``;
  ``head``) and the module inside it (``Conv_1``, ``BatchNorm_0``,
  ``proj_conv``) of an HLO ``op_name``; ``"-"`` for operations outside the
  model (loss, optimizer, augmentation)."""
  m = None
  for m in _LAYER.finditer(op_name):
    pass                                # the innermost match
  if m is None:
    return "-"
  block, module = m.group(1), m.group(2)
  if block.startswith("stem_") or block == "head" or not module:
    return block
  return f"{block}/{module}"


def torch_profile(config, model, v1, v2, steps: int) -> dict:
  import simclr_throughput as st  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  trainer = st.TorchTrainer(model, config.optimizer, float(config.temperature),
                            np.full(1000, 0.1), torch.channels_last)
  for _ in range(3):
    trainer.step(v1, v2)
  t = time.perf_counter()
  for _ in range(steps):
    trainer.step(v1, v2)
  wall = (time.perf_counter() - t) / steps
  from torch.profiler import profile, ProfilerActivity  # pylint: disable=import-outside-toplevel
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      trainer.step(v1, v2)
  ops = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
  ops = dict(sorted(ops.items(), key=lambda kv: -kv[1]))
  return {"wall_ms_per_step": wall * 1e3, "sum_of_ops_ms": sum(ops.values()),
          "top_ops_ms": dict(list(ops.items())[:12])}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--conv-impl", default="config", choices=("config", "auto", "xla", "matmul", "cpu", "onednn"))
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--torch-threads", type=int, default=os.cpu_count())
  p.add_argument("--quick", action="store_true", help="batch 16, 1 step")
  p.add_argument("--out", type=Path,
                 default=REPO / "benchmarks/results/step_profile.json")
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.steps = args.batch_size or 16, 1
  # torch only here: the parts above import without it (tests use them)
  import simclr_throughput as st  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(args.torch_threads)
  config = st.load_config()
  if args.conv_impl != "config":
    config.encoder.conv_impl = args.conv_impl
  if args.batch_size:
    config.batch_size = args.batch_size
  load = os.getloadavg()[0]
  method, _ = build_method(config, st.NUM_EXAMPLES)
  state = method.init(jax.random.key(0), st.IMAGE_SHAPE)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, size=(config.batch_size, *st.IMAGE_SHAPE), dtype=np.uint8))
  v1, v2 = jax.jit(method.views)(images, jax.random.key(2))
  to_torch = lambda v: torch.from_numpy(np.asarray(v).transpose(0, 3, 1, 2).copy()
                                        ).to(memory_format=torch.channels_last)
  model = st.TorchSimCLRModel(config, v1.shape[-1])   # the same initial weights
  st.load_flax_into_torch(model, state.params, state.batch_stats)
  jx = jax_profile(method, state, images, jax.random.key(1), args.steps)
  tr = torch_profile(config, model, to_torch(v1), to_torch(v2), args.steps)

  print(f"load average at start {load:.2f}; batch {config.batch_size} "
        f"({2 * config.batch_size} views); conv_impl "
        f"{config.encoder.conv_impl}; {args.steps} steps")
  print(f"\nssljax train_step: {jx['wall_ms_per_step']:.1f} ms/step wall, "
        f"{jx['sum_of_parts_ms']:.1f} ms of XLA operations (concurrent)")
  for part, ms in jx["parts_ms"].items():
    print(f"  {ms:8.1f} ms  {part}")
    if ms >= 0.1 * jx["sum_of_parts_ms"]:
      print("              " + ", ".join(
          f"{kind} {kms:.1f}" for kind, kms in
          list(jx["parts_by_kind_ms"][part].items())[:5]))
  print("  largest operations:")
  for op, ms in list(jx["top_ops_ms"].items())[:8]:
    print(f"  {ms:8.1f} ms    {op[:100]}")
  print(f"\nPyTorch eager step: {tr['wall_ms_per_step']:.1f} ms/step wall, "
        f"{tr['sum_of_ops_ms']:.1f} ms self CPU time of ATen operators")
  for op, ms in tr["top_ops_ms"].items():
    print(f"  {ms:8.1f} ms  {op}")
  out = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": load,
         "load_average_end": os.getloadavg()[0], "batch_size": config.batch_size,
         "conv_impl": config.encoder.conv_impl, "steps": args.steps,
         "jax": jax.__version__, "torch": torch.__version__,
         "malloc": loaded_malloc() or "glibc malloc (system)",
         "torch_threads": args.torch_threads, "ssljax": jx, "pytorch": tr}
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(out, indent=2))
  print(f"\nwritten to {args.out}")


if __name__ == "__main__":
  main()
