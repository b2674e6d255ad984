"""One section of the GPU session: SimCLR train-step images/s with a standard
ResNet, ssljax vs PyTorch eager vs PyTorch whole-step ``torch.compile``, in
float32 and bfloat16, with loss checks and MFU; one JSON record.

    python benchmarks/gpu_session_step.py --encoder resnet50 --out r50.json
    python benchmarks/gpu_session_step.py --encoder resnet18 --out r18.json
    python benchmarks/gpu_session_step.py --encoder resnet18 --dry_run   # CPU
    python benchmarks/gpu_session_step.py --env --out env.json           # versions
    python benchmarks/gpu_session_step.py --summarize DIR --out summary.md

``benchmarks/gpu_session.sh`` runs the sections under their time limits;
this file is what each runs.

The step. SimCLR on pre-made views (both ``[B, S, S, 3]`` float32, random
normal, the same arrays for both frameworks): the forward of the 2B views as
one batch (BN statistics over all of them), the 2-layer projection head
(hidden = encoder width, 128 out, BN), NT-Xent (T = 0.2) on float32 logits,
backward, SGD with momentum 0.9 and weight decay 1e-6 on the weights (not on
biases and BN parameters), constant learning rate. Augmentation is not
timed (it is the same for any encoder, and PyTorch does it on the host).

* ssljax: the library's own step (``ssljax.train.build.build_method`` of a
  config with ``compute_dtype``, then ``SimCLR.loss`` + ``method.tx`` through
  ``ssljax.methods.base.loss_step``, one ``jax.jit`` with the state donated);
  ``conv_impl="xla"`` (what ``"auto"`` is on a GPU; ``--conv-impl``
  changes it, and ``resnet_cpu_step.py`` runs this file on the CPU with the
  shipped configs' ``"auto"`` and start-up).
* PyTorch (``_torch_resnet.py``): the same network written in torch,
  channels_last, SGD with ``torch._foreach`` kernels (``ForeachSGD``: those
  of ``torch.optim.SGD(foreach=True)``), TF32 allowed (XLA's default float32
  precision on NVIDIA GPUs uses TF32 too), ``cudnn.benchmark``; bfloat16 is
  AMP: ``torch.autocast(dtype=torch.bfloat16)`` around the forward, the
  loss in float32. "compiled" is ``torch.compile`` of the WHOLE step
  (forward, loss, backward, optimizer), inductor by default.

Sides (at most six): ``ssljax_f32``, ``ssljax_bf16``, ``torch_eager_f32``,
``torch_eager_bf16`` (AMP), ``torch_compiled_f32``, ``torch_compiled_bf16``.
They are prepared in priority order -- per dtype (``--dtypes`` order, bf16
first) ssljax, eager torch, compiled torch -- and timed
together in interleaved rounds (``_compare.py``: the order alternates; each
ratio is the median of per-round time ratios with a 95% bootstrap interval;
> 1: the first side is faster). A side that fails to build or compile is
left out with the error in the record; with ``--deadline-s`` a side whose
preparation would run past the deadline (less what the rounds need) is cut
by an alarm and left out, so the section still times the others. The record
is written after each side is prepared (``status: "preparing"``), so a
section killed by its time limit leaves what it had.

Checks (in the record, flagged, not fatal: a one-shot session keeps its
figures): every side starts from the same weights (ssljax's initial
variables, copied into torch) and the same views, so the first-step losses
must agree -- within 2e-2 (relative) for float32 sides (TF32 on a GPU) and
5e-2 for bf16 ones, against ssljax float32 -- and each torch side's first
parameter update must match ssljax's of the same dtype (relative difference
of all updates together within 5e-2 for float32; for bf16 within 1.5e-1 or
twice the difference between ssljax's own bf16 and f32 updates, whichever is
larger). The losses over all timed steps must stay finite. The views are
random, so the losses say nothing about learning; they only tie the sides
to one function.

MFU. FLOPs of one step = 3 x the forward's convolution and matmul FLOPs,
counted from the jaxpr of ``SimCLR.loss`` (the same arithmetic on both
sides); XLA's cost analyses (``Lowered.cost_analysis``, the model as
written, and ``Compiled.cost_analysis``, after XLA's rewrites) are recorded
beside it. MFU = FLOPs x steps/s / the device's dense peak: bf16 sides
against the bf16 tensor-core peak, f32 sides against the TF32 one (the
data-sheet values in :data:`PEAK_TFLOPS`, stated in the record;
``--peak-tflops`` overrides).

Dry run (``--dry_run``): every code path on the CPU with a tiny model
(stages (1, 1), widths 4-8), 16x16 images, batch 4, 2 rounds of 1 step,
torch.compile with the ``aot_eager`` backend (dynamo's capture and
AOTAutograd; inductor's CUDA code generation cannot run on a CPU anyway),
never refused for load; ``--no-torch`` leaves torch out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import glob
import importlib
import json
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import _compare as cmp

REPO = Path(__file__).resolve().parents[1]

#: Dense peak TFLOP/s (vendor data sheets, without sparsity): "bfloat16" the
#: bf16 tensor-core peak, "float32" the TF32 one (XLA's and -- with
#: allow_tf32 -- PyTorch's float32 convolutions and matmuls on these GPUs).
#: Matched against the device name in this order.
PEAK_TFLOPS = {
    "H100 PCIe": {"float32": 378.0, "bfloat16": 756.0},
    "H100": {"float32": 494.7, "bfloat16": 989.4},       # SXM5 (80GB HBM3)
    "H200": {"float32": 494.7, "bfloat16": 989.4},
    "A100": {"float32": 156.0, "bfloat16": 312.0},
}

#: Per encoder: the block, the stem and the GPU session's image size and
#: batch (source images; each gives 2 views).
ENCODERS = {
    "resnet18": {"block": "basic", "stage_sizes": (2, 2, 2, 2),
                 "stem": "cifar", "image_size": 32, "batch_size": 256},
    "resnet50": {"block": "bottleneck", "stage_sizes": (3, 4, 6, 3),
                 "stem": "imagenet", "image_size": 224, "batch_size": 64},
}

DTYPE_TAG = {"float32": "f32", "bfloat16": "bf16"}
TEMPERATURE = 0.2
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-6
HEAD = {"out_dim": 128, "hidden_dim": 0, "num_layers": 2}
#: Relative tolerances of the checks: first-step loss, first update.
LOSS_TOL = {"float32": 2e-2, "bfloat16": 5e-2}
UPDATE_TOL = {"float32": 5e-2, "bfloat16": 1.5e-1}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--encoder", choices=sorted(ENCODERS), default="resnet18")
  p.add_argument("--image-size", type=int, default=None,
                 help="views are S x S x 3 (default: 32 for resnet18, 224 "
                      "for resnet50)")
  p.add_argument("--batch-size", type=int, default=None,
                 help="source images per step, 2 views each (default: 256 "
                      "for resnet18, 64 for resnet50)")
  p.add_argument("--dtypes", default="bfloat16,float32",
                 help="compute dtypes, in priority order")
  p.add_argument("--torch", default="eager,compiled",
                 help="torch sides: eager, compiled (whole step), both, or "
                      "none")
  p.add_argument("--no-torch", action="store_true",
                 help="ssljax sides only (same as --torch none)")
  p.add_argument("--torch-compile-backend", default=None,
                 help="torch.compile backend (default inductor; aot_eager "
                      "with --dry_run)")
  cmp.add_arguments(p, rounds=cmp.MIN_ROUNDS)
  p.add_argument("--steps", type=int, default=8,
                 help="timed steps per side per round")
  p.add_argument("--warmup", type=int, default=3,
                 help="steps per side after the first (compiling) one, "
                      "untimed by the rounds (they estimate the step time)")
  p.add_argument("--deadline-s", type=float, default=float(
      os.environ.get("GPU_SESSION_DEADLINE_S", 0) or 0),
                 help="seconds from the start by which the record must be "
                      "written (0: none; default $GPU_SESSION_DEADLINE_S)")
  p.add_argument("--peak-tflops", type=float, default=None,
                 help="the device's dense peak (both dtypes) for MFU")
  p.add_argument("--require-gpu", action="store_true",
                 help="exit 3 unless JAX's default backend is a GPU")
  p.add_argument("--dry_run", "--dry-run", action="store_true",
                 help="every code path on a tiny model on the CPU, no "
                      "timing to read")
  p.add_argument("--env", action="store_true",
                 help="only record the versions and devices")
  p.add_argument("--summarize", metavar="DIR", default=None,
                 help="only write a text summary of DIR's section records")
  p.add_argument("--conv-impl", default="xla",
                 help="the ssljax encoder's conv_impl (default xla, what "
                      "\"auto\" is on a GPU; the CPU comparison, "
                      "resnet_cpu_step.py, passes auto)")
  p.add_argument("--onednn-max-cout", type=int, default=0,
                 help="CPU only: run layers with up to this many output "
                      "channels on oneDNN (ssljax.cpu.conv.ONEDNN_MAX_COUT; "
                      "0: the library's value) -- to measure the policy")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  spec = ENCODERS[args.encoder]
  args.stage_sizes, args.widths = spec["stage_sizes"], None
  if args.dry_run:
    args.stage_sizes, args.widths = (1, 1), (4, 8)
    args.image_size = args.image_size or 16
    args.batch_size = args.batch_size or 4
    args.rounds, args.steps, args.warmup = 2, 1, 1
    args.torch_compile_backend = args.torch_compile_backend or "aot_eager"
  args.image_size = args.image_size or spec["image_size"]
  args.batch_size = args.batch_size or spec["batch_size"]
  args.torch_compile_backend = args.torch_compile_backend or "inductor"
  args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
  bad = [d for d in args.dtypes if d not in DTYPE_TAG]
  if bad or not args.dtypes:
    p.error(f"--dtypes takes float32 and/or bfloat16; got {bad}")
  modes = {"both": ["eager", "compiled"], "none": []}.get(
      args.torch, [m.strip() for m in args.torch.split(",") if m.strip()])
  if any(m not in ("eager", "compiled") for m in modes):
    p.error(f"--torch takes eager, compiled, both or none; got {args.torch!r}")
  args.torch_modes = [] if args.no_torch else modes
  if args.batch_size < 2:
    p.error("--batch-size must be >= 2 (NT-Xent needs negatives)")
  return args


# --------------------------------------------------------------------------
# Time budget
# --------------------------------------------------------------------------

class Deadline:
  """The section's time budget: seconds left, and an alarm that cuts a
  preparation that would overrun (``TimeoutError`` in the main thread; a
  call into C++ -- an XLA compile -- is cut when it returns)."""

  def __init__(self, seconds: float):
    self.t0 = time.monotonic()
    self.seconds = float(seconds or 0)

  def left(self) -> float:
    if not self.seconds:
      return math.inf
    return self.seconds - (time.monotonic() - self.t0)

  @contextlib.contextmanager
  def limit(self, seconds: float):
    if not math.isfinite(seconds) or not hasattr(signal, "SIGALRM"):
      yield
      return

    def _alarm(signum, frame):  # pylint: disable=unused-argument
      raise TimeoutError(f"cut after {seconds:.0f} s (section deadline)")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
      yield
    finally:
      signal.setitimer(signal.ITIMER_REAL, 0)
      signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# Versions and devices
# --------------------------------------------------------------------------

def versions(with_torch: bool = True) -> dict:
  """Versions of what the session uses (``None``: not importable), JAX's
  devices and, where torch is there, its CUDA facts (``with_torch=False``:
  torch is not imported)."""
  out = {"python": sys.version.split()[0]}
  names = ("jax", "jaxlib", "jax_cuda13_plugin", "jax_cuda12_plugin", "flax",
           "optax", "chex", "dm_pix", "numpy") + (
               ("torch", "triton") if with_torch else ())
  for name in names:
    try:
      out[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
      out[name] = None
      out[f"{name}_error"] = f"{type(e).__name__}: {e}"[:200]
  try:
    import jax  # pylint: disable=import-outside-toplevel
    out["jax_backend"] = jax.default_backend()
    out["jax_devices"] = [str(d) for d in jax.devices()]
    out["jax_device_kind"] = jax.devices()[0].device_kind
    out["jax_default_matmul_precision"] = str(
        jax.config.jax_default_matmul_precision)
  except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
    out["jax_error"] = f"{type(e).__name__}: {e}"[:300]
  if out.get("torch"):
    import torch  # pylint: disable=import-outside-toplevel
    out["torch_cuda_available"] = torch.cuda.is_available()
    out["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
      out["torch_cuda_device"] = torch.cuda.get_device_name(0)
      out["torch_cudnn"] = torch.backends.cudnn.version()
    out["torch_dynamo_trace_autograd_ops"] = hasattr(
        torch._dynamo.config, "trace_autograd_ops")  # pylint: disable=protected-access
  try:
    importlib.import_module("ssljax.methods.simclr")
    out["ssljax_importable"] = True
  except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
    out["ssljax_importable"] = False
    out["ssljax_error"] = f"{type(e).__name__}: {e}"[:300]
  out["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
  out["XLA_PYTHON_CLIENT_PREALLOCATE"] = os.environ.get(
      "XLA_PYTHON_CLIENT_PREALLOCATE", "")
  return out


def peak_tflops(device_name: str, dtype: str, override=None):
  """(peak TFLOP/s, the table's key) of ``device_name``, or (None, None)."""
  if override:
    return float(override), "--peak-tflops"
  for key, peaks in PEAK_TFLOPS.items():
    if key in (device_name or ""):
      return peaks[dtype], key
  return None, None


# --------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------

def _subjaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _subjaxprs(v)


def matmul_flops(jaxpr) -> float:
  """FLOPs (2 per multiply-add) of the convolutions and dot products in a
  jaxpr, sub-jaxprs included: a convolution output element costs 2 x
  (kernel input features x kernel window), a dot output element 2 x the
  contracted size."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      rhs, out = eqn.invars[1].aval, eqn.outvars[0].aval
      spec = eqn.params["dimension_numbers"].rhs_spec
      window = math.prod(rhs.shape[d] for d in spec[2:])
      total += 2.0 * math.prod(out.shape) * rhs.shape[spec[1]] * window
    elif name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs, out = eqn.invars[0].aval, eqn.outvars[0].aval
      total += 2.0 * math.prod(out.shape) * math.prod(
          lhs.shape[d] for d in contract)
    for value in eqn.params.values():
      for sub in _subjaxprs(value):
        total += matmul_flops(sub)
  return total


def xla_flops(stage) -> float | None:
  """``flops`` of a ``Lowered`` / ``Compiled``'s cost analysis, or None."""
  try:
    cost = stage.cost_analysis()
  except Exception:  # noqa: BLE001  pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops else None


# --------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------

def ssljax_config(args, dtype: str) -> dict:
  """The run config the ssljax side is built from (a plain dict: the
  session does not need ml_collections)."""
  spec = ENCODERS[args.encoder]
  encoder = {"name": args.encoder, "stem": spec["stem"],
             "conv_impl": args.conv_impl}
  if args.dry_run:
    encoder.update(stage_sizes=tuple(args.stage_sizes),
                   widths=tuple(args.widths))
  return {
      "method": "simclr", "dataset": "synthetic", "seed": 0,
      "batch_size": args.batch_size, "num_steps": 1000,
      "temperature": TEMPERATURE, "compute_dtype": dtype,
      "encoder": encoder, "head": dict(HEAD),
      "optimizer": {"name": "sgd", "base_lr": LR, "lr_scaling": "none",
                    "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM,
                    "schedule": "step"},
  }


def rel_diff(a, b) -> float:
  """``|a - b| / |b|`` over lists of arrays together (Frobenius norms)."""
  num = math.sqrt(sum(float(np.sum((np.asarray(x, np.float64)
                                    - np.asarray(y, np.float64)) ** 2))
                      for x, y in zip(a, b)))
  den = math.sqrt(sum(float(np.sum(np.asarray(y, np.float64) ** 2))
                      for y in b))
  return num / max(den, 1e-30)


def write_partial(args, record: dict) -> None:
  if args.out is not None:
    cmp.write_record(args.out, record)


def run_section(args) -> dict:
  try:
    return _run_section(args)
  finally:
    gc.unfreeze()


def _run_section(args) -> dict:
  deadline = Deadline(args.deadline_s)

  def log(text):
    print(f"[{time.monotonic() - deadline.t0:6.1f} s] {text}", flush=True)

  load = cmp.check_load(args.max_load, args.allow_load or args.dry_run)
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from ssljax.methods.base import loss_step  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import build_method  # pylint: disable=import-outside-toplevel
  if args.onednn_max_cout:
    import ssljax.cpu.conv as cpu_conv  # pylint: disable=import-outside-toplevel
    cpu_conv.ONEDNN_MAX_COUT = int(args.onednn_max_cout)

  info = versions(with_torch=bool(args.torch_modes))
  print(json.dumps({k: v for k, v in info.items() if not k.endswith(
      "_error")}))
  if args.require_gpu and jax.default_backend() != "gpu":
    print(f"--require-gpu: JAX's backend is {jax.default_backend()!r} "
          f"({info.get('jax_devices')}); nothing timed", file=sys.stderr)
    raise SystemExit(3)
  device_name = info.get("jax_device_kind", "")

  torch = trn = torch_skip = None
  if args.torch_modes:
    try:
      torch_ = importlib.import_module("torch")
      trn_ = importlib.import_module("_torch_resnet")
    except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
      torch_skip = f"torch not importable: {type(e).__name__}: {e}"
    else:
      if jax.default_backend() == "gpu" and not torch_.cuda.is_available():
        torch_skip = "torch has no CUDA device (a CPU-only build?)"
      else:
        torch, trn = torch_, trn_
    if torch_skip:
      print(f"PyTorch sides left out: {torch_skip}")
  tdev = None
  if torch is not None and args.dry_run:
    # One thread: on a busy CPU, torch's spinning worker threads wait for
    # each other (steps of a tiny model took 0.1-0.8 s with 2).
    torch.set_num_threads(1)
  if torch is not None:
    tdev = torch.device("cuda" if torch.cuda.is_available() and not
                        args.dry_run else "cpu")
    if tdev.type == "cuda":
      torch.backends.cuda.matmul.allow_tf32 = True
      torch.backends.cudnn.allow_tf32 = True
      torch.backends.cudnn.benchmark = True

  b, s = args.batch_size, args.image_size
  rng = np.random.default_rng(0)
  v1_np = rng.standard_normal((b, s, s, 3), np.float32)
  v2_np = rng.standard_normal((b, s, s, 3), np.float32)
  v1, v2 = jnp.asarray(v1_np), jnp.asarray(v2_np)

  record = {"benchmark": "gpu_session_step", "status": "preparing",
            "dry_run": bool(args.dry_run), "encoder": args.encoder,
            "config": {
                "image_size": s, "batch_size": b, "views_per_step": 2 * b,
                "stage_sizes": list(args.stage_sizes),
                "widths": list(args.widths) if args.widths else None,
                "stem": ENCODERS[args.encoder]["stem"], "head": HEAD,
                "temperature": TEMPERATURE,
                "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM,
                              "weight_decay": WEIGHT_DECAY,
                              "weight_decay_on": "ndim > 1 (not biases, BN)"},
                "dtypes": args.dtypes, "torch_modes": args.torch_modes,
                "torch_compile_backend": args.torch_compile_backend,
                "torch_memory_format": "channels_last",
                "conv_impl": args.conv_impl,
                "onednn_max_cout": args.onednn_max_cout or None,
                "torch_tf32": tdev is not None and tdev.type == "cuda",
                "rounds": args.rounds, "steps_per_round": args.steps,
                "warmup_steps": args.warmup,
                "deadline_s": args.deadline_s or None},
            "versions": info, "torch_skipped": torch_skip, "sides": {}}

  # ssljax: one init (float32 variables; the compute dtype does not change
  # them), kept on the host so every side starts from the same weights.
  t0 = time.perf_counter()
  methods = {d: build_method(ssljax_config(args, d), 50000,
                             input_shape=(s, s, 3))[0] for d in args.dtypes}
  # threefry_partitionable=False: the same kind of random weights, but XLA
  # compiles the init several times faster (10 s -> 1.7 s for the dry run's
  # tiny ResNet on the 2-core CPU); the weights are only a starting point.
  # One jit around init: the optimizer state's zeros are made in the same
  # program rather than op by op.
  fast_rng = getattr(jax, "threefry_partitionable", None)
  rng_mode = (fast_rng(False) if fast_rng is not None
              else contextlib.nullcontext())
  with rng_mode:
    init = jax.device_get(jax.jit(lambda k: methods[args.dtypes[0]].init(
        k, (s, s, 3)))(jax.random.key(0)))
  record["init_seconds"] = time.perf_counter() - t0
  leaves = jax.tree_util.tree_leaves(init.params)
  record["param_count"] = int(sum(x.size for x in leaves))
  log(f"{args.encoder}: {record['param_count']:,} parameters, views "
      f"{2 * b} x {s}x{s}x3, init {record['init_seconds']:.1f} s")

  # FLOPs: 3 x the forward's convolutions and matmuls (the loss included).
  method0 = methods[args.dtypes[0]]
  fwd = jax.make_jaxpr(method0.loss)(init.params, init.batch_stats, v1, v2)
  flops = 3.0 * matmul_flops(fwd.jaxpr)
  record["flops"] = {"per_step": flops,
                     "definition": "3 x the forward's convolution and matmul "
                                   "FLOPs (jaxpr of SimCLR.loss; 2 per "
                                   "multiply-add)"}

  sides, prep, step_s, holders = {}, record["sides"], {}, {}
  first_loss, first_update, torch_updates = {}, {}, {}
  init_torch_layout = None

  def reserve() -> float:
    """Seconds the rounds (with one more side, as slow as the slowest so
    far) and the record still need, with 20% to spare."""
    known = list(step_s.values()) or [0.0]
    per_round_step = sum(known) + max(known)
    return per_round_step * args.rounds * args.steps * 1.2 + 10.0

  def prepare(name, fn):
    left = deadline.left() - reserve()
    if left < 5.0:
      prep[name] = {"skipped": f"no time left ({deadline.left():.0f} s to "
                               f"the deadline, the rounds need "
                               f"{reserve():.0f} s)"}
      log(f"{name}: skipped ({prep[name]['skipped']})")
      return
    t = time.perf_counter()
    try:
      with deadline.limit(left):
        info_ = fn()
    except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
      prep[name] = {"error": f"{type(e).__name__}: {e}"[:2000],
                    "seconds": time.perf_counter() - t}
      for d in (sides, step_s, holders, torch_updates, first_loss):
        d.pop(name, None)
      log(f"{name}: FAILED ({prep[name]['error'][:300]})")
    else:
      prep[name] = {**info_, "seconds": time.perf_counter() - t}
      log(f"{name}: ready in {prep[name]['seconds']:.1f} s (step "
          f"{1e3 * step_s[name]:.1f} ms, first loss {first_loss[name]:.5f})")
    write_partial(args, record)

  # ---- ssljax sides ----
  def ssljax_side(dtype):
    name = f"ssljax_{DTYPE_TAG[dtype]}"
    method = methods[dtype]

    def step(state, a, b_):
      return loss_step(method, state, a, b_,
                       metrics=lambda loss, z: {"loss": loss})

    def build():
      state = jax.tree.map(jnp.asarray, init)
      t = time.perf_counter()
      lowered = jax.jit(step, donate_argnums=0).lower(state, v1, v2)
      compiled = lowered.compile()
      compile_s = time.perf_counter() - t
      state, metrics = compiled(state, v1, v2)
      first_loss[name] = float(metrics["loss"])
      new = jax.device_get(state.params)
      first_update[name] = [n - o for n, o in zip(
          jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(
              init.params))]
      holder = {"state": state}

      def run(steps):
        st, out = holder["state"], None
        for _ in range(steps):
          st, out = compiled(st, v1, v2)
        jax.block_until_ready((st, out))
        holder["state"], holder["metrics"] = st, out
      t = time.perf_counter()
      run(args.warmup)
      step_s[name] = (time.perf_counter() - t) / max(args.warmup, 1)
      sides[name], holders[name] = run, holder
      return {"compile_seconds": compile_s, "dtype": dtype,
              "xla_flops_lowered": xla_flops(lowered),
              "xla_flops_compiled": xla_flops(compiled),
              "first_loss": first_loss[name]}
    return name, build

  # ---- torch sides ----
  def torch_side(dtype, mode):
    name = f"torch_{mode}_{DTYPE_TAG[dtype]}"

    def build():
      nonlocal init_torch_layout
      spec = ENCODERS[args.encoder]
      torch.manual_seed(0)
      model = trn.build_model(
          stage_sizes=args.stage_sizes, block=spec["block"],
          widths=args.widths, stem=spec["stem"], **HEAD)
      trn.load_flax(model, init.params, init.batch_stats)
      if init_torch_layout is None:
        init_torch_layout = {k: v.detach().clone() for k, v in
                             model.named_parameters()}
      fmt = torch.channels_last
      trainer = trn.TorchSimCLRTrainer(
          model.to(tdev), temperature=TEMPERATURE, lr=LR, momentum=MOMENTUM,
          weight_decay=WEIGHT_DECAY, amp=dtype == "bfloat16",
          compile=mode == "compiled", backend=args.torch_compile_backend,
          memory_format=fmt)
      to = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).to(
          tdev).contiguous(memory_format=fmt)
      inputs = (to(v1_np), to(v2_np))
      t = time.perf_counter()
      first_loss[name] = float(trainer.step(*inputs))
      compile_s = time.perf_counter() - t
      # The first update, in ssljax's leaf order (torch layout -> flax).
      new = {k: v.detach().float().cpu() for k, v in
             trainer.model.named_parameters()}
      upd_t = {k: (new[k] - init_torch_layout[k].cpu()).numpy() for k in new}
      holder = {"loss": None}

      def run(steps):
        loss = None
        for _ in range(steps):
          loss = trainer.step(*inputs)
        holder["loss"] = float(loss)       # waits for the device
        return holder["loss"]
      t = time.perf_counter()
      run(args.warmup)
      step_s[name] = (time.perf_counter() - t) / max(args.warmup, 1)
      sides[name], holders[name], torch_updates[name] = run, holder, upd_t
      out = {"compile_seconds" if mode == "compiled" else
             "first_step_seconds": compile_s, "dtype": dtype,
             "amp": dtype == "bfloat16", "mode": mode,
             "first_loss": first_loss[name]}
      if mode == "compiled":
        out["backend"] = args.torch_compile_backend
        out["step_capture"] = trn.step_capture()
      return out
    return name, build

  # Priority: the first dtype's three sides (ssljax, eager, compiled: the
  # session's goal figures are bf16's), then the next dtype's.
  for d in args.dtypes:
    prepare(*ssljax_side(d))
    if torch is not None:
      for mode in ("eager", "compiled"):
        if mode in args.torch_modes:
          prepare(*torch_side(d, mode))

  # ---- checks ----
  checks = loss_checks(args, prep, first_loss, first_update, torch_updates,
                       init, trn if torch is not None else None)
  record["checks"] = checks
  for name, c in checks.items():
    if not c.get("passed", True):
      log(f"CHECK FAILED: {name}: {c}")

  # ---- rounds ----
  if not sides:
    record["status"] = "failed: no side could be prepared"
    write_partial(args, record)
    return record
  log(f"{args.rounds} rounds x {args.steps} steps, sides: "
      f"{', '.join(sides)} ({deadline.left():.0f} s to the deadline)")
  # The harness collects garbage before every timed call; with jax, torch
  # and dynamo loaded a full collection took 0.5 s (on the 2-core CPU).
  # Frozen, the objects made so far are not scanned again: each collection
  # sees only what the rounds make.
  gc.collect()
  gc.freeze()
  rounds = cmp.interleaved_rounds(sides, rounds=args.rounds,
                                  steps_per_round=args.steps, warmup=0,
                                  order=args.order)
  cmp.finish_load(load)
  med = {k: statistics.median(args.steps * b / t for t in v)
         for k, v in rounds.times.items()}
  summaries = pair_summaries(args, rounds)

  # The loss after the last timed step of each side: finite?
  for name, h in holders.items():
    last = (float(h["metrics"]["loss"]) if "metrics" in h
            else h.get("loss"))
    prep[name]["last_loss"] = last
    prep[name]["finite_after_rounds"] = bool(np.isfinite(last))
    checks[f"finite_{name}"] = {"loss": last,
                                "passed": bool(np.isfinite(last))}

  # MFU (one GPU: JAX's device name serves the torch sides too).
  mfu = {}
  for name, ips in med.items():
    dtype = prep[name]["dtype"]
    peak, key = peak_tflops(device_name, dtype, args.peak_tflops)
    achieved = flops * ips / b / 1e12
    mfu[name] = {"achieved_tflops": achieved, "peak_tflops": peak,
                 "peak_from": key,
                 "mfu": achieved / peak if peak else None}
  print_table(args, med, mfu, summaries)

  status = "complete"
  missing = [k for k, v in prep.items() if "error" in v or "skipped" in v]
  if missing or torch_skip:
    status = "partial: " + ", ".join(missing + (["torch"] if torch_skip
                                                  else []))
  record.update(status=status)
  final = cmp.results_record(
      benchmark="gpu_session_step", rounds=rounds, summaries=summaries,
      load=load, machine={"device": device_name},
      extra={k: v for k, v in record.items() if k != "benchmark"} | {
          "median_images_per_s": med,
          "median_views_per_s": {k: 2 * v for k, v in med.items()},
          "images_per_s_definition": "source images per second (2 views "
                                     "each)",
          "mfu": mfu,
          "peak_tflops_table": PEAK_TFLOPS,
          "peak_note": ("dense data-sheet peaks; float32 sides against the "
                        "TF32 peak (XLA's default float32 precision and "
                        "torch with allow_tf32 use TF32 tensor cores), "
                        "bfloat16 sides against the bf16 peak"),
          "section_seconds": time.monotonic() - deadline.t0})
  write_partial(args, final)
  return final


