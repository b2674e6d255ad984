"""SimCLR on Fashion-MNIST: accuracy against training length and settings.

Each trial is the shipped config ``experiments/configs/simclr_fashion_mnist.py``
with a few overrides; it pre-trains with ``ssljax.train.loop.pretrain`` and is
scored with ``ssljax.eval.evaluate_run`` (the same code as
``experiments/pretrain.py`` + ``experiments/linear_eval.py``: linear probe and
kNN on all 10,000 test images). One JSON line per trial is appended to
``--out``.

Launch::

    python benchmarks/fashion_mnist_sweep.py --list
    python benchmarks/fashion_mnist_sweep.py --trials base_2ep,long_12ep \\
        --out benchmarks/results/fashion_mnist_sweep.jsonl
    # on one large GPU, several trials at once (each its own process):
    python benchmarks/fashion_mnist_sweep.py --trials all --parallel 6 \\
        --deadline-s 420 --out sweep.jsonl

With ``--parallel`` > 1 the trials share the accelerator, so their images/s
figures are not throughput measurements (``benchmarks/simclr_throughput.py``
is); the accuracies are unaffected.

Trial groups: ``cpu_*`` trials cost about the same CPU time as the shipped
2-epoch config (encoder width traded against epochs, by the per-step cost
ratios measured on the 2-core CPU), ``long_*`` trials train longer.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "configs" / "simclr_fashion_mnist.py"

# Every trial starts from these settings (the shipped config as it was when the
# sweep was first run on an H200, 2026-11-28), so a trial's name keeps its
# meaning when the shipped config changes. ``shipped`` is the config file as is.
BASE = {"encoder.widths": (32, 64, 256), "num_epochs": 2.0, "batch_size": 256,
        "temperature": 0.2, "optimizer.base_lr": 1.0,
        "optimizer.warmup_epochs": 0.3, "augment.strength": 0.5,
        "augment.area_range": (0.6, 1.0),
        # the sweep runs on a GPU: the backend's own convolutions (what the
        # shipped config's conv_impl "auto" is there; explicit, same values)
        "encoder.conv_impl": "xla",
        # the trials below were defined (and measured) before the 1x1 head
        # convolution existed; the *_out512 trials add it
        "encoder.out_width": 0}

# name -> (overrides as dotted keys, evaluate baselines too)
TRIALS: dict[str, tuple[dict, bool]] = {
    # A few steps, to check the harness (not a result).
    "smoke": ({"encoder.widths": (8, 16, 32), "num_steps": 3,
               "eval.linear_epochs": 1}, True),
    # The config file as it is now (README command 1), with the baselines.
    "shipped": (None, True),
    # The first shipped CPU config, with the baselines.
    "base_2ep": ({}, True),
    # Longer training of the same model.
    "long_12ep": ({"num_epochs": 12.0, "optimizer.warmup_epochs": 1.0}, False),
    "long_30ep": ({"num_epochs": 30.0, "optimizer.warmup_epochs": 1.0}, False),
    "long_60ep": ({"num_epochs": 60.0, "optimizer.warmup_epochs": 2.0}, False),
    "long_w16_30ep": ({"encoder.widths": (16, 32, 128), "num_epochs": 30.0,
                       "optimizer.warmup_epochs": 1.0}, False),
    # Towards the 90% of the foundation issue (not yet run): wider features
    # at the epochs of long_60ep (88.9%), and 100 epochs at batch 512 (linear
    # lr scaling), 32-64-256 and 64-128-512.
    "long_w64_60ep": ({"encoder.widths": (64, 128, 512), "num_epochs": 60.0,
                       "optimizer.warmup_epochs": 2.0}, False),
    "long_100ep_b512": ({"num_epochs": 100.0, "batch_size": 512,
                         "optimizer.warmup_epochs": 5.0}, False),
    "long_w64_100ep_b512": ({"encoder.widths": (64, 128, 512),
                             "num_epochs": 100.0, "batch_size": 512,
                             "optimizer.warmup_epochs": 5.0}, False),
    # The 1x1 head convolution to 512 channels (the shipped config's
    # out_width; on the CPU 88.42% mean of 3 seeds at 5 epochs against 87.61%
    # mean without it) at the lengths above (not yet run).
    "long_60ep_out512": ({"num_epochs": 60.0, "optimizer.warmup_epochs": 2.0,
                          "encoder.out_width": 512}, False),
    "long_100ep_b512_out512": ({"num_epochs": 100.0, "batch_size": 512,
                                "optimizer.warmup_epochs": 5.0,
                                "encoder.out_width": 512}, False),
    "long_w64_100ep_b512_out1024": ({"encoder.widths": (64, 128, 512),
                                     "num_epochs": 100.0, "batch_size": 512,
                                     "optimizer.warmup_epochs": 5.0,
                                     "encoder.out_width": 1024}, False),
    # About the CPU cost of base_2ep (step-cost ratios on the 2-core CPU:
    # widths 16/32/128 0.31x, 16/64/256 0.61x, 24/48/192 0.68x).
    "cpu_w16_6ep": ({"encoder.widths": (16, 32, 128), "num_epochs": 6.0,
                     "optimizer.warmup_epochs": 0.5}, False),
    "cpu_w16_6ep_b128": ({"encoder.widths": (16, 32, 128), "num_epochs": 6.0,
                          "batch_size": 128, "optimizer.warmup_epochs": 0.5},
                         False),
    "cpu_w16x64x256_3ep": ({"encoder.widths": (16, 64, 256), "num_epochs": 3.2,
                            "optimizer.warmup_epochs": 0.3}, False),
    "cpu_w24_3ep": ({"encoder.widths": (24, 48, 192), "num_epochs": 3.0,
                     "optimizer.warmup_epochs": 0.3}, False),
    "cpu_t05": ({"temperature": 0.5}, False),
    "cpu_t01": ({"temperature": 0.1}, False),
    "cpu_b128": ({"batch_size": 128}, False),
    "cpu_lr2": ({"optimizer.base_lr": 2.0}, False),
    "cpu_strong_aug": ({"augment.strength": 1.0, "augment.area_range": (0.3, 1.0)},
                       False),
    "cpu_w16_6ep_t05": ({"encoder.widths": (16, 32, 128), "num_epochs": 6.0,
                         "temperature": 0.5, "optimizer.warmup_epochs": 0.5},
                        False),
}


def make_config(overrides: dict):
  from ssljax.train.build import load_config_file
  c = load_config_file(str(CONFIG))
  if overrides is None:
    # the config as is, with the backend's own convolutions (what its
    # conv_impl "auto" is on the GPU the sweep runs on; explicit, same values)
    overrides = {"encoder.conv_impl": "xla"}
  else:
    overrides = {**BASE, **overrides}
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  c.checkpoint_every = 10**9          # only the final checkpoint
  c.log_every = 100
  if os.environ.get("SSLJAX_DATA_DIR"):
    c.data_dir = os.environ["SSLJAX_DATA_DIR"]
  return c


def run_trial(name: str) -> dict:
  """Pre-train and evaluate one trial in this process."""
  import jax
  from ssljax.eval.protocol import evaluate_run
  from ssljax.run import load_dataset, restore
  from ssljax.train.build import total_steps
  from ssljax.train.loop import pretrain

  overrides, baselines = TRIALS[name]
  config = make_config(overrides)
  workdir = tempfile.mkdtemp(prefix=f"sweep_{name}_")
  ds = load_dataset(config)
  steps = total_steps(config, len(ds))
  t0 = time.perf_counter()
  pretrain(config, workdir, dataset=ds, progress=False)
  train_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  with restore(workdir) as run:
    results = evaluate_run(run, baselines=baselines, progress=False)
  eval_s = time.perf_counter() - t0
  return {
      "trial": name, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                   for k, v in (overrides or {}).items()},
      "epochs": float(config.num_epochs), "steps": steps,
      "batch_size": int(config.batch_size),
      "encoder_widths": list(config.encoder.widths),
      "temperature": float(config.temperature),
      "train_seconds_incl_compile": train_s, "eval_seconds": eval_s,
      "results": results["results"], "eval_seconds_by_encoder": results["seconds"],
      "device": jax.devices()[0].device_kind, "jax": jax.__version__,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }


def append(out: Path, record: dict) -> None:
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(out, "a") as f:
    f.write(json.dumps(record) + "\n")


def _subprocess_trial(name: str, out: Path, timeout: float) -> str:
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
  cmd = [sys.executable, __file__, "--trials", name, "--out", str(out)]
  t0 = time.perf_counter()
  try:
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=max(1.0, timeout))
    if p.returncode != 0:
      append(out, {"trial": name, "error": f"exit {p.returncode}",
                   "stderr_tail": p.stderr[-3000:]})
      return f"{name}: FAILED (exit {p.returncode})"
  except subprocess.TimeoutExpired:
    append(out, {"trial": name, "error": f"killed at the deadline after "
                 f"{time.perf_counter() - t0:.0f} s"})
    return f"{name}: killed at the deadline"
  return f"{name}: done in {time.perf_counter() - t0:.0f} s"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--trials", default="base_2ep",
                 help="comma-separated names, or 'all' (see --list)")
  p.add_argument("--list", action="store_true")
  p.add_argument("--parallel", type=int, default=1,
                 help="trials at once, each in its own process")
  p.add_argument("--deadline-s", type=float, default=None,
                 help="with --parallel: kill what still runs after this long")
  p.add_argument("--out", type=Path,
                 default=REPO / "benchmarks" / "results" / "fashion_mnist_sweep.jsonl")
  args = p.parse_args(argv)
  if args.list:
    for name, (ov, bl) in TRIALS.items():
      print(f"{name:22s} {'(config file)' if ov is None else ov}"
            f"{'  + baselines' if bl else ''}")
    return
  names = list(TRIALS) if args.trials == "all" else args.trials.split(",")
  unknown = [n for n in names if n not in TRIALS]
  if unknown:
    raise SystemExit(f"unknown trials {unknown}; --list shows them")
  if args.parallel <= 1:
    for name in names:
      record = run_trial(name)
      append(args.out, record)
      print(json.dumps(record), flush=True)
    return
  deadline = time.monotonic() + (args.deadline_s or 1e9)
  with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
    futures = [pool.submit(lambda n=n: (
        _subprocess_trial(n, args.out, deadline - time.monotonic())
        if deadline - time.monotonic() > 30 else f"{n}: not started (deadline)"))
               for n in names]
    for f in concurrent.futures.as_completed(futures):
      print(f.result(), flush=True)


if __name__ == "__main__":
  main()
