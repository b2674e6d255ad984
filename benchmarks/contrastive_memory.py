"""Real peak memory of NT-Xent, dense vs blockwise: the whole SimCLR step
(encoder included) and the dense loss alone grown until it fails.

Launch (the memory figures do not depend on the load, but the machine must
have the memory: nothing else big running)::

    python benchmarks/contrastive_memory.py                   # fmnist encoder
    python benchmarks/contrastive_memory.py --encoders fmnist,resnet18
    python benchmarks/contrastive_memory.py --dry_run         # tiny, ~1 minute

What is measured. Every configuration runs in a fresh subprocess (this
script with ``--child``), so that no peak of one configuration hides
another's:

* ``step``: one configuration = (encoder, pairs N, dense or blockwise loss).
  The child builds the SimCLR method of
  ``experiments/configs/simclr_fashion_mnist.py`` at batch N (2N views) with
  ``loss_block_size`` 0 (dense) or ``--block`` (blockwise), through
  ``ssljax.train.build.build_method`` (the library itself), makes N random
  uint8 images and the initial state, and compiles ``jax.jit(
  method.train_step, donate_argnums=0)``: augmentation, forward of both views,
  NT-Xent, backward, LARS update, i.e. everything a training step does.
  ``--encoders resnet18`` runs the same step with ``ResNet18(stem="cifar")``
  (as ``experiments/configs/moco_cifar10.py`` builds it) on 32x32x3 images,
  a 2-layer 512-d head and SimCLR's CIFAR crops (area 0.08-1, grayscale
  0.2).
* ``loss``: the value and gradient (w.r.t. both views) of
  ``ssljax.losses.nt_xent`` alone on random ``[N, D]`` embeddings, dense or
  blockwise.

The peak. After imports, data, state and compilation the child returns its
allocator's free pages to the kernel (tcmalloc's ``ReleaseFreeMemory`` or
``malloc_trim``: the calls must not reuse compilation's freed memory unseen),
reads its resident set (``VmRSS``), resets the kernel's high-water mark
(``/proc/self/clear_refs`` <- 5, so that compilation's own peak does not
count) and runs ``--steps`` calls. The figure is the peak resident set during
the calls minus the resident set before them: ``resource.getrusage(
RUSAGE_SELF).ru_maxrss`` after the calls minus the baseline (``VmHWM``
agrees; both are recorded), i.e. what the step needs on top of its inputs
(state, images). The peak including compilation (``ru_maxrss`` from before
the compilation on) is recorded beside it, and so is XLA's compile-time
estimate (``compiled.memory_analysis()``: temporaries, arguments, outputs),
which is what earlier figures quoted. Where the kernel does not allow the
reset, ``hwm_reset`` is false and the step figure is an upper bound: it
includes the compilation's peak when that was higher.

Failure, and the cap that keeps the machine up. The parent polls the
child's ``VmRSS`` (``/proc/<pid>/status``) every 10 ms and kills it above
``--mem_cap_gib`` (default: 75% of ``MemAvailable`` at the start); the child
also dies with its parent (``PR_SET_PDEATHSIG``) and sets ``RLIMIT_AS`` to
its address space after compilation plus the cap plus ``--as_slack_gib`` as
a backstop. (``RLIMIT_AS`` alone is no cap for XLA:CPU: its runtime
reserves about 1 GiB of address space on the first call, untouched, so the
limit would have to sit well above the resident cap; and an allocation the
limit refuses either raises XLA's ``RESOURCE_EXHAUSTED`` (a buffer) or
aborts the process with ``std::bad_alloc``, SIGABRT (the runtime's own).) An attempt fails when it is killed above the cap, aborts or raises
(``MemoryError``, XLA ``RESOURCE_EXHAUSTED``), or dies otherwise; the record
says which.

The dense loss alone is grown from ``--dense_start`` pairs by
``--dense_factor`` until an attempt fails (or ``--dense_max``), then bisected
to ``--dense_resolution`` pairs: the largest N that ran and the first that
failed under the cap. The blockwise loss alone then runs at that first
failing N (and at ``--block_pairs``, e.g. 32768 = 65,536 anchors).

Whole-step configurations larger than one that failed are skipped for that
loss (``skipped_after_failure``); the other loss still runs.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import ctypes
import importlib.util
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_PATH = REPO / "experiments" / "configs" / "simclr_fashion_mnist.py"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "contrastive_memory.json"
DRY_RUN_OUT = Path(tempfile.gettempdir()) / "contrastive_memory_dry_run.json"
GIB = 2 ** 30
RESULT_TAG = "CONTRASTIVE_MEMORY_RESULT "

#: encoder name -> (image shape, the config's dataset)
ENCODER_INPUTS = {"fmnist": ((28, 28, 1), "fashion_mnist"),
                  "resnet18": ((32, 32, 3), "cifar10"),
                  "tiny": ((28, 28, 1), "fashion_mnist")}


# --------------------------------------------------------------------------
# /proc helpers (Linux)
# --------------------------------------------------------------------------

def proc_status(pid="self") -> dict[str, int]:
  """``Vm*`` fields of ``/proc/<pid>/status`` in bytes ({} when gone)."""
  out = {}
  try:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Vm"):
          key, value = line.split(":", 1)
          parts = value.split()
          if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
  except (OSError, ValueError):
    return {}
  return out


def meminfo() -> dict[str, int]:
  """``MemTotal`` and ``MemAvailable`` in bytes."""
  out = {}
  with open("/proc/meminfo", encoding="ascii") as f:
    for line in f:
      key, value = line.split(":", 1)
      if key in ("MemTotal", "MemAvailable", "SwapTotal"):
        out[key] = int(value.split()[0]) * 1024
  return out


def reset_peak() -> bool:
  """Resets this process's resident high-water mark to its current RSS
  (``/proc/self/clear_refs`` <- 5, Linux >= 4.0); False where refused."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def release_free_memory() -> str | None:
  """Hands the allocator's cached free pages back to the kernel (tcmalloc's
  ``MallocExtension_ReleaseFreeMemory``, else glibc's ``malloc_trim(0)``), so
  that memory freed after compilation is not reused by the measured calls
  without showing in their RSS; the function used, or None."""
  try:
    libc = ctypes.CDLL(None)
  except OSError:
    return None
  for name, args in (("MallocExtension_ReleaseFreeMemory", ()),
                     ("malloc_trim", (0,))):
    fn = getattr(libc, name, None)
    if fn is not None:
      fn(*args)
      return name
  return None