def loss_checks(args, prep, first_loss, first_update, torch_updates, init,
                trn):
  """The first-step loss of every side against ssljax float32 (or the first
  ssljax side); each torch side's first update against ssljax's of the same
  dtype. For bf16 the update tolerance is at least twice the difference of
  ssljax's own bf16 and f32 updates (recorded as
  ``first_update_ssljax_bf16_vs_ssljax_f32``): bf16 rounding alone moves a
  tiny network's gradients by several percent."""
  import jax  # pylint: disable=import-outside-toplevel
  out = {}
  ref_name = ("ssljax_f32" if "ssljax_f32" in first_loss else
              next((k for k in first_loss if k.startswith("ssljax")), None))
  if ref_name is None:
    return out
  ref = first_loss[ref_name]
  for name, loss in first_loss.items():
    if name == ref_name:
      continue
    dtype = prep[name]["dtype"]
    err = abs(loss - ref) / max(abs(ref), 1e-30)
    out[f"first_loss_{name}_vs_{ref_name}"] = {
        "loss": loss, "reference": ref, "rel_diff": err,
        "tolerance": LOSS_TOL[dtype], "passed": bool(
            np.isfinite(loss) and err <= LOSS_TOL[dtype])}
  bf16_noise = 0.0
  if "ssljax_bf16" in first_update and "ssljax_f32" in first_update:
    bf16_noise = rel_diff(first_update["ssljax_bf16"],
                          first_update["ssljax_f32"])
    out["first_update_ssljax_bf16_vs_ssljax_f32"] = {
        "rel_diff": bf16_noise, "informational": True,
        "passed": bool(np.isfinite(bf16_noise))}
  if trn is None or not torch_updates:
    return out
  # ssljax's updates in torch layout, by the mapping the weights took.
  model = trn.build_model(stage_sizes=args.stage_sizes,
                          block=ENCODERS[args.encoder]["block"],
                          widths=args.widths,
                          stem=ENCODERS[args.encoder]["stem"], **HEAD)
  treedef = jax.tree_util.tree_structure(init.params)
  for name, upd_t in torch_updates.items():
    dtype = prep[name]["dtype"]
    jname = f"ssljax_{DTYPE_TAG[dtype]}"
    if jname not in first_update:
      continue
    upd_tree = jax.tree_util.tree_unflatten(treedef, first_update[jname])
    upd_j = trn.torch_state_from_flax(model, upd_tree, init.batch_stats)
    names = list(upd_t)
    err = rel_diff([upd_t[k] for k in names], [upd_j[k] for k in names])
    tol = UPDATE_TOL[dtype]
    if dtype == "bfloat16":
      tol = max(tol, 2.0 * bf16_noise)
    out[f"first_update_{name}_vs_{jname}"] = {
        "rel_diff": err, "tolerance": tol, "passed": bool(err <= tol),
        "tensors": len(names)}
  return out


