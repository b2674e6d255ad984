"""NT-Xent alone, forward + backward: dense vs blockwise ssljax vs PyTorch.

Launch (idle machine)::

    python benchmarks/contrastive_loss.py                 # N = 256 ... 4096, D = 128
    python benchmarks/contrastive_loss.py --quick --out /tmp/q.json

For each batch size N (pairs; 2N anchors) and embedding width D it times the
value-and-gradient of NT-Xent with respect to both views:

* ``jax_dense``: ``ssljax.losses.nt_xent`` (the [2N, 2N] logits),
* ``jax_block``: ``ssljax.losses.nt_xent(block_size=B)`` (custom VJP, rows in
  blocks of B),
* ``torch_dense``: the same formula in PyTorch eager (``F.cross_entropy`` on
  the masked logits), as people write it in the PyTorch SSL libraries.

The three are interleaved in rounds (order alternating) and the median is
reported with the ratios to ``torch_dense``. Memory: XLA's compiled memory
analysis of each JAX function (temporary bytes: everything but the inputs and
outputs), and the largest N whose temporaries fit a budget (``--memory-mib``,
compile only, doubling then bisection). PyTorch's CPU allocator keeps no peak
statistics, so its memory is given as the size of the tensors autograd keeps
for this formula (the [2N, 2N] logits and their softmax), not measured.

The memory figures here are XLA's compile-time estimates for the loss alone
(and, with ``--run-target``, one blockwise call's peak-RSS growth after
compilation). The measured peaks -- the whole SimCLR step with its encoder,
dense vs blockwise, each in a fresh process, and the dense loss run until it
fails on the machine -- are ``benchmarks/contrastive_memory.py``'s.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ssljax import losses  # noqa: E402


def torch_nt_xent(z1, z2, temperature):
  import torch
  import torch.nn.functional as F
  n = z1.shape[0]
  z = F.normalize(torch.cat([z1, z2]), dim=1)
  logits = z @ z.T / temperature
  logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
  target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
  return F.cross_entropy(logits, target)


def jax_fn(block, temperature):
  return jax.jit(jax.value_and_grad(
      lambda a, b: losses.nt_xent(a, b, temperature=temperature,
                                  block_size=block), argnums=(0, 1)))


def temp_bytes(n, d, block, temperature):
  z = jax.ShapeDtypeStruct((n, d), jnp.float32)
  compiled = jax_fn(block, temperature).lower(z, z).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)


def largest_n(budget, d, block, temperature, start=256, cap=1 << 22):
  """Largest N (multiple of 256) whose compiled temporaries fit ``budget``."""
  lo, hi = 0, start
  while hi <= cap and temp_bytes(hi, d, block, temperature) <= budget:
    lo, hi = hi, hi * 2
  if hi > cap:
    return lo
  while hi - lo > 256:
    mid = (lo + hi) // 2 // 256 * 256
    if temp_bytes(mid, d, block, temperature) <= budget:
      lo = mid
    else:
      hi = mid
  return lo


def target_check(n, d, block, temperature, run: bool) -> dict:
  """Issue 8's memory target (2N anchors within a working-memory budget):
  XLA's temporaries of the dense and blockwise value-and-gradient at N pairs
  and, with ``run``, one blockwise call: its time and the growth of the
  process's peak RSS (inputs, outputs and temporaries). That blockwise equals
  dense is tested in tests/test_losses_blockwise.py."""
  out = {"n_pairs": n, "anchors": 2 * n, "dim": d, "block": block,
         "jax_temp_bytes": {"dense": temp_bytes(n, d, None, temperature),
                            "block": temp_bytes(n, d, block, temperature)}}
  if run:
    rng = np.random.default_rng(0)
    z1, z2 = (jnp.asarray(a) for a in rng.normal(size=(2, n, d)).astype(np.float32))
    f = jax_fn(block, temperature)
    compiled = f.lower(z1, z2).compile()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    t0 = time.perf_counter()
    loss, grads = jax.block_until_ready(compiled(z1, z2))
    out["block_run_seconds"] = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["block_peak_rss_growth_bytes"] = (rss1 - rss0) * 1024
    out["block_loss"] = float(loss)
    out["block_grads_finite"] = bool(all(np.isfinite(np.asarray(g)).all() for g in grads))
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="256,1024,4096")
  p.add_argument("--dim", type=int, default=128)
  p.add_argument("--block", type=int, default=256)
  p.add_argument("--temperature", type=float, default=0.2)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--memory-mib", type=int, default=1024)
  p.add_argument("--quick", action="store_true")
  p.add_argument("--target-pairs", type=int, default=0,
                 help="only the memory target: XLA temporaries of dense and "
                      "blockwise at this N (32768 = 2N of 65,536 anchors)")
  p.add_argument("--run-target", action="store_true",
                 help="with --target-pairs: also run the blockwise loss once "
                      "(time and peak-RSS growth)")
  p.add_argument("--out", type=Path,
                 default=REPO / "benchmarks" / "results" / "contrastive_loss.json")
  args = p.parse_args(argv)
  if args.quick:
    args.sizes, args.rounds, args.memory_mib = "128,256", 2, 16
  if args.target_pairs:
    res = target_check(args.target_pairs, args.dim, args.block, args.temperature,
                       args.run_target)
    res.update(command=" ".join(sys.argv), date=datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"),
               jax=jax.__version__, backend=jax.default_backend(),
               load_average_1min=os.getloadavg()[0])
    temp = res["jax_temp_bytes"]
    print(f"2N = {2 * args.target_pairs} anchors, D = {args.dim}: XLA temporaries "
          f"dense {temp['dense'] / 2**30:.2f} GiB, blockwise (B={args.block}) "
          f"{temp['block'] / 2**20:.1f} MiB")
    if args.run_target:
      print(f"blockwise run: {res['block_run_seconds']:.1f} s, peak RSS grew "
            f"{res['block_peak_rss_growth_bytes'] / 2**20:.1f} MiB, loss "
            f"{res['block_loss']:.4f}, gradients finite: {res['block_grads_finite']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return
  import torch
  sizes = [int(s) for s in args.sizes.split(",")]
  d, t, block = args.dim, args.temperature, args.block
  rows = []
  for n in sizes:
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, n, d)).astype(np.float32)
    fns = {"jax_dense": jax_fn(None, t), "jax_block": jax_fn(min(block, 2 * n), t)}
    ja, jb = jnp.asarray(z1), jnp.asarray(z2)
    ref = None
    for name, f in fns.items():            # compile + check agreement
      loss, _ = jax.block_until_ready(f(ja, jb))
      ref = float(loss) if ref is None else ref
      assert abs(float(loss) - ref) <= 1e-4 * abs(ref), (name, float(loss), ref)
    ta = torch.tensor(z1, requires_grad=True)
    tb = torch.tensor(z2, requires_grad=True)
    tl = torch_nt_xent(ta, tb, t)
    assert abs(float(tl) - ref) <= 1e-4 * abs(ref), ("torch", float(tl), ref)

    def run(name):
      t0 = time.perf_counter()
      if name == "torch_dense":
        ta.grad = tb.grad = None
        loss = torch_nt_xent(ta, tb, t)
        loss.backward()
        float(loss)
      else:
        jax.block_until_ready(fns[name](ja, jb))
      return time.perf_counter() - t0

    names = ["jax_dense", "jax_block", "torch_dense"]
    for name in names:
      run(name)                              # warm-up
    secs = {k: [] for k in names}
    for r in range(args.rounds):
      for name in (names if r % 2 == 0 else names[::-1]):
        secs[name].append(run(name))
    med = {k: statistics.median(v) for k, v in secs.items()}
    row = {
        "n_pairs": n, "anchors": 2 * n, "dim": d, "block": min(block, 2 * n),
        "median_seconds": med,
        "ratio_to_torch": {k: med[k] / med["torch_dense"] for k in names},
        "jax_temp_bytes": {"dense": temp_bytes(n, d, None, t),
                           "block": temp_bytes(n, d, min(block, 2 * n), t)},
        "torch_autograd_logits_bytes": 2 * (2 * n) ** 2 * 4,
    }
    rows.append(row)
    print(f"N={n:6d}  " + "  ".join(f"{k} {1e3 * v:8.2f} ms" for k, v in med.items())
          + f"  | XLA temp: dense {row['jax_temp_bytes']['dense'] / 2**20:8.1f} MiB"
          f", block {row['jax_temp_bytes']['block'] / 2**20:8.1f} MiB", flush=True)
  budget = args.memory_mib * 2**20
  fit = {"dense": largest_n(budget, d, None, t),
         "block": largest_n(budget, d, block, t)}
  print(f"largest N whose XLA temporaries fit {args.memory_mib} MiB: "
        f"dense {fit['dense']}, blockwise (B={block}) {fit['block']}")
  result = {
      "benchmark": "contrastive_loss", "command": " ".join(sys.argv),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                  "jax": jax.__version__, "torch": torch.__version__,
                  "backend": jax.default_backend(),
                  "load_average_1min": os.getloadavg()[0]},
      "rows": rows, "memory_budget_mib": args.memory_mib,
      "largest_n_within_budget": fit,
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
