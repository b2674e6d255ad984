"""The SimCLR train step under each memory allocator: page faults, kernel time,
wall time (ssljax/cpu/malloc.py).

    python benchmarks/malloc_step.py [--rounds 3 --steps 8]
    python benchmarks/malloc_step.py --quick --out /tmp/malloc_quick.json

Each allocator needs its own process (it is chosen when the process starts), so
every round starts one child per allocator, in turn (order reversed on odd
rounds): it builds the library's full ``train_step`` of the Fashion-MNIST
SimCLR config (uint8 batch in, augmentation on device), runs two warm-up
steps, then times ``--steps`` steps and reads ``getrusage``: minor page faults
(each one maps and zero-fills a 4 KiB page, or 2 MiB with transparent huge
pages), kernel and user CPU seconds. The parent reports, per allocator, the
median over rounds (of each child's median step time) and the wall-time
ratio to glibc, and writes
``benchmarks/results/malloc_step.json``.

Allocators: ``glibc`` (the system malloc, ``SSLJAX_MALLOC=off``),
``glibc-thp`` (the same with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, which
asks for transparent huge pages), and every library of
``ssljax.cpu.malloc.KNOWN_LIBRARIES`` that is installed (``tcmalloc``,
``jemalloc`` with the settings of ``ssljax.cpu.malloc.malloc_env``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from _machine import cpu_model  # noqa: E402  pylint: disable=wrong-import-position

from ssljax.cpu import malloc  # noqa: E402  pylint: disable=wrong-import-position


def allocator_envs(base: dict, search_dirs=malloc.SEARCH_DIRS) -> dict:
  """``{allocator name: environment of its child process}``."""
  clean = {k: v for k, v in base.items()
           if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", malloc.ENV_REEXECUTED)}
  clean[malloc.ENV_CHOICE] = "off"           # the child never re-executes
  envs = {"glibc": dict(clean),
          "glibc-thp": dict(clean, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")}
  seen = set()
  for folder in search_dirs:
    for name in malloc.KNOWN_LIBRARIES:
      path = Path(folder) / name
      label = "tcmalloc" if "tcmalloc" in name else "jemalloc"
      if path.is_file() and label not in seen:
        seen.add(label)
        envs[label] = malloc.malloc_env(str(path), clean)
  return envs


def child(args) -> None:
  """Time the step in this process and print one JSON line."""
  from ssljax.cpu.xla_flags import apply_cpu_xla_flags  # pylint: disable=import-outside-toplevel
  apply_cpu_xla_flags()   # the shipped XLA:CPU settings (SSLJAX_XLA_CPU_FLAGS)
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from ssljax.train.build import (  # pylint: disable=import-outside-toplevel
      build_method, load_config_file)

  config = load_config_file(args.config)
  if args.batch_size:
    config.batch_size = args.batch_size
  method, _ = build_method(config, 60_000)
  state = method.init(jax.random.key(0), (28, 28, 1))
  step = jax.jit(method.train_step, donate_argnums=0)
  images = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, size=(config.batch_size, 28, 28, 1), dtype=np.uint8))
  key = jax.random.key(1)
  for _ in range(2):
    state, metrics = step(state, images, key)
  jax.block_until_ready(metrics)
  times = []
  before = resource.getrusage(resource.RUSAGE_SELF)
  for _ in range(args.steps):
    t = time.perf_counter()
    state, metrics = step(state, images, key)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  after = resource.getrusage(resource.RUSAGE_SELF)
  n = args.steps
  print(json.dumps(dict(
      malloc=malloc.loaded_malloc() or "glibc malloc (system)",
      glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""),
      batch_size=config.batch_size,
      median_ms=1e3 * float(np.median(times)),
      images_per_s=config.batch_size / float(np.median(times)),
      minor_faults_per_step=(after.ru_minflt - before.ru_minflt) / n,
      sys_s_per_step=(after.ru_stime - before.ru_stime) / n,
      user_s_per_step=(after.ru_utime - before.ru_utime) / n,
      xla_flags=os.environ.get("XLA_FLAGS", ""),
      loss=float(metrics["loss"]))), flush=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=str(
      REPO / "experiments/configs/simclr_fashion_mnist.py"))
  p.add_argument("--batch-size", type=int, default=0)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--quick", action="store_true",
                 help="batch 16, 1 round of 2 steps")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--out", type=Path, default=None)
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.rounds, args.steps = args.batch_size or 16, 1, 2
  if args.child:
    return child(args)
  out_path = args.out or REPO / "benchmarks/results/malloc_step.json"
  envs = allocator_envs(dict(os.environ))
  load = os.getloadavg()[0]
  runs = {name: [] for name in envs}
  cmd = [sys.executable, __file__, "--child", "--config", args.config,
         "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
  for r in range(args.rounds):
    order = list(envs) if r % 2 == 0 else list(envs)[::-1]
    for name in order:
      out = subprocess.run(cmd, env=envs[name], capture_output=True,
                           text=True, check=True, timeout=1800)
      line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
      runs[name].append(json.loads(line))
      print(f"round {r}: {name:10s} {runs[name][-1]['median_ms']:7.1f} ms/step",
            flush=True)

  def med(name, key):
    return statistics.median(run[key] for run in runs[name])

  summary = {name: dict(
      malloc=runs[name][0]["malloc"],
      median_ms=med(name, "median_ms"),
      images_per_s=1e3 * runs[name][0]["batch_size"] / med(name, "median_ms"),
      minor_faults_per_step=med(name, "minor_faults_per_step"),
      sys_s_per_step=med(name, "sys_s_per_step"),
      user_s_per_step=med(name, "user_s_per_step")) for name in envs}
  losses = [run["loss"] for name in envs for run in runs[name]]
  loss_spread = (max(losses) - min(losses)) / abs(losses[0])
  print(f"loss of the last step, all runs: {losses[0]:.6f} (relative spread "
        f"{loss_spread:.1e}: the allocator does not change the numbers)")
  base = summary["glibc"]["median_ms"]
  print(f"\n{'allocator':10s} {'ms/step':>8s} {'images/s':>9s} "
        f"{'faults/step':>12s} {'kernel s':>9s} {'user s':>7s} {'speed-up':>8s}")
  for name, s in summary.items():
    s["speedup_vs_glibc"] = base / s["median_ms"]
    print(f"{name:10s} {s['median_ms']:8.1f} {s['images_per_s']:9.1f} "
          f"{s['minor_faults_per_step']:12.0f} {s['sys_s_per_step']:9.3f} "
          f"{s['user_s_per_step']:7.3f} {s['speedup_vs_glibc']:7.2f}x")
  result = dict(machine=cpu_model(), cores=os.cpu_count(),
                date=time.strftime("%Y-%m-%d %H:%M"), load_average_start=load,
                load_average_end=os.getloadavg()[0], config=args.config,
                batch_size=args.batch_size or "config", rounds=args.rounds,
                steps=args.steps, loss_relative_spread=loss_spread,
                summary=summary, runs=runs,
                command="python benchmarks/malloc_step.py " + " ".join(
                    sys.argv[1:] if argv is None else argv))
  out_path.parent.mkdir(parents=True, exist_ok=True)
  out_path.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {out_path}")
  return result


if __name__ == "__main__":
  main()
