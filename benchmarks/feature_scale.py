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

import json
import os
import sys

import numpy as np
from absl import app, flags, logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssljax.eval.provenance import provenance  # noqa: E402
from ssljax.run import restore  # noqa: E402
from ssljax.train.start import load_dataset  # noqa: E402

_WORKDIRS = flags.DEFINE_list("workdirs", [], "Run folders (pretrain.py).")
_NUM = flags.DEFINE_integer("num", 1000, "Validation images per run.")
_OUT = flags.DEFINE_string("out", None, "Results file (JSON).")


def feature_stats(features: np.ndarray) -> dict:
  """Norm, per-dimension std and zero fraction of ``[N, F]`` features."""
  f = np.asarray(features, np.float64)
  return {"num_images": int(f.shape[0]), "dim": int(f.shape[1]),
          "mean_l2_norm": float(np.linalg.norm(f, axis=1).mean()),
          "mean_dim_std": float(f.std(axis=0).mean()),
          "zero_fraction": float((f == 0).mean())}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not _WORKDIRS.value:
    raise app.UsageError("--workdirs: one or more run folders, comma-separated")
  out = {"provenance": provenance(), "split": "validation", "runs": {}}
  for workdir in _WORKDIRS.value:
    with restore(workdir) as run:
      ds = load_dataset(run.config, "validation")
      feats = np.asarray(run.encode(ds.images[:_NUM.value]))
    out["runs"][os.path.basename(os.path.normpath(workdir))] = s = (
        feature_stats(feats))
    print(f"{workdir}: norm {s['mean_l2_norm']:.2f}, per-dimension std "
          f"{s['mean_dim_std']:.3f}, zeros {s['zero_fraction']:.3f}",
          flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(out, f, indent=1)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