def pair_summaries(args, rounds) -> dict:
  """Ratio summaries (``_compare.ratio_summary``: > 1, the first side is
  faster) of every pair the session reports."""
  t = rounds.times
  pairs = []
  for d in args.dtypes:
    g = DTYPE_TAG[d]
    pairs += [(f"ssljax_{g}", f"torch_eager_{g}"),
              (f"ssljax_{g}", f"torch_compiled_{g}"),
              (f"torch_compiled_{g}", f"torch_eager_{g}")]
  pairs += [("ssljax_bf16", "ssljax_f32"),
            ("torch_eager_bf16", "torch_eager_f32"),
            ("torch_compiled_bf16", "torch_compiled_f32"),
            ("ssljax_bf16", "torch_eager_f32"),
            ("ssljax_bf16", "torch_compiled_f32")]
  return {f"{a}_vs_{c}": cmp.ratio_summary(t[a], t[c],
                                           confidence=args.confidence,
                                           n_boot=args.n_boot)
          for a, c in pairs if a in t and c in t}


def print_table(args, med, mfu, summaries) -> None:
  print(f"\n{args.encoder}, {2 * args.batch_size} views of "
        f"{args.image_size}x{args.image_size}: median images/s (source "
        "images, 2 views each)")
  for name, ips in med.items():
    m = mfu[name]
    text = (f", MFU {100 * m['mfu']:.1f}% of {m['peak_tflops']} TFLOP/s"
            if m["mfu"] is not None else "")
    print(f"  {name:<22} {ips:10.1f}  ({m['achieved_tflops']:.2f} "
          f"TFLOP/s{text})")
  print("ratios (per-round time of the second / the first; > 1: the first "
        "is faster)")
  for key, s in summaries.items():
    a, c = key.split("_vs_")
    print("  " + cmp.format_summary(s, a, c))


