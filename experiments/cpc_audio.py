"""Evaluate a sequence-CPC run on espeak-ng spoken words.

    python experiments/pretrain.py --config experiments/configs/cpc_audio.py \
        --workdir workdirs/cpc_audio [--config.num_steps=1000]
    python experiments/cpc_audio.py --workdir workdirs/cpc_audio \
        [--results benchmarks/results/cpc_audio_eval.json]

Pre-training is the shared loop (config.json, metrics.jsonl and TensorBoard
with loss, ``acc_k<k>`` per step k and ``mi_bound``, Orbax checkpoints, exact
resume, pre-emption, non-finite guard); the dataset
(``ssljax.data.speech.SpokenWords``, the config's ``data`` section) is
synthesized with espeak-ng on first use and cached.

This script restores the run (``ssljax.run.restore``) and writes
``eval.json`` in ``--workdir`` (``ssljax.eval.cpc.evaluate_cpc``), and with
``--results`` the same results with their provenance (command, commit, date,
machine) to that file:

* linear-probe accuracy of word identity and voice identity on the held-out
  utterances, from frozen features pooled over time (``c``: mean context,
  ``c_mean_std``: its mean and standard deviation, the baseline's
  ``mean_std``, ``z``: mean encoder output, ``c_last``: the last context
  vector), for the
  trained network and the same network at its random initialization;
* the trivial baseline of speech with the same probe: log-mel (40 bands) and
  MFCC (13) features of the same utterances, 25 ms windows every 10 ms
  (``ssljax.data.spectral``), pooled over frames (``mean``; ``mean_std``:
  mean and standard deviation), keys ``log_mel`` and ``mfcc``;
* how every probe chose its weight decay (``probe.choices``: the validation
  accuracy of each value of the grid, on a seeded 20% of the training
  utterances; the test utterances choose nothing);
* the held-out per-step prediction accuracy and loss (candidates: all
  ``batch_size * T`` frames of a test batch, whatever the training candidate
  set) for both networks.

``experiments/evaluate.py --workdir DIR`` runs the same evaluation
(``ssljax.eval.by_method``) into ``DIR/method_eval.json``.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os

from absl import app, flags, logging

from ssljax.eval.cpc import evaluate_cpc, format_cpc
from ssljax.eval.provenance import provenance
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "The pretrain.py run.",
                               required=True)
_RESULTS = flags.DEFINE_string("results", None, "Also write the results, with "
                               "their provenance, to this JSON file.")
_POOLS = flags.DEFINE_list(
    "pools", [], "Pools to probe instead of the run's config.eval.pools "
    "(c, c_mean_std, z, c_last), e.g. for a run trained before a pool "
    "existed.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  with restore(_WORKDIR.value) as run:
    results = {"step": int(run.step), **evaluate_cpc(run, pools=_POOLS.value)}
  with open(os.path.join(_WORKDIR.value, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  if _RESULTS.value:
    os.makedirs(os.path.dirname(_RESULTS.value) or ".", exist_ok=True)
    with open(_RESULTS.value, "w", encoding="utf-8") as f:
      json.dump({**results, "workdir": _WORKDIR.value,
                 "provenance": provenance()}, f, indent=1, default=str)
    print(f"wrote {_RESULTS.value}")
  print(format_cpc(results))


if __name__ == "__main__":
  app.run(main)
