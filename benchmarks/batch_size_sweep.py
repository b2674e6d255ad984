"""SimCLR on Fashion-MNIST: the InfoNCE bound and the probe against batch size.

The number of negatives of NT-Xent is 2N - 2 for a batch of N, and the
mutual-information lower bound ``log(2N - 1) - L`` (``mi_bound`` in
``metrics.jsonl``) is capped by ``log(2N - 1)``. This sweep trains the shipped
config (``experiments/configs/simclr_fashion_mnist.py``) at several batch
sizes for the same number of epochs (so the same images; larger batches take
fewer, larger steps, the linear lr scaling rule keeping lr / N fixed), then
records the bound at the end of training (mean of the last quarter of the
logged steps), its cap, the loss, and the linear-probe and kNN test accuracy
(``ssljax.eval.evaluate_run`` on all 10,000 test images, no baselines).

    python benchmarks/batch_size_sweep.py --batch-sizes 64,256,1024 \\
        --epochs 0.8 --out benchmarks/results/batch_size_sweep.json

The PNG written beside the JSON plots the bound (and its cap) and the probe
accuracy against 2N - 2, and the bound over training for each batch size.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import datetime
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG = REPO / "experiments" / "configs" / "simclr_fashion_mnist.py"


def run_one(batch_size: int, epochs: float, workdir: str, probe_epochs: int,
            log_every: int) -> dict:
  # pylint: disable=import-outside-toplevel
  from ssljax.eval.protocol import evaluate_run
  from ssljax.run import restore
  from ssljax.train.build import load_config_file
  from ssljax.train.logging import read_jsonl
  from ssljax.train.loop import pretrain
  config = load_config_file(str(CONFIG))
  config.unlock()
  config.batch_size = batch_size
  config.num_epochs = epochs
  config.num_steps = 0
  config.log_every = log_every
  config.checkpoint_every = 10 ** 6
  config.keep_checkpoints = 1
  t0 = time.perf_counter()
  _, state = pretrain(config, workdir, progress=False)
  train_s = time.perf_counter() - t0
  rows = [r for r in read_jsonl(f"{workdir}/metrics.jsonl") if "mi_bound" in r]
  tail = rows[-max(1, len(rows) // 4):]
  t0 = time.perf_counter()
  with restore(workdir) as run:
    ev = evaluate_run(run, baselines=False, progress=False,
                      eval_overrides={"linear_epochs": probe_epochs})
  res = ev["results"]["simclr"]
  return {"batch_size": batch_size, "negatives": 2 * batch_size - 2,
          "steps": int(state.step), "epochs": epochs,
          "lr": float(rows[0].get("lr", float("nan"))) if rows else None,
          "mi_bound_end": sum(r["mi_bound"] for r in tail) / len(tail),
          "mi_bound_cap": math.log(2 * batch_size - 1),
          "loss_end": sum(r["loss"] for r in tail) / len(tail),
          "linear": res["linear"], "knn": res["knn"],
          "weight_decay": res.get("weight_decay"),
          "train_seconds": round(train_s, 1),
          "eval_seconds": round(time.perf_counter() - t0, 1),
          "curve": [(r["step"], r["mi_bound"]) for r in rows]}


def plot(results: list[dict], path: str) -> None:
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(10, 3.4), dpi=100, layout="constrained")
  neg = [r["negatives"] for r in results]
  ax = fig.add_subplot(1, 3, 1)
  ax.plot(neg, [r["mi_bound_end"] for r in results], "o-", label="log(2N-1) - L, end")
  ax.plot(neg, [r["mi_bound_cap"] for r in results], "k:", label="cap log(2N-1)")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("negatives per anchor (2N - 2)")
  ax.set_ylabel("nats")
  ax.legend(fontsize=8)
  ax = fig.add_subplot(1, 3, 2)
  ax.plot(neg, [100 * r["linear"] for r in results], "o-", label="linear probe")
  ax.plot(neg, [100 * r["knn"] for r in results], "s--", label="kNN")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("negatives per anchor (2N - 2)")
  ax.set_ylabel("test accuracy (%)")
  ax.legend(fontsize=8)
  ax = fig.add_subplot(1, 3, 3)
  for r in results:
    epochs = [s * r["batch_size"] / 60000 for s, _ in r["curve"]]
    ax.plot(epochs, [b for _, b in r["curve"]], label=f"N = {r['batch_size']}")
  ax.set_xlabel("epochs")
  ax.set_ylabel("MI bound (nats)")
  ax.legend(fontsize=8)
  fig.suptitle("SimCLR on Fashion-MNIST: batch size (number of negatives), "
               f"{results[0]['epochs']} epochs each")
  fig.savefig(path, format="png")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch-sizes", default="64,256,1024")
  p.add_argument("--epochs", type=float, default=0.8)
  p.add_argument("--probe-epochs", type=int, default=30)
  p.add_argument("--out", default="benchmarks/results/batch_size_sweep.json")
  args = p.parse_args()
  from _machine import cpu_model  # pylint: disable=import-outside-toplevel
  results = []
  for b in (int(x) for x in args.batch_sizes.split(",")):
    steps = int(args.epochs * (60000 // b))
    with tempfile.TemporaryDirectory(prefix=f"bsweep_{b}_") as wd:
      r = run_one(b, args.epochs, wd, args.probe_epochs,
                  log_every=max(1, steps // 20))
    print(json.dumps({k: v for k, v in r.items() if k != "curve"}), flush=True)
    results.append(r)
  out = {"machine": cpu_model(), "date": datetime.date.today().isoformat(),
         "command": "python benchmarks/batch_size_sweep.py " + " ".join(sys.argv[1:]),
         "results": results}
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(out, indent=1))
  plot(results, str(Path(args.out).with_suffix(".png")))
  print("written to", args.out)


if __name__ == "__main__":
  main()
