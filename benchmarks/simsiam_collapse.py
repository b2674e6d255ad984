"""SimSiam's collapse experiment (Chen & He 2021, sec. 4.1, Figure 2) on
Fashion-MNIST: the shipped SimSiam config trained with and without the
stop-gradient for the same steps, logging the std of the L2-normalized
projections per channel (``normalized_std``; the paper's collapse monitor:
about 1/sqrt(d) when healthy, 0 when collapsed), the effective rank and the
online kNN accuracy on the validation split.

    python benchmarks/simsiam_collapse.py [--steps 400] [--nofinal_bn] \
        [--out benchmarks/results/simsiam_collapse.json] \
        [--png benchmarks/results/simsiam_collapse.png]

Both runs share the seed, data order and views; only ``stop_gradient``
differs. The workdirs go under ``--workdir`` (default workdirs/simsiam_collapse).
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
import importlib.util  # noqa: E402

from ssljax.cli import flags_parser  # noqa: E402
from ssljax.eval.monitor import KNNMonitor  # noqa: E402
from ssljax.eval.provenance import provenance  # noqa: E402
from ssljax.train.logging import read_jsonl  # noqa: E402
from ssljax.train.loop import pretrain  # noqa: E402
from ssljax.train.start import load_dataset  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 400, "Training steps of each run.")
_OUT = flags.DEFINE_string("out", "benchmarks/results/simsiam_collapse.json",
                           "Results file.")
_PNG = flags.DEFINE_string("png", "benchmarks/results/simsiam_collapse.png",
                           "Picture (std and kNN accuracy against steps).")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/simsiam_collapse",
                               "Folder of the two runs.")
_FINAL_BN = flags.DEFINE_bool(
    "final_bn", True, "BatchNorm (no scale) on the projector's output, as the "
    "shipped config and the official code. It keeps every output channel at "
    "unit variance over the batch, so the output cannot become a constant "
    "and normalized_std cannot reach 0; --nofinal_bn is the setting in which "
    "the paper's std monitor can show the collapse.")

KEYS = ("loss", "normalized_std", "effective_rank", "collapsed_dim_fraction",
        "knn_acc")


def main(argv):
  del argv
  path = os.path.join(ROOT, "experiments", "configs", "simsiam_fashion_mnist.py")
  spec = importlib.util.spec_from_file_location("simsiam_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  runs = {}
  for name, stop in (("stop_gradient", True), ("no_stop_gradient", False)):
    config = module.get_config()
    config.stop_gradient = stop
    config.head.final_bn = _FINAL_BN.value
    config.num_steps = _STEPS.value
    config.log_every = 20
    config.checkpoint_every = _STEPS.value
    config.monitor.every = 50
    workdir = os.path.join(_WORKDIR.value, name)

    def monitor(train, mesh, config=config):
      queries = load_dataset(config, "validation")
      return KNNMonitor.from_config(config, train, queries, mesh=mesh)
    pretrain(config, workdir, resume="auto", monitor=monitor)
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    d = int(config.head.out_dim)
    runs[name] = {
        "stop_gradient": stop,
        "curves": {k: [[r["step"], r[k]] for r in rows if k in r]
                   for k in KEYS},
        "final": {k: next((r[k] for r in reversed(rows) if k in r), None)
                  for k in KEYS},
        "normalized_std_reference": d ** -0.5}
  result = {"provenance": provenance(), "steps": _STEPS.value,
            "config": "experiments/configs/simsiam_fashion_mnist.py",
            "knn_split": "validation (last 6,000 of the training split)",
            "final_bn": _FINAL_BN.value,
            "runs": runs}
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps({k: v["final"] for k, v in runs.items()}, indent=1))
  if _PNG.value:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for name, run in runs.items():
      for ax, key in zip(axes, ("normalized_std", "effective_rank",
                                "knn_acc")):
        pts = run["curves"][key]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
    axes[0].axhline(next(iter(runs.values()))["normalized_std_reference"],
                    ls="--", c="gray", label="1/sqrt(d)")
    axes[0].set(title="std of l2-normalized output", xlabel="step")
    axes[1].set(title="effective rank of the output", xlabel="step")
    axes[2].set(title="kNN accuracy (validation)", xlabel="step")
    fig.suptitle("projector output BN: " + ("on" if _FINAL_BN.value else "off"),
                 fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(_PNG.value, dpi=120)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=flags_parser("simsiam_collapse"))
