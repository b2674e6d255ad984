"""Evaluate a CPC v2-style image-CPC run on Fashion-MNIST.

    python experiments/pretrain.py \
        --config experiments/configs/cpc_fashion_mnist.py \
        --workdir workdirs/cpc_fmnist [--config.num_steps=2000]
    python experiments/cpc_fashion_mnist.py --workdir workdirs/cpc_fmnist

Pre-training is the shared loop (``experiments/pretrain.py``). This script
restores the run (``ssljax.run.restore``) and writes ``cpc_eval.json`` in
``--workdir`` (``ssljax.eval.cpc.evaluate_cpc``):

* linear-probe and weighted-kNN (``eval.knn_k``, ``eval.knn_t``) accuracy on
  frozen features pooled over the 7x7 patch grid (``z``: mean patch
  embedding, ``c``: mean context, ``zc``: both), for the trained network and
  the same network at random initialization, plus raw pixels; probes train
  on the first ``eval.probe_train_examples`` training images and score the
  first ``eval.probe_test_examples`` test images (0 = all);
* the held-out per-step prediction accuracy (every patch of a test batch of
  ``batch_size`` images a candidate) for both networks.

``experiments/linear_eval.py --workdir ...`` evaluates the same checkpoint on
the full splits with the pool of ``config.cpc.pool``.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os

from absl import app, flags, logging

from ssljax.eval.cpc import evaluate_cpc, format_cpc
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "The pretrain.py run.",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  with restore(_WORKDIR.value) as run:
    results = evaluate_cpc(run)
  with open(os.path.join(_WORKDIR.value, "cpc_eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(format_cpc(results))


if __name__ == "__main__":
  app.run(main)
