"""Sequence CPC on spoken words synthesized with espeak-ng, sized to train in
at most 50 minutes on a 2-core CPU.

Launch (pre-training builds and caches the dataset on first use; the
evaluation fits the same linear probe for word and voice identity on the
trained network, the same network at random init, and the trivial baseline
of speech, log-mel and MFCC features of the same utterances, and measures
the held-out per-step prediction accuracy)::

    python experiments/pretrain.py --config experiments/configs/cpc_audio.py \
        --workdir workdirs/cpc_audio
    python experiments/cpc_audio.py --workdir workdirs/cpc_audio \
        --results benchmarks/results/cpc_audio_eval.json

(``python experiments/evaluate.py --workdir workdirs/cpc_audio --results
...`` runs the same evaluation through ``ssljax.eval.by_method``.) Override
anything on the command line, e.g. ``--config.num_steps=3000``.

Budget: ``num_steps = 7500`` (about 133 epochs of the 900 training clips),
sized from a short timed run of this config (``nice -n 10``, 45 steps) so
that pre-training fits in 50 minutes on the 2-core CPU even beside other
jobs; unloaded it takes less: 16 minutes on a 2-core Intel Xeon
(2026-12-07, about 130 clips/s). The evaluation takes under a minute. The
run's ``metrics.jsonl`` (``images_per_sec``) records its own speed. That
run's result (``benchmarks/results/cpc_audio_eval.json``): word 99.67%,
voice 59.33%, against 98.67% / 94.33% for log-mel features with the same
probe (BENCHMARKS.md).

Model: CPC's strided encoder (strides 5,4,2,2,2, kernels 10,8,4,4,4: one frame
per 10 ms at 16 kHz) made causal and narrow (32-64 channels instead of 512),
a GRU context of 128 (CPC: 256), K = 12 linear predictors. Candidates: the
true frame plus 256 frames drawn from the batch's B*T = 1600 (one draw per
step, shared by all predictions). ``--config.cpc.negatives=batch`` scores
every prediction against all 1600 frames, the loss's exact definition; on 2
CPU cores that makes a step slower (the B*T x B*T logits of the 12 steps
dominate it; its measured run:
benchmarks/results/cpc_audio_batch_negatives_eval.json). The held-out
per-step accuracy in ``eval.json`` always uses all frames of a batch.

Probe (``eval``): SGD on standardized features pooled over time, 100 epochs,
lr 0.1, its weight decay chosen per feature set from
``linear_weight_decay`` on a seeded 20% of the *training* utterances
(``ssljax.eval.cpc.AUDIO_VAL_FRACTION``), then refitted on all of them; the
test utterances choose nothing.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "cpc_sequence"
  c.seed = 0
  c.dataset = "spoken_words"
  # ssljax.data.speech.SpokenWords: 10 words x 10 voices x 12 repeats (9
  # train, 3 test), 1 s clips at 16 kHz.
  c.data = ml_collections.ConfigDict(dict(
      repeats=12, seed=0, length=16000, test_fraction=0.25, cache_dir=""))
  c.batch_size = 16
  c.num_epochs = 1.0
  c.num_steps = 7500                # > 0 overrides num_epochs (~133 epochs)

  c.encoder = ml_collections.ConfigDict(dict(
      name="causal_conv", features=(32, 32, 64, 64, 64),
      kernels=(10, 8, 4, 4, 4), strides=(5, 4, 2, 2, 2)))
  c.context = ml_collections.ConfigDict(dict(name="gru", features=128))
  c.cpc = ml_collections.ConfigDict(dict(
      num_steps=12, negatives="sampled", num_negatives=256,
      input_scale=1 / 32768,
      pool="c"))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_lr=2e-3, lr_scaling="none", weight_decay=0.0,
      warmup_epochs=1.0))

  c.log_every = 50
  c.checkpoint_every = 1000
  c.keep_checkpoints = 2

  c.eval = ml_collections.ConfigDict(dict(
      pools=("c", "c_mean_std", "z", "c_last"), linear_epochs=100, linear_lr=0.1,
      linear_weight_decay=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
      linear_batch_size=128, feature_batch_size=64))
  return c
