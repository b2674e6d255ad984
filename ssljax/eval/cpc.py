"""Evaluation of contrastive predictive coding (``ssljax.methods.cpc``).

* :func:`held_out_prediction_accuracy`: the per-step prediction accuracy and
  InfoNCE loss of held-out data (CPC's own measure), every prediction scored
  against all targets of its batch whatever the training candidate set.
* :func:`audio_probes`: sequence CPC on spoken words (``ssljax.data.speech``):
  linear probes of word and voice identity on frozen features pooled over
  time (``c``: mean context, ``c_mean_std``: mean and standard deviation
  of the context, the pooling of the spectral baseline's ``mean_std``,
  ``z``: mean encoder output, ``c_last``: the last context vector), plus
  the held-out step accuracy; beside them the trivial baseline of speech, log-mel and MFCC features of the same
  utterances (``ssljax.data.spectral``: 25 ms / 10 ms frames, 40 mel bands,
  13 MFCCs) pooled over frames the same way (mean; mean and std), probed by
  the same probe (:func:`audio_spectral_baselines`). Every probe's weight
  decay is chosen on a seeded validation part of the *training* utterances
  (``val_fraction``), never on the test split.
* :func:`image_cpc_evaluation`: image CPC: linear probe and weighted kNN of
  features pooled over the patch grid (``z``, ``c``, ``zc``), raw pixels as
  the trivial baseline, plus the held-out step accuracy.

Each takes the method, its states (``{"cpc": trained, "random_init":
step-0}``: a method works when it beats its random init and the trivial
baseline) and the train / test splits, and returns a JSON-ready dict;
:func:`format_cpc` makes it a table. :func:`evaluate_cpc` runs the one that
fits a restored run (``ssljax.run.restore``, from the caller).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.data import spectral
from ssljax.eval.features import extract_features, map_in_batches
from ssljax.eval.knn import knn_accuracy
from ssljax.eval.linear import linear_probe, linear_probe_accuracy
from ssljax.methods.base import encoder_variables
from ssljax.methods.cpc import SequenceCPC
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import EvalConfig

__all__ = ["AUDIO_VAL_FRACTION", "audio_probes", "audio_spectral_baselines",
           "evaluate_cpc", "format_cpc", "held_out_prediction_accuracy",
           "image_cpc_evaluation", "pool_sequence", "spectral_features",
           "split_pooled"]


def _params(state, mesh=None) -> dict:
  """``{"params"}`` of a state (replicated over ``mesh`` if given)."""
  params = {"params": encoder_variables(state)["params"]}
  return params if mesh is None else jax.device_put(
      params, replicated_sharding(mesh))


def held_out_prediction_accuracy(method, variables_or_state, inputs, *,
                                 batch_size: int, mesh=None,
                                 max_batches: int | None = None,
                                 negatives: str | None = "batch"
                                 ) -> tuple[np.ndarray, np.ndarray]:
  """Mean per-step ``(loss_k [K], acc_k [K])`` of
  ``method.prediction_accuracy`` over the consecutive full batches of host
  ``inputs`` (at most ``max_batches``), each placed on ``mesh``'s ``data``
  axis (default: all devices); with ``negatives="batch"`` every prediction
  is scored against all targets of its batch."""
  mesh = make_data_mesh() if mesh is None else mesh
  count = len(inputs) // batch_size
  if max_batches:
    count = min(count, int(max_batches))
  if count == 0:
    raise ValueError(f"{len(inputs)} held-out examples make no full batch of "
                     f"{batch_size}: lower batch_size.")
  fn = jax.jit(functools.partial(method.prediction_accuracy,
                                 negatives=negatives))
  variables = _params(variables_or_state, mesh)
  losses_k, accs_k = [], []
  with jax.set_mesh(mesh):
    for i in range(count):
      x = np.asarray(inputs[i * batch_size:(i + 1) * batch_size])
      loss_k, acc_k = fn(variables, jax.device_put(x, data_sharding(mesh, x.ndim)))
      losses_k.append(np.asarray(loss_k))
      accs_k.append(np.asarray(acc_k))
  return np.mean(losses_k, 0), np.mean(accs_k, 0)


def _step_scores(method, state, inputs, *, batch_size, mesh, max_batches=None):
  loss_k, acc_k = held_out_prediction_accuracy(
      method, state, inputs, batch_size=batch_size, mesh=mesh,
      max_batches=max_batches)
  return {"test_step_loss": [float(v) for v in loss_k],
          "test_step_accuracy": [float(v) for v in acc_k]}


def _probe_kwargs(ev) -> dict:
  """The SGD linear probe of ``ev`` (``EvalConfig``); a tuple of weight
  decays is a grid searched on the validation split."""
  wd = ev.linear_weight_decay
  return dict(epochs=ev.linear_epochs, batch_size=ev.linear_batch_size,
              lr=ev.linear_lr,
              weight_decay=tuple(wd) if isinstance(wd, (list, tuple)) else wd)


def _linear(ev, seed, train_x, train_y, test_x, test_y, num_classes):
  return linear_probe_accuracy(
      train_x, train_y, test_x, test_y, num_classes=num_classes, seed=seed,
      **_probe_kwargs(ev))


#: The share of the training utterances the audio probes choose their weight
#: decay on (seeded; 180 of the 900 training clips of the shipped config).
AUDIO_VAL_FRACTION = 0.2


def _audio_probe(ev, seed, val_fraction, train_x, test_x, train, test, label
                 ) -> dict:
  """:func:`ssljax.eval.linear.linear_probe` of ``label`` (``"word"`` or
  ``"voice"``) on ``[N, F]`` features of the train / test utterances."""
  return linear_probe(train_x, getattr(train, label), test_x,
                      getattr(test, label),
                      num_classes=len(getattr(train, label + "s")),
                      solver="sgd", val_fraction=val_fraction, seed=seed,
                      **_probe_kwargs(ev))


def _choice(probe: Mapping) -> dict:
  """What a probe chose and on what: its weight decay and, when it was
  selected, the validation accuracy of every grid value."""
  out = {"weight_decay": probe["weight_decay"]}
  if "validation" in probe:
    out["validation"] = {str(k): v for k, v in probe["validation"].items()}
  return out


def _probe_all(ev, seed, val_fraction, feats: Mapping, pools, train, test
               ) -> tuple[dict, dict]:
  """Word and voice probes of every pool of ``feats`` (``{"train": {pool:
  [N, F]}, "test": {...}}``): ``({"<label>/<pool>": test accuracy},
  {"<label>/<pool>": choice})``."""
  accuracy, choices = {}, {}
  for pool in pools:
    for label in ("word", "voice"):
      probe = _audio_probe(ev, seed, val_fraction, feats["train"][pool],
                           feats["test"][pool], train, test, label)
      accuracy[f"{label}/{pool}"] = probe["accuracy"]
      choices[f"{label}/{pool}"] = _choice(probe)
  return accuracy, choices


@functools.partial(jax.jit, static_argnames=("sample_rate",))
def _pooled_spectral(audio, *, sample_rate: int):
  """``{"log_mel" | "mfcc": {pool: [b, F]}}`` of int16 ``audio [b, L]``."""
  log_mel = spectral.log_mel_spectrogram(audio.astype(jnp.float32) / 32768.0,
                                         sample_rate=sample_rate)
  feats = {"log_mel": log_mel, "mfcc": spectral.mfcc_from_log_mel(log_mel)}
  return {name: {pool: spectral.pool_frames(f, pool=pool)
                 for pool in spectral.POOLS} for name, f in feats.items()}


def spectral_features(audio: np.ndarray, *, sample_rate: int,
                      batch_size: int = 64) -> dict:
  """Log-mel and MFCC features of int16 waveforms ``audio [N, L]`` pooled
  over frames: ``{"log_mel": {"mean": [N, 40], "mean_std": [N, 80]},
  "mfcc": {"mean": [N, 13], "mean_std": [N, 26]}}`` (float32 numpy; the
  front end of ``ssljax.data.spectral`` with its defaults: 25 ms periodic
  Hann windows every 10 ms, 512-point FFT at 16 kHz, 40 HTK-mel bands from
  0 Hz to the Nyquist frequency, natural log, 13 MFCCs), computed
  ``batch_size`` clips at a time."""
  audio = np.asarray(audio)
  if audio.ndim != 2 or len(audio) == 0:
    raise ValueError(f"audio must be [N, L] with N >= 1; got shape "
                     f"{audio.shape}.")
  fn = functools.partial(_pooled_spectral, sample_rate=int(sample_rate))
  return map_in_batches(fn, audio, batch=min(batch_size, len(audio)))


def audio_spectral_baselines(train, test, *, ev, seed: int,
                             val_fraction: float = AUDIO_VAL_FRACTION,
                             front_ends=("log_mel", "mfcc"),
                             pools=spectral.POOLS) -> tuple[dict, dict]:
  """The trivial baseline of :func:`audio_probes`: log-mel and MFCC
  features (:func:`spectral_features`) of the ``SpeechDataset`` splits,
  probed for word and voice identity by the same probe as the networks
  (``ev``'s SGD probe, its weight decay chosen on the same validation split
  of the training utterances). Returns ``({"log_mel": {"word/mean": acc,
  "voice/mean": acc, "word/mean_std": ..., "seconds" (probes),
  "feature_seconds" (both front ends, both splits)}, "mfcc": {...}},
  {"log_mel": {"word/mean": choice, ...}, "mfcc": ...})``; ``front_ends``
  and ``pools`` restrict the rows (the default is all of them)."""
  if not (front_ends and set(front_ends) <= {"log_mel", "mfcc"}
          and pools and set(pools) <= set(spectral.POOLS)):
    raise ValueError(f"front_ends must be among ('log_mel', 'mfcc') and pools "
                     f"among {spectral.POOLS}; got {front_ends}, {pools}.")
  t0 = time.perf_counter()
  feats = {split: spectral_features(ds.audio, sample_rate=ds.sample_rate,
                                    batch_size=ev.feature_batch_size)
           for split, ds in (("train", train), ("test", test))}
  feature_seconds = time.perf_counter() - t0
  results, choices = {}, {}
  for name in front_ends:
    t1 = time.perf_counter()
    results[name], choices[name] = _probe_all(
        ev, seed, val_fraction,
        {split: feats[split][name] for split in feats}, pools, train, test)
    results[name]["seconds"] = time.perf_counter() - t1
    results[name]["feature_seconds"] = feature_seconds   # both front ends
  return results, choices


def pool_sequence(z, c):
  """Per sequence, the features the audio probes read, concatenated:
  ``[z mean over time, c mean, c at the last step, c standard deviation]``
  of encoder outputs ``z [B, T, Dz]`` and contexts ``c [B, T, Dc]``
  (:func:`split_pooled` names the parts)."""
  return jnp.concatenate([z.mean(1), c.mean(1), c[:, -1], c.std(1)], -1)


def split_pooled(f, zd: int, cd: int) -> dict:
  """The pools of :func:`pool_sequence`'s ``f [N, Dz + 3 Dc]``: ``{"z",
  "c", "c_last", "c_mean_std"}`` (the last: c's mean and standard deviation
  over time, the spectral baseline's ``mean_std`` pooling)."""
  f = np.asarray(f)
  if f.ndim != 2 or f.shape[1] != zd + 3 * cd:
    raise ValueError(f"pooled features must be [N, {zd} + 3 x {cd}]; got "
                     f"{f.shape}.")
  c_mean = f[:, zd:zd + cd]
  return {"z": f[:, :zd], "c": c_mean, "c_last": f[:, zd + cd:zd + 2 * cd],
          "c_mean_std": np.concatenate([c_mean, f[:, zd + 2 * cd:]], -1)}


def audio_probes(method, states: Mapping, train, test, *, ev, seed: int,
                 batch_size: int, mesh=None,
                 val_fraction: float = AUDIO_VAL_FRACTION) -> dict:
  """Word / voice linear probes and held-out step accuracy of a
  ``SequenceCPC`` for each of ``states`` on ``SpeechDataset`` splits,
  beside log-mel and MFCC features of the same utterances
  (:func:`audio_spectral_baselines`).

  ``ev``: the run's ``EvalConfig`` (``pools``, ``linear_*``,
  ``feature_batch_size``; a tuple ``linear_weight_decay`` is a grid searched
  per probe on a seeded ``val_fraction`` of the training utterances, the
  same split for every probe; the test split is read once per probe);
  ``batch_size``: the held-out batches of the step accuracy (the training
  batch size). Returns ``{state name: {"word/<pool>": acc, "voice/<pool>":
  acc, "test_step_accuracy": [K], ...}, "log_mel": {"word/mean": acc,
  "voice/mean": acc, "word/mean_std": ..., ...}, "mfcc": {...},
  "probe": {the probe's settings, "choices": {row: {"<label>/<pool>":
  {"weight_decay", "validation"}}}}, "spectral": {the front end},
  "dataset": {...}}``.
  """
  mesh = make_data_mesh() if mesh is None else mesh
  zd = int(method.model.encoder.features[-1])
  cd = int(method.model.context.features)

  def pooled(variables, x):
    return pool_sequence(*method.representations(variables, x))

  results, choices = {}, {}
  for name, state in states.items():
    t0 = time.perf_counter()
    feats = {}
    for split, ds in (("train", train), ("test", test)):
      f = extract_features(pooled, _params(state, mesh), ds.audio, mesh=mesh,
                           batch_size=ev.feature_batch_size,
                           desc=f"{name} {split}")
      feats[split] = split_pooled(f, zd, cd)
    res, choices[name] = _probe_all(ev, seed, val_fraction, feats,
                                    ev.pools or ("c", "z", "c_last"), train,
                                    test)
    res.update(_step_scores(method, state, test.audio, batch_size=batch_size,
                            mesh=mesh))
    res["seconds"] = time.perf_counter() - t0
    results[name] = res
  baselines, base_choices = audio_spectral_baselines(
      train, test, ev=ev, seed=seed, val_fraction=val_fraction)
  results.update(baselines)
  choices.update(base_choices)
  results["probe"] = {
      "solver": "sgd", **{k: (list(v) if isinstance(v, tuple) else v)
                          for k, v in _probe_kwargs(ev).items()},
      "seed": int(seed), "val_fraction": float(val_fraction),
      "selected_on": ("a seeded random val_fraction of the training "
                      "utterances, the same for every row; the classifier is "
                      "then refitted on all training utterances; the test "
                      "split is never used for a choice"),
      "choices": choices}
  results["spectral"] = _spectral_settings(train)
  results["dataset"] = {"train": len(train), "test": len(test),
                        "words": list(train.words), "voices": list(train.voices)}
  return results


def _spectral_settings(ds) -> dict:
  """The front end of :func:`spectral_features` on ``ds`` (JSON-ready)."""
  frame, hop = (int(round(ms * ds.sample_rate / 1000))
                for ms in (spectral.WINDOW_MS, spectral.HOP_MS))
  return {"sample_rate": int(ds.sample_rate), "window_ms": spectral.WINDOW_MS,
          "hop_ms": spectral.HOP_MS, "window": "periodic Hann",
          "n_fft": spectral.default_n_fft(frame),
          "frames": spectral.num_frames(ds.length, frame_length=frame,
                                        hop_length=hop),
          "mel_bands": spectral.NUM_MELS,
          "mel_scale": "HTK, triangles of peak 1, 0 Hz to sample_rate / 2",
          "log": f"natural, floor {spectral.LOG_FLOOR}",
          "mfcc": f"orthonormal DCT-II of the log-mel energies, first "
                  f"{spectral.NUM_MFCC} (c0 included, no liftering)",
          "input": "int16 / 32768, no pre-emphasis, no dither",
          "pools": {"mean": "mean over frames",
                    "mean_std": "mean and std over frames"}}


def _pct(v) -> str:
  return f"{100 * v:>7.2f}%"


def _format_audio(results: Mapping) -> str:
  cpc, rnd = results["cpc"], results["random_init"]
  lines = [f"{'features':<24} {'CPC':>8} {'random':>8}"]
  lines += [f"{key:<24} {_pct(cpc[key])} {_pct(rnd[key])}"
            for key in cpc if "/" in key]
  if "log_mel" in results or "mfcc" in results:
    lines.append(f"{'baseline, same probe':<24} {'word':>8} {'voice':>8}")
    for name, label in (("log_mel", "log-mel"), ("mfcc", "MFCC")):
      row = results.get(name, {})
      lines += [f"{label + ' ' + pool.replace('_', '+'):<24} "
                f"{_pct(row['word/' + pool])} {_pct(row['voice/' + pool])}"
                for pool in spectral.POOLS if "word/" + pool in row]
  if "probe" in results:
    p = results["probe"]
    wd = p["weight_decay"]
    how = (f"weight decay chosen per row from {wd} on a seeded "
           f"{100 * p['val_fraction']:.0f}% of the training utterances"
           if isinstance(wd, list) else f"weight decay {wd} (fixed)")
    lines.append(f"the same linear probe for every row: SGD {p['epochs']} "
                 f"epochs, lr {p['lr']}, {how}")
  return "\n".join(lines + _step_lines(cpc, rnd))


def _step_lines(cpc, rnd):
  fmt = lambda r: " ".join(f"{a:.3f}" for a in r["test_step_accuracy"])
  return [f"held-out accuracy per step k: {fmt(cpc)}",
          f"random init:                  {fmt(rnd)}"]


def _first(ds, n):
  n = len(ds) if not n else min(n, len(ds))
  return ds.images[:n], ds.labels[:n]


def image_cpc_evaluation(method, states: Mapping, train, test, *, ev,
                         seed: int, batch_size: int, mesh=None) -> dict:
  """Linear probe / kNN of pooled patch features and held-out step accuracy
  of an ``ImageCPC`` for each of ``states``, beside raw pixels.

  Probes train on the first ``ev.probe_train_examples`` training images and
  score the first ``ev.probe_test_examples`` test images (0 = all); the step
  accuracy uses at most ``ev.step_accuracy_batches`` test batches of
  ``batch_size``. kNN: ``ev.knn_k``, ``ev.knn_t``.
  """
  mesh = make_data_mesh() if mesh is None else mesh
  tr_x, tr_y = _first(train, ev.probe_train_examples)
  te_x, te_y = _first(test, ev.probe_test_examples)
  zd = int(method.model.encoder.features)

  def pooled(variables, x):
    z, c = method.representations(variables, x)
    return jnp.concatenate([z.mean((1, 2)), c.mean((1, 2))], -1)

  def scores(a, b, knn=True):
    out = {"linear": _linear(ev, seed, a, tr_y, b, te_y, train.num_classes)}
    if knn:
      out["knn"] = knn_accuracy(a, tr_y, b, te_y, num_classes=train.num_classes,
                                k=ev.knn_k, t=ev.knn_t)
    return out

  results = {}
  for name, state in states.items():
    t0 = time.perf_counter()
    f_tr, f_te = (extract_features(pooled, _params(state, mesh), x, mesh=mesh,
                                   batch_size=ev.feature_batch_size,
                                   desc=f"{name} {split}")
                  for split, x in (("train", tr_x), ("test", te_x)))
    res = {"z": scores(f_tr[:, :zd], f_te[:, :zd]),
           "c": scores(f_tr[:, zd:], f_te[:, zd:], knn=False),
           "zc": scores(f_tr, f_te, knn=False)}
    res.update(_step_scores(method, state, test.images, batch_size=batch_size,
                            mesh=mesh, max_batches=ev.step_accuracy_batches))
    res["seconds"] = time.perf_counter() - t0
    results[name] = res
  raw = [x.reshape(len(x), -1).astype(np.float32) / 255.0 for x in (tr_x, te_x)]
  results["raw_pixels"] = {"pixels": scores(raw[0], raw[1])}
  results["probe_examples"] = {"train": len(tr_y), "test": len(te_y)}
  return results


def _format_image(results: Mapping) -> str:
  cpc, rnd = results["cpc"], results["random_init"]
  lines = [f"{'features':<10} {'CPC lin':>8} {'random':>8} {'CPC kNN':>8} "
           f"{'random':>8}"]
  for pool in ("z", "c", "zc"):
    a, b = cpc[pool], rnd[pool]
    line = f"{pool:<10} {100 * a['linear']:>7.2f}% {100 * b['linear']:>7.2f}%"
    if "knn" in a:
      line += f" {100 * a['knn']:>7.2f}% {100 * b['knn']:>7.2f}%"
    lines.append(line)
  px = results["raw_pixels"]["pixels"]
  lines.append(f"{'raw pixels':<10} {100 * px['linear']:>7.2f}%          "
               f"{100 * px['knn']:>7.2f}%")
  return "\n".join(lines + _step_lines(cpc, rnd))


def evaluate_cpc(run, *, pools=None) -> dict:
  """:func:`audio_probes` (``SequenceCPC``) or :func:`image_cpc_evaluation`
  (``ImageCPC``) of a restored run (``method``, ``state``,
  ``random_state``, ``train``, ``test``, ``config``, ``mesh``), with the
  options of its ``config.eval`` (``pools``, if given, replaces its
  ``pools``: an evaluation setting, not a training one)."""
  fn = audio_probes if isinstance(run.method, SequenceCPC) else \
      image_cpc_evaluation
  ev = EvalConfig.from_config(run.config)
  if pools:
    ev = dataclasses.replace(ev, pools=tuple(pools))
  return fn(run.method, {"cpc": run.state, "random_init": run.random_state},
            run.train, run.test, ev=ev, seed=run.config.seed,
            batch_size=run.config.batch_size, mesh=run.mesh)


def format_cpc(results: Mapping) -> str:
  """The results of :func:`audio_probes` or :func:`image_cpc_evaluation` as
  a table (trained vs random init)."""
  return (_format_image if "raw_pixels" in results else _format_audio)(results)