def maxrss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB


def die_with_parent() -> None:
  """SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``)."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)       # PR_SET_PDEATHSIG = 1
  except (OSError, AttributeError):
    pass


# --------------------------------------------------------------------------
# The child: one configuration, measured
# --------------------------------------------------------------------------

def load_config():
  spec = importlib.util.spec_from_file_location("simclr_fashion_mnist_config",
                                                CONFIG_PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def step_config(encoder: str, pairs: int, block: int):
  """The SimCLR config of the measured step: the Fashion-MNIST config at
  batch ``pairs`` with ``loss_block_size = block`` (0: dense); ``resnet18``
  swaps in ResNet-18 (CIFAR stem) on 32x32x3 with a 2-layer 512-d head;
  ``tiny`` narrows the encoder (dry runs)."""
  config = load_config()
  config.batch_size = int(pairs)
  config.loss_block_size = int(block)
  if encoder == "resnet18":
    config.dataset = "cifar10"
    config.encoder = dict(name="resnet18", stem="cifar")   # as moco_cifar10.py
    config.head = dict(out_dim=128, hidden_dim=512, num_layers=2)
    config.augment.area_range = (0.08, 1.0)                # SimCLR's CIFAR views
    config.augment.grayscale_p = 0.2
  elif encoder == "tiny":
    config.encoder.widths = (4, 8, 8)
    config.encoder.out_width = 0
    config.head.out_dim = 16
  elif encoder != "fmnist":
    raise ValueError(f"unknown encoder {encoder!r}; one of {list(ENCODER_INPUTS)}")
  return config


def xla_memory(compiled) -> dict:
  """XLA's compile-time memory analysis (bytes), or why there is none."""
  try:
    m = compiled.memory_analysis()
  except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
    return {"error": repr(e)}
  if m is None:
    return {"error": "no memory analysis on this backend"}
  fields = ("temp_size_in_bytes", "argument_size_in_bytes",
            "output_size_in_bytes", "alias_size_in_bytes",
            "generated_code_size_in_bytes")
  return {f: int(getattr(m, f)) for f in fields if hasattr(m, f)}


