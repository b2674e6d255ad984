"""Evaluation of contrastive predictive coding (``ssljax.methods.cpc``).

* :func:`held_out_prediction_accuracy`: the per-step prediction accuracy and
  InfoNCE loss of held-out data (CPC's own measure), every prediction scored
  against all targets of its batch whatever the training candidate set.
* :func:`audio_probes`: sequence CPC on spoken words (``ssljax.data.speech``):
  linear probes of word and voice identity on frozen features pooled over
  time (``c``: mean context, ``z``: mean encoder output, ``c_last``: the
  last context vector), plus the held-out step accuracy.
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

import functools
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.eval.features import extract_features
from ssljax.eval.knn import knn_accuracy
from ssljax.eval.linear import linear_probe_accuracy
from ssljax.methods.base import encoder_variables
from ssljax.methods.cpc import SequenceCPC
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import EvalConfig

__all__ = ["audio_probes", "evaluate_cpc", "format_cpc",
           "held_out_prediction_accuracy", "image_cpc_evaluation"]


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


def _linear(ev, seed, train_x, train_y, test_x, test_y, num_classes):
  return linear_probe_accuracy(
      train_x, train_y, test_x, test_y, num_classes=num_classes,
      epochs=ev.linear_epochs, batch_size=ev.linear_batch_size,
      lr=ev.linear_lr, weight_decay=ev.linear_weight_decay, seed=seed)


def audio_probes(method, states: Mapping, train, test, *, ev, seed: int,
                 batch_size: int, mesh=None) -> dict:
  """Word / voice linear probes and held-out step accuracy of a
  ``SequenceCPC`` for each of ``states`` on ``SpeechDataset`` splits.

  ``ev``: the run's ``EvalConfig`` (``pools``, ``linear_*``,
  ``feature_batch_size``); ``batch_size``: the held-out batches of the step
  accuracy (the training batch size). Returns ``{state name: {"word/<pool>":
  acc, "voice/<pool>": acc, "test_step_accuracy": [K], ...}}``.
  """
  mesh = make_data_mesh() if mesh is None else mesh
  zd = int(method.model.encoder.features[-1])
  cd = int(method.model.context.features)

  def pooled(variables, x):
    z, c = method.representations(variables, x)
    return jnp.concatenate([z.mean(1), c.mean(1), c[:, -1]], -1)

  results = {}
  for name, state in states.items():
    t0 = time.perf_counter()
    feats = {}
    for split, ds in (("train", train), ("test", test)):
      f = extract_features(pooled, _params(state, mesh), ds.audio, mesh=mesh,
                           batch_size=ev.feature_batch_size,
                           desc=f"{name} {split}")
      feats[split] = {"z": f[:, :zd], "c": f[:, zd:zd + cd],
                      "c_last": f[:, zd + cd:]}
    res = {}
    for pool in ev.pools or ("c", "z", "c_last"):
      for label in ("word", "voice"):
        res[f"{label}/{pool}"] = _linear(
            ev, seed, feats["train"][pool], getattr(train, label),
            feats["test"][pool], getattr(test, label),
            len(getattr(train, label + "s")))
    res.update(_step_scores(method, state, test.audio, batch_size=batch_size,
                            mesh=mesh))
    res["seconds"] = time.perf_counter() - t0
    results[name] = res
  results["dataset"] = {"train": len(train), "test": len(test),
                        "words": list(train.words), "voices": list(train.voices)}
  return results


def _format_audio(results: Mapping) -> str:
  cpc, rnd = results["cpc"], results["random_init"]
  lines = [f"{'features':<16} {'CPC':>8} {'random':>8}"]
  lines += [f"{key:<16} {100 * cpc[key]:>7.2f}% {100 * rnd[key]:>7.2f}%"
            for key in cpc if "/" in key]
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


def evaluate_cpc(run) -> dict:
  """:func:`audio_probes` (``SequenceCPC``) or :func:`image_cpc_evaluation`
  (``ImageCPC``) of a restored run (``method``, ``state``,
  ``random_state``, ``train``, ``test``, ``config``, ``mesh``), with the
  options of its ``config.eval``."""
  fn = audio_probes if isinstance(run.method, SequenceCPC) else \
      image_cpc_evaluation
  return fn(run.method, {"cpc": run.state, "random_init": run.random_state},
            run.train, run.test, ev=EvalConfig.from_config(run.config), seed=run.config.seed,
            batch_size=run.config.batch_size, mesh=run.mesh)


def format_cpc(results: Mapping) -> str:
  """The results of :func:`audio_probes` or :func:`image_cpc_evaluation` as
  a table (trained vs random init)."""
  return (_format_image if "raw_pixels" in results else _format_audio)(results)
