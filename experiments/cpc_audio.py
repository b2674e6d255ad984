"""Evaluate a sequence-CPC run on espeak-ng spoken words.

    python experiments/pretrain.py --config experiments/configs/cpc_audio.py \
        --workdir workdirs/cpc_audio [--config.num_steps=1000]
    python experiments/cpc_audio.py --workdir workdirs/cpc_audio

Pre-training is the shared loop (config.json, metrics.jsonl and TensorBoard
with loss, ``acc_k<k>`` per step k and ``mi_bound``, Orbax checkpoints, exact
resume, pre-emption, non-finite guard); the dataset
(``ssljax.data.speech.SpokenWords``, the config's ``data`` section) is
synthesized with espeak-ng on first use and cached.

This script restores the run (``ssljax.run.restore``) and writes
``eval.json`` in ``--workdir`` (``ssljax.eval.cpc.evaluate_cpc``):

* linear-probe accuracy of word identity and voice identity on the held-out
  utterances, from frozen features pooled over time (``c``: mean context,
  ``z``: mean encoder output, ``c_last``: the last context vector), for the
  trained network and the same network at its random initialization;
* the held-out per-step prediction accuracy and loss (candidates: all
  ``batch_size * T`` frames of a test batch, whatever the training candidate
  set) for both.
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
  with open(os.path.join(_WORKDIR.value, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(format_cpc(results))


if __name__ == "__main__":
  app.run(main)