def child(spec: dict) -> dict:
  """Builds, compiles and runs one configuration; returns its record."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  kind, pairs, block = spec["kind"], int(spec["pairs"]), int(spec["block"])
  out = dict(spec)
  rng = np.random.default_rng(0)
  if kind == "step":
    import ssljax.train.build  # pylint: disable=import-outside-toplevel
    shape, _ = ENCODER_INPUTS[spec["encoder"]]
    config = step_config(spec["encoder"], pairs, block)
    method, _ = ssljax.train.build.build_method(config, 60000,
                                                input_shape=shape)
    state = method.init(jax.random.key(0), shape)
    images = jnp.asarray(rng.integers(0, 256, size=(pairs, *shape),
                                      dtype=np.uint8))
    key = jax.random.key(1)
    fn = jax.jit(method.train_step, donate_argnums=0)
    args = (state, images, key)
    out["param_count"] = int(sum(x.size for x in jax.tree.leaves(state.params)))
    out["conv_impl"] = getattr(method.model.encoder, "conv_impl", None)
    out["image_shape"] = list(shape)
  elif kind == "loss":
    from ssljax import losses  # pylint: disable=import-outside-toplevel
    dim, temperature = int(spec["dim"]), float(spec["temperature"])
    z1, z2 = (jnp.asarray(a) for a in
              rng.normal(size=(2, pairs, dim)).astype(np.float32))
    fn = jax.jit(jax.value_and_grad(
        lambda a, b: losses.nt_xent(a, b, temperature=temperature,
                                    block_size=block or None),
        argnums=(0, 1)))
    args = (z1, z2)
  else:
    raise ValueError(f"unknown kind {kind!r}")
  jax.block_until_ready(args)

  status0 = proc_status()
  out["rss_after_data_bytes"] = status0.get("VmRSS")
  reset0 = reset_peak()
  maxrss0 = maxrss_bytes()
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  out["compile_seconds"] = time.perf_counter() - t0
  out["xla_memory_analysis"] = xla_memory(compiled)
  status1 = proc_status()
  out["compile_peak_rss_bytes"] = status1.get("VmHWM")
  out["rss_after_compile_bytes"] = status1.get("VmRSS")
  out["vmsize_after_compile_bytes"] = status1.get("VmSize")

  # Backstop: an address-space limit (the parent's RSS watchdog is the cap).
  cap, slack = spec.get("cap_bytes"), spec.get("as_slack_bytes")
  if cap and slack is not None and status1.get("VmSize"):
    limit = int(status1["VmSize"] + cap + slack)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out["rlimit_as_bytes"] = limit

  del fn
  import gc  # pylint: disable=import-outside-toplevel
  gc.collect()
  out["released_free_memory_with"] = release_free_memory()
  base = proc_status().get("VmRSS")
  reset = reset_peak()
  out["hwm_reset"] = bool(reset and reset0)
  maxrss_base = maxrss_bytes()
  out["rss_baseline_bytes"] = base
  print("CHILD_BASELINE", flush=True)        # the parent logs the phase
  times, value = [], None
  for _ in range(int(spec.get("steps", 1))):
    t = time.perf_counter()
    if kind == "step":
      state, metrics = compiled(state, images, key)
      jax.block_until_ready((state, metrics))
      value = float(metrics["loss"])
      args = (state, images, key)
    else:
      value, grads = jax.block_until_ready(compiled(*args))
      value = float(value)
      out["grads_finite"] = bool(all(np.isfinite(np.asarray(g)).all()
                                     for g in grads))
      del grads
    times.append(time.perf_counter() - t)
  status2 = proc_status()
  maxrss_end = maxrss_bytes()
  out["seconds_per_call"] = times
  out["loss"] = value
  out["loss_finite"] = bool(np.isfinite(value))
  out["ru_maxrss_baseline_bytes"] = maxrss_base
  out["ru_maxrss_end_bytes"] = maxrss_end
  out["vmhwm_end_bytes"] = status2.get("VmHWM")
  # The figure: the peak resident set during the calls over the baseline.
  out["peak_rss_increase_bytes"] = int(maxrss_end - base)
  out["vmhwm_increase_bytes"] = (int(status2["VmHWM"] - base)
                                 if status2.get("VmHWM") else None)
  out["peak_rss_increase_incl_compile_bytes"] = int(
      max(maxrss_end, out["compile_peak_rss_bytes"] or 0, maxrss0)
      - out["rss_after_data_bytes"])
  return out


def child_main(spec_json: str) -> None:
  die_with_parent()
  spec = json.loads(spec_json)
  try:
    record = child(spec)
    record["status"] = "ok"
  except MemoryError as e:
    record = dict(spec, status="out_of_memory", error=repr(e)[:500])
  except Exception as e:  # noqa: BLE001  pylint: disable=broad-except
    text = repr(e)
    status = ("out_of_memory" if "RESOURCE_EXHAUSTED" in text
              or "out of memory" in text.lower() else "error")
    record = dict(spec, status=status, error=text[:2000])
  print(RESULT_TAG + json.dumps(record), flush=True)


# --------------------------------------------------------------------------
# The parent: one subprocess per attempt, an RSS watchdog
# --------------------------------------------------------------------------

def run_attempt(spec: dict, *, cap_bytes: int, timeout_s: float,
                as_slack_bytes: int | None, poll_s: float = 0.01,
                log=print) -> dict:
  """Runs ``spec`` in a fresh child under the RSS cap; its record with
  ``status`` ``ok`` / ``killed_above_cap`` / ``out_of_memory`` / ``aborted``
  / ``killed`` / ``timeout`` / ``error``, the sampled peak RSS and the wall
  time."""
  spec = dict(spec, cap_bytes=int(cap_bytes), as_slack_bytes=as_slack_bytes)
  cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
         json.dumps(spec)]
  t0 = time.perf_counter()
  with tempfile.TemporaryFile("w+") as out_f, \
       tempfile.TemporaryFile("w+") as err_f:
    proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, cwd=REPO)
    sampled_peak, verdict = 0, None
    while proc.poll() is None:
      rss = proc_status(proc.pid).get("VmRSS", 0)
      sampled_peak = max(sampled_peak, rss)
      if rss > cap_bytes:
        proc.kill()
        verdict = "killed_above_cap"
      elif time.perf_counter() - t0 > timeout_s:
        proc.kill()
        verdict = "timeout"
      if verdict:
        proc.wait()
        break
      time.sleep(poll_s)
    rc = proc.wait()
    out_f.seek(0)
    err_f.seek(0)
    stdout, stderr = out_f.read(), err_f.read()
  wall = time.perf_counter() - t0
  record = None
  for line in stdout.splitlines():
    if line.startswith(RESULT_TAG):
      record = json.loads(line[len(RESULT_TAG):])
  if record is None:
    record = {k: v for k, v in spec.items()}
    if verdict is None:
      tail = stderr[-2000:]
      if rc == -signal.SIGABRT or "bad_alloc" in tail:
        verdict = "aborted"          # e.g. std::bad_alloc under RLIMIT_AS
      elif rc == -signal.SIGKILL:
        verdict = "killed"           # not by us: the kernel's OOM killer?
      elif "RESOURCE_EXHAUSTED" in tail or "MemoryError" in tail:
        verdict = "out_of_memory"
      else:
        verdict = "error"
      record["stderr_tail"] = tail
    record["status"] = verdict
  elif verdict:                       # killed after it printed: keep its data
    record["status"] = verdict
  record.update(returncode=rc, wall_seconds=wall,
                sampled_peak_rss_bytes=sampled_peak,
                reached_baseline="CHILD_BASELINE" in stdout)
  record.pop("as_slack_bytes", None)
  if log:
    log(describe(record))
  return record


def _mib(b):
  return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def describe(r: dict) -> str:
  what = (f"{r['kind']:4s} {r.get('encoder', ''):8s} N={r['pairs']:>6} "
          f"{'block ' + str(r['block']) if r['block'] else 'dense':10s}")
  if r["status"] != "ok":
    return (f"{what} {r['status'].upper()} (sampled peak RSS "
            f"{_mib(r.get('sampled_peak_rss_bytes'))}, "
            f"{r.get('wall_seconds', 0):.1f} s)")
  xla = r.get("xla_memory_analysis", {})
  return (f"{what} ok: peak RSS +{_mib(r['peak_rss_increase_bytes'])} over "
          f"{_mib(r['rss_baseline_bytes'])} (incl. compile "
          f"+{_mib(r['peak_rss_increase_incl_compile_bytes'])}); XLA temp "
          f"{_mib(xla.get('temp_size_in_bytes'))}; "
          f"{min(r['seconds_per_call']):.2f} s/call")


def failed(r: dict) -> bool:
  return r["status"] != "ok"


def dense_search(attempt, *, start: int, factor: float, resolution: int,
                 max_pairs: int, log=print) -> dict:
  """Grows N by ``factor`` from ``start`` until an attempt fails (or
  ``max_pairs``), then bisects to ``resolution``; the attempts and the
  largest N that ran / the first that failed."""
  attempts, ok, bad = [], None, None
  n = int(start)
  while n <= max_pairs:
    r = attempt(n)
    attempts.append(r)
    if failed(r):
      bad = n
      break
    ok = n
    n = max(int(n * factor), n + 1)
  if bad is not None and ok is not None:
    while bad - ok > resolution:
      mid = ok + (bad - ok) // 2 // resolution * resolution
      if mid <= ok:
        break
      r = attempt(mid)
      attempts.append(r)
      if failed(r):
        bad = mid
      else:
        ok = mid
  if log:
    log(f"dense loss alone: largest N that ran {ok}, first that failed {bad}")
  return {"attempts": attempts, "largest_ok_pairs": ok,
          "first_failed_pairs": bad,
          "stopped_at_max": bad is None}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--child", default=None, help=argparse.SUPPRESS)
  p.add_argument("--encoders", default="fmnist",
                 help="comma list of fmnist (the Fashion-MNIST config's "
                      "SmallResNet), resnet18 (CIFAR stem, 32x32x3); "
                      "empty: no whole-step runs")
  p.add_argument("--step_pairs", default="256,1024,4096,8192",
                 help="batch sizes N (pairs) of the fmnist step")
  p.add_argument("--resnet18_pairs", default="64,256",
                 help="batch sizes N (pairs) of the resnet18 step")
  p.add_argument("--steps", type=int, default=2,
                 help="calls per whole-step configuration (the peak over them)")
  p.add_argument("--block", type=int, default=256,
                 help="rows per block of the blockwise loss")
  p.add_argument("--dim", type=int, default=128, help="D of the loss alone")
  p.add_argument("--temperature", type=float, default=0.2)
  p.add_argument("--dense_start", type=int, default=4096)
  p.add_argument("--dense_factor", type=float, default=2.0)
  p.add_argument("--dense_resolution", type=int, default=1024)
  p.add_argument("--dense_max", type=int, default=262144)
  p.add_argument("--no_dense_search", action="store_true")
  p.add_argument("--no_block_at_failure", action="store_true",
                 help="do not run the blockwise loss alone at the dense "
                      "loss's first failing N")
  p.add_argument("--block_pairs", default="32768",
                 help="also run the blockwise loss alone at these N (comma "
                      "list; empty: none), besides the dense's first failing N")
  p.add_argument("--mem_cap_gib", type=float, default=0.0,
                 help="kill an attempt whose RSS exceeds this (default: 75%% "
                      "of MemAvailable at the start)")
  p.add_argument("--as_slack_gib", type=float, default=2.0,
                 help="RLIMIT_AS backstop = address space after compilation "
                      "+ cap + this (negative: no RLIMIT_AS)")
  p.add_argument("--attempt_timeout_s", type=float, default=1800.0)
  p.add_argument("--dry_run", "--dry-run", action="store_true",
                 help="tiny encoder and N, 1 GiB cap: every code path in "
                      "seconds, figures meaningless")
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if args.dry_run:
    args.encoders = "tiny"
    args.step_pairs, args.steps = "8", 1
    # 1,024 and 4,096 pairs run under 1 GiB, 16,384 does not; one bisection
    # step (8,192, fails); the blockwise loss alone then runs at 8,192.
    args.dense_start, args.dense_factor, args.dense_resolution = 1024, 4.0, 4096
    args.dense_max = 16384
    args.block_pairs = ""
    args.mem_cap_gib = args.mem_cap_gib or 1.0
  if args.out is None:
    args.out = DRY_RUN_OUT if args.dry_run else DEFAULT_OUT
  return args


def main(argv=None):
  args = parse_args(argv)
  if args.child is not None:
    child_main(args.child)
    return None
  sys.path.insert(0, str(Path(__file__).resolve().parent))
  import _compare as cmp  # pylint: disable=import-outside-toplevel

  mem = meminfo()
  cap = int(args.mem_cap_gib * GIB) if args.mem_cap_gib > 0 else int(
      0.75 * mem["MemAvailable"])
  slack = None if args.as_slack_gib < 0 else int(args.as_slack_gib * GIB)
  print(f"memory: total {mem['MemTotal'] / GIB:.1f} GiB, available "
        f"{mem['MemAvailable'] / GIB:.1f} GiB; cap per attempt "
        f"{cap / GIB:.2f} GiB RSS" + (f", RLIMIT_AS backstop +{args.as_slack_gib:g}"
                                      " GiB" if slack is not None else ""))
  attempt = lambda spec: run_attempt(spec, cap_bytes=cap,
                                     timeout_s=args.attempt_timeout_s,
                                     as_slack_bytes=slack)

  steps = []
  sizes = {"fmnist": args.step_pairs, "tiny": args.step_pairs,
           "resnet18": args.resnet18_pairs}
  for encoder in [e for e in args.encoders.split(",") if e]:
    if encoder not in ENCODER_INPUTS:
      raise SystemExit(f"unknown encoder {encoder!r}")
    dead = set()
    for pairs in [int(s) for s in sizes[encoder].split(",") if s]:
      for block in (0, args.block):
        spec = dict(kind="step", encoder=encoder, pairs=pairs, block=block,
                    steps=args.steps)
        if block in dead:
          steps.append(dict(spec, status="skipped_after_failure"))
          continue
        r = attempt(spec)
        steps.append(r)
        if failed(r):
          dead.add(block)

  dense = None
  if not args.no_dense_search:
    loss_spec = lambda n, b: dict(kind="loss", pairs=n, block=b, dim=args.dim,
                                  temperature=args.temperature, steps=1)
    dense = dense_search(lambda n: attempt(loss_spec(n, 0)),
                         start=args.dense_start, factor=args.dense_factor,
                         resolution=args.dense_resolution,
                         max_pairs=args.dense_max)
    block_at = [int(s) for s in args.block_pairs.split(",") if s]
    if dense["first_failed_pairs"] and not args.no_block_at_failure:
      block_at.insert(0, dense["first_failed_pairs"])
    dense["blockwise_alone"] = [attempt(loss_spec(n, args.block))
                                for n in dict.fromkeys(block_at)]

  record = cmp.plain_record(
      benchmark="contrastive_memory", argv=sys.argv if argv is None else
      ["benchmarks/contrastive_memory.py", *argv],
      machine={"memory": mem},
      extra={"dry_run": bool(args.dry_run), "cap_bytes": cap,
             "as_slack_bytes": slack, "block": args.block,
             "measure": ("peak_rss_increase_bytes: ru_maxrss after the calls "
                         "minus VmRSS before them, the high-water mark reset "
                         "after compilation (hwm_reset); XLA's estimate in "
                         "xla_memory_analysis"),
             "whole_step": steps, "dense_loss_alone": dense})
  cmp.write_record(args.out, record)
  return record


if __name__ == "__main__":
  main()