# --------------------------------------------------------------------------
# Summary of a session's records
# --------------------------------------------------------------------------

def summarize(folder) -> str:
  """A text table of the section records in ``folder``: images/s and MFU of
  every side, the ratios with their intervals, the checks and statuses."""
  lines = []
  env = Path(folder) / "env.json"
  if env.exists():
    v = json.loads(env.read_text())
    lines.append("versions: " + ", ".join(
        f"{k} {v.get(k)}" for k in ("jax", "jaxlib", "flax", "torch",
                                    "torch_cuda", "torch_cudnn",
                                    "jax_device_kind", "torch_cuda_device")
        if k in v))
  for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    rec = json.loads(Path(path).read_text())
    if rec.get("benchmark") != "gpu_session_step":
      continue
    c = rec.get("config", {})
    lines.append(f"\n## {rec.get('encoder')} ({os.path.basename(path)}): "
                 f"{c.get('views_per_step')} views of {c.get('image_size')}"
                 f"x{c.get('image_size')}, status {rec.get('status')}"
                 + (", DRY RUN" if rec.get("dry_run") else ""))
    for name, p in rec.get("sides", {}).items():
      if "error" in p or "skipped" in p:
        lines.append(f"  {name}: {p.get('error') or p.get('skipped')}"[:400])
    for name, ips in rec.get("median_images_per_s", {}).items():
      m = rec.get("mfu", {}).get(name, {})
      mfu = (f"MFU {100 * m['mfu']:.1f}%" if m.get("mfu") is not None
             else "MFU n/a")
      lines.append(f"  {name:<22} {ips:10.1f} images/s  {mfu}")
    for key, s in rec.get("summary", {}).items():
      a, b = key.split("_vs_")
      lines.append("  " + cmp.format_summary(s, a, b))
    if "checks" not in rec:
      lines.append("  checks: not run (the section stopped before them)")
      continue
    bad = [k for k, v in rec["checks"].items() if not v["passed"]]
    lines.append("  checks: " + ("all passed" if not bad else
                                 "FAILED " + ", ".join(bad)))
  return "\n".join(lines) + "\n"


def main(argv=None):
  args = parse_args(argv)
  if args.summarize:
    text = summarize(args.summarize)
    print(text)
    if args.out:
      Path(args.out).write_text(text)
    return text
  if args.env:
    info = versions()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    info["git"] = cmp.git_state()
    print(json.dumps(info, indent=1))
    if args.out:
      cmp.write_record(args.out, info)
    return info
  return run_section(args)


if __name__ == "__main__":
  main()
