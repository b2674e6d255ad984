"""The scale of each run's frozen features on validation images: why one
shared fine-tuning recipe (plain SGD at one learning rate) can suit one
encoder and not another.

    python benchmarks/feature_scale.py \
        --workdirs workdirs/reproduce/simclr_s0,workdirs/reproduce/barlow_twins_s0 \
        --out benchmarks/results/feature_scale.json

Per run: the mean L2 norm of the features of ``--num`` validation images (the
first ones of the validation split; the test split is not read), the mean
per-dimension standard deviation, the fraction of exactly-zero entries (dead
ReLU units). The gradient of a linear head scales with the feature norm, so at one SGD
learning rate a run whose features are k times larger moves its head about
k^2 times faster.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import json
import logging
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssljax.eval.provenance import provenance  # noqa: E402
from ssljax.run import restore  # noqa: E402
from ssljax.train.start import load_dataset  # noqa: E402

# argparse, not absl flags: tests import this module next to experiments/
# scripts whose absl flags share names (--workdirs).


def feature_stats(features: np.ndarray) -> dict:
  """Norm, per-dimension std and zero fraction of ``[N, F]`` features."""
  f = np.asarray(features, np.float64)
  return {"num_images": int(f.shape[0]), "dim": int(f.shape[1]),
          "mean_l2_norm": float(np.linalg.norm(f, axis=1).mean()),
          "mean_dim_std": float(f.std(axis=0).mean()),
          "zero_fraction": float((f == 0).mean())}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdirs", required=True,
                 help="run folders (pretrain.py), comma-separated")
  p.add_argument("--num", type=int, default=1000,
                 help="validation images per run")
  p.add_argument("--out", default=None, help="results file (JSON)")
  args = p.parse_args(argv)
  logging.getLogger("absl").setLevel(logging.WARNING)
  out = {"provenance": provenance(), "split": "validation", "runs": {}}
  for workdir in [w for w in args.workdirs.split(",") if w]:
    with restore(workdir) as run:
      ds = load_dataset(run.config, "validation")
      feats = np.asarray(run.encode(ds.images[:args.num]))
    out["runs"][os.path.basename(os.path.normpath(workdir))] = s = (
        feature_stats(feats))
    print(f"{workdir}: norm {s['mean_l2_norm']:.2f}, per-dimension std "
          f"{s['mean_dim_std']:.3f}, zeros {s['zero_fraction']:.3f}",
          flush=True)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
