"""The standard evaluation protocol: the numbers of the README methods table.

For a restored image run (:func:`ssljax.run.restore`), on its fixed splits
(:mod:`ssljax.data.splits`): ``fit`` = the training split without the
validation split (what pre-training saw), ``validation`` = its last 10%,
``test`` = the test split, read once.

Encoders: the trained one, the same network at random init (step 0 of the
run's seed), raw pixels; and, for scarce labels, the same network trained from
scratch on the labels alone (:func:`scratch_baseline`). None of the three
baselines depends on the pre-training, so each is cached in ``cache_dir``
(from scratch: :func:`baseline_key`; random init and raw pixels, their probes
and kNN: :func:`frozen_baseline_key`) and a second run of the same network
and seed evaluates the trained encoder only.

- ``linear``: a linear classifier on standardized frozen features of ``fit``
  (mini-batch SGD, the config's ``eval`` lr / batch, at least
  :attr:`ProtocolOptions.probe_steps` steps), one per weight decay of
  :attr:`ProtocolOptions.weight_decays` in one vmapped loop; the one with the
  best validation accuracy is reported on test.
- ``knn``: weighted kNN (``config.eval.knn_k`` / ``knn_t``, the standard 200 /
  0.1; nothing chosen), bank = ``fit``.
- ``labels_1%`` / ``labels_10%``: the same class-balanced subsets of ``fit``
  for every method (:func:`label_subsets`, seed 0): a frozen linear probe
  (weight decay chosen on validation) and fine-tuning of the whole encoder
  with a linear head (:mod:`ssljax.eval.finetune`, crop + flip augmentation,
  the recipe of :attr:`ProtocolOptions.finetune`, chosen on validation by
  ``benchmarks/finetune_recipe.py``); from scratch the same network on the
  same labels with its own recipe.

Every figure comes with its validation accuracy; the test accuracy is reported
for the configuration chosen on validation only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Any, Callable

import jax
import numpy as np

from ssljax.config import ConfigReader
from ssljax.data import ArrayDataset, class_names, holdout
from ssljax.eval import finetune as ft
from ssljax.eval.knn import knn_predict
from ssljax.eval.linear import train_linear_classifier
from ssljax.train.build import EvalConfig

#: Label fractions of the few-label columns.
LABEL_FRACTIONS = (0.01, 0.1)


@dataclasses.dataclass(frozen=True)
class FinetuneRecipe:
  """Fine-tuning (or from-scratch training) of encoder + linear head."""
  steps: int
  lr: float
  batch_size: int = 128
  weight_decay: float = 5e-4
  crop_area: tuple[float, float] = (0.5, 1.0)
  #: ``"sgd"`` or ``"adamw"`` (:data:`ssljax.eval.finetune.OPTIMIZERS`)
  optimizer: str = "sgd"


@dataclasses.dataclass(frozen=True)
class ProtocolOptions:
  """The protocol's settings (the defaults are the table's)."""
  label_fractions: tuple[float, ...] = LABEL_FRACTIONS
  subset_seed: int = 0
  weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
  probe_steps: int = 5000
  # Learning rates chosen on validation (benchmarks/finetune_recipe.py,
  # benchmarks/results/finetune_recipe.json, on the SimCLR seed-0 run):
  # fine-tuning 0.05 of (0.01, 0.05, 0.2) at 300 / 800 steps for 1% / 10%;
  # from scratch 0.2 of (0.05, 0.2) at 1,000 / 2,000 steps. Both sides then
  # get the same number of steps (the from-scratch ones), so that neither is
  # compared with an undertrained opponent.
  #: fraction -> recipe for the pre-trained encoder (fine-tuning)
  finetune: tuple[tuple[float, FinetuneRecipe], ...] = (
      (0.01, FinetuneRecipe(steps=1000, lr=0.05)),
      (0.1, FinetuneRecipe(steps=2000, lr=0.05)))
  #: fraction -> recipe for the same network from scratch (add 1.0 for all
  #: labels: ``ALL_LABELS``, ``evaluate.py --scratch_all_labels``)
  scratch: tuple[tuple[float, FinetuneRecipe], ...] = (
      (0.01, FinetuneRecipe(steps=1000, lr=0.2)),
      (0.1, FinetuneRecipe(steps=2000, lr=0.2)))
  do_finetune: bool = True
  #: also the same network at random init and raw pixels
  baselines: bool = True
  seed: int = 0


def protocol_options(config, options: ProtocolOptions | None = None
                     ) -> ProtocolOptions:
  """``options`` (default :class:`ProtocolOptions`) with the run config's
  own fine-tuning settings applied: ``eval.finetune_optimizer`` to the
  fine-tuning and from-scratch recipes alike, ``eval.finetune_lr`` and
  ``eval.scratch_lr`` replacing their learning rates."""
  reader = config if isinstance(config, ConfigReader) else ConfigReader(config)
  ev = EvalConfig.from_config(reader)
  reader.raise_recorded_problems()     # a whole run config: read eval only
  options = ProtocolOptions() if options is None else options

  def apply(recipes, lr):
    return tuple((f, dataclasses.replace(
        r, optimizer=ev.finetune_optimizer,
        lr=r.lr if lr is None else float(lr))) for f, r in recipes)
  return dataclasses.replace(options,
                             finetune=apply(options.finetune, ev.finetune_lr),
                             scratch=apply(options.scratch, ev.scratch_lr))


#: The from-scratch recipe on all the fit labels (about 12 epochs of 54,000
#: images; the learning rate chosen for 10% of the labels): the supervised
#: reference of the table.
ALL_LABELS = (1.0, FinetuneRecipe(steps=5000, lr=0.2))


def splits(run) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset]:
  """``(fit, validation, test)`` of a restored run: the run's own validation
  split, or (a run that held none out) the last 10% of its training split."""
  if getattr(run, "validation", None) is not None:
    return run.train, run.validation, run.test
  fit, val = holdout(run.train)
  return fit, val, run.test


def label_subsets(labels, fractions=LABEL_FRACTIONS, seed: int = 0
                  ) -> dict[float, np.ndarray]:
  """Class-balanced index subsets of ``labels`` per fraction (the same for
  every method: they depend only on the labels and ``seed``)."""
  return {f: ft.balanced_subset(labels, fraction=f, seed=seed)
          for f in fractions}


def _standardize(train, *others):
  mean = train.mean(0, keepdims=True)
  std = train.std(0, keepdims=True) + 1e-6
  return [(x - mean) / std for x in (train, *others)]


def _acc(params, x, y) -> float:
  pred = np.argmax(np.asarray(x @ np.asarray(params["w"]) + np.asarray(params["b"])), -1)
  return float(np.mean(pred == y))


def probe(train_x, train_y, val_x, val_y, test_x, test_y, *, num_classes: int,
          weight_decays, lr: float, batch_size: int, min_epochs: int,
          min_steps: int, seed: int = 0) -> dict:
  """Linear probe on standardized features, one classifier per weight decay
  (vmapped), the best on validation reported on test."""
  train_x, val_x, test_x = _standardize(*(np.asarray(a, np.float32).reshape(
      len(a), -1) for a in (train_x, val_x, test_x)))
  n = len(train_x)
  bs = min(batch_size, n)
  epochs = max(min_epochs, math.ceil(min_steps / max(n // bs, 1)))
  stacked = train_linear_classifier(
      train_x, train_y, num_classes=num_classes, epochs=epochs, batch_size=bs,
      lr=lr, weight_decay=tuple(weight_decays), seed=seed)
  params = [jax.tree.map(lambda a, i=i: np.asarray(a[i]), stacked)
            for i in range(len(weight_decays))]
  val = {float(wd): _acc(p, val_x, val_y) for wd, p in zip(weight_decays, params)}
  best = max(range(len(weight_decays)),
             key=lambda i: (val[float(weight_decays[i])], weight_decays[i]))
  return {"test": _acc(params[best], test_x, test_y),
          "validation": val[float(weight_decays[best])],
          "weight_decay": float(weight_decays[best]), "validation_grid": val,
          "epochs": epochs}


def knn(bank, bank_y, val_x, val_y, test_x, test_y, *, num_classes: int,
        k: int, t: float) -> dict:
  out = {}
  for name, x, y in (("validation", val_x, val_y), ("test", test_x, test_y)):
    pred = knn_predict(bank, bank_y, x, num_classes=num_classes, k=k, t=t)
    out[name] = float(np.mean(pred == y))
  return out


def finetune_scores(method, state, fit, val, test, subset, recipe: FinetuneRecipe,
                    *, seed: int = 0) -> dict:
  """Fine-tune ``state``'s encoder (+ a linear head) on ``fit[subset]``;
  validation and test accuracy."""
  res = ft.finetune(method, state, fit.images, fit.labels,
                    num_classes=fit.num_classes, steps=recipe.steps,
                    batch_size=recipe.batch_size, lr=recipe.lr,
                    weight_decay=recipe.weight_decay,
                    crop_area=tuple(recipe.crop_area), seed=seed, subset=subset,
                    optimizer=recipe.optimizer)
  out = {}
  for name, ds in (("validation", val), ("test", test)):
    if ds is not None:        # test=None: a choice on validation only
      out[name] = float(np.mean(ft.predict(method, res, ds.images) == ds.labels))
  out["final_loss"] = float(np.mean(res["losses"][-20:]))
  out["recipe"] = dataclasses.asdict(recipe)
  return out


def _recipe_key(recipe: FinetuneRecipe) -> dict:
  """The recipe's fields, without ``optimizer`` when it is the default
  ``"sgd"`` (so the keys of baselines cached before the field existed
  stay valid)."""
  out = dataclasses.asdict(recipe)
  if out["optimizer"] == "sgd":
    del out["optimizer"]
  return out


def baseline_key(run, options: ProtocolOptions) -> str:
  """What the from-scratch baseline depends on: the dataset, the network (the
  encoder config and the method's input preprocessing), the subsets and the
  scratch recipes; not the pre-training."""
  method = run.method
  prep = (type(method).__name__ if hasattr(method, "preprocess") else
          [list(map(float, np.ravel(getattr(method, "mean", [])))),
           list(map(float, np.ravel(getattr(method, "std", []))))])
  blob = json.dumps({
      "dataset": run.config.dataset, "fit": len(splits(run)[0]),
      "encoder": run.config.get("encoder").to_dict() if run.config.get(
          "encoder") is not None else None,
      "preprocess": prep, "subset_seed": options.subset_seed,
      "scratch": [(f, _recipe_key(r)) for f, r in options.scratch],
      "seed": options.seed}, sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:12]


def scratch_baseline(run, options: ProtocolOptions, cache_dir: str | None,
                     progress: Callable[[str], None] = lambda s: None) -> dict:
  """The network of ``run`` trained from random init on the labels alone
  (each fraction of :attr:`ProtocolOptions.scratch`), cached in
  ``cache_dir/scratch_<key>.json``."""
  key = baseline_key(run, options)
  path = os.path.join(cache_dir, f"scratch_{key}.json") if cache_dir else None
  if path and os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  fit, val, test = splits(run)
  fractions = [f for f, _ in options.scratch]
  subsets = label_subsets(fit.labels, [f for f in fractions if f < 1],
                          options.subset_seed)
  out = {"key": key}
  for fraction, recipe in options.scratch:
    progress(f"from scratch, {_pct(fraction)} labels")
    t0 = time.perf_counter()
    idx = subsets.get(fraction, np.arange(len(fit)))
    out[_pct(fraction)] = {**finetune_scores(run.method, run.random_state, fit,
                                             val, test, idx, recipe,
                                             seed=options.seed),
                           "labels": int(len(idx)),
                           "seconds": time.perf_counter() - t0}
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(out, f, indent=1)
  return out


#: Bump when the probe or kNN code changes its numbers: it is part of every
#: :func:`frozen_baseline_key`, so older cached frozen baselines are not used.
FROZEN_BASELINE_VERSION = 1

#: Config fields left out of the random-init key: those that only steer
#: pre-training (they change neither the random initialization, whose weights
#: are hashed anyway, nor what ``encode`` computes), and ``eval``, whose probe
#: and kNN settings the key holds on their own (its fine-tuning settings do
#: not touch the frozen baselines).
_FROZEN_KEY_IGNORES = ("num_steps", "num_epochs", "batch_size", "optimizer",
                       "augment", "log_every", "checkpoint_every",
                       "keep_checkpoints", "monitor", "data_dir",
                       "data_source", "nonfinite", "eval")


def tree_digest(*trees) -> str:
  """sha256 of the dtypes, shapes and bytes of every array leaf."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(trees):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def holds_checkpoint(path: str | None, step: int, params_sha256: str) -> bool:
  """Whether the results file ``path`` holds the evaluation of this
  checkpoint: the same step and (files written since it was recorded) the
  same parameter digest (:func:`tree_digest` of the trained params), so a run
  trained again into the same workdir is evaluated again
  (``experiments/evaluate.py --skip_done``)."""
  if not path or not os.path.exists(path):
    return False
  with open(path) as f:
    held = json.load(f)
  return held.get("step") == step and held.get(
      "params_sha256", params_sha256) == params_sha256


def frozen_baseline_key(run, options: ProtocolOptions, which: str,
                        data_digest: str) -> str:
  """What a frozen baseline's numbers (linear, kNN, few-label probes of
  ``"raw_pixels"`` or ``"random_init"``) depend on: the splits' images and
  labels (``data_digest``), the label subsets, the probe and kNN settings,
  and for ``"random_init"`` the method, its config without the pre-training
  fields (:data:`_FROZEN_KEY_IGNORES`) and the hashed random-init variables;
  not the pre-training."""
  ev = run.config.eval
  blob = {"which": which, "version": FROZEN_BASELINE_VERSION,
          "data": data_digest,
          "probe": {"weight_decays": list(map(float, options.weight_decays)),
                    "probe_steps": options.probe_steps,
                    "label_fractions": list(options.label_fractions),
                    "subset_seed": options.subset_seed, "seed": options.seed,
                    "linear_lr": float(ev.linear_lr),
                    "linear_batch_size": int(ev.linear_batch_size),
                    "linear_epochs": int(ev.linear_epochs),
                    "knn_k": int(ev.knn_k), "knn_t": float(ev.knn_t)}}
  if which == "random_init":
    config = run.config.to_dict() if hasattr(run.config, "to_dict") else dict(
        run.config)
    blob["config"] = {k: v for k, v in config.items()
                      if k not in _FROZEN_KEY_IGNORES}
    blob["variables"] = tree_digest(run.variables(run.random_state))
  text = json.dumps(blob, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def _pct(fraction: float) -> str:
  return f"{100 * fraction:g}%"


def _raw(images):
  return images.reshape(len(images), -1).astype(np.float32) / 255.0


def evaluate(run, options: ProtocolOptions = ProtocolOptions(), *,
             cache_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
  """The protocol on a restored run; returns the results dict (see the module
  docstring), with ``seconds`` per part."""
  from tqdm.auto import tqdm       # noqa: PLC0415 (tqdm only when evaluating)
  fit, val, test = splits(run)
  ev = run.config.eval
  nc = fit.num_classes
  subsets = label_subsets(fit.labels, options.label_fractions,
                          options.subset_seed)
  finetune = dict(options.finetune)
  # Progress in units of expected work (about a second each on a 2-core CPU
  # for Fashion-MNIST), so that the time left is estimated from the rate so
  # far rather than from a count of unequal parts.
  work = {"features": 20.0, "linear": 8.0, "knn": 10.0,
          "few-label probe": 12.0, "fine-tune": 0.1}   # fine-tune: per step
  # The frozen baselines (random init, raw pixels) do not depend on the
  # pre-training: cached in cache_dir like the scratch baseline.
  cached: dict[str, dict] = {}
  frozen_paths: dict[str, str] = {}
  if options.baselines and cache_dir:
    data_digest = tree_digest(fit.images, fit.labels, val.images, val.labels,
                              test.images, test.labels)
    for which in ("random_init", "raw_pixels"):
      key = frozen_baseline_key(run, options, which, data_digest)
      frozen_paths[which] = os.path.join(cache_dir, f"frozen_{which}_{key}.json")
      if os.path.exists(frozen_paths[which]):
        with open(frozen_paths[which]) as f:
          cached[which] = json.load(f)
  # what this call computes: the trained encoder and the uncached baselines
  fresh = ["trained"] + [w for w in ("random_init", "raw_pixels")
                         if options.baselines and w not in cached]
  n_probe = len(fresh)
  total = (work["features"] * len([w for w in fresh if w != "raw_pixels"])
           + (work["linear"] + work["knn"]) * n_probe
           + (work["few-label probe"] * n_probe if subsets else 0.0))
  if options.do_finetune:
    total += sum(work["fine-tune"] * finetune[f].steps for f in subsets)
  bar = tqdm(total=round(total), disable=not progress, unit="u",
             bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                        "[{elapsed} elapsed, about {remaining} left]")
  seconds: dict[str, float] = {}

  def step(name):
    bar.set_description(name)
    return time.perf_counter()

  def done(name, t0, units=None):
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    bar.update(round(work[name] if units is None else units))

  feats = {}
  encoders = [("trained", run.state)]
  if options.baselines and "random_init" not in cached:
    encoders.append(("random_init", run.random_state))
  for which, state in encoders:
    t0 = step(f"features ({which})")
    # one pass over fit + validation (the training split) and test
    train_images = np.concatenate([fit.images, val.images])
    f_train = run.encode(train_images, state=state,
                         batch_size=ev.feature_batch_size, progress=False)
    f_test = run.encode(test.images, state=state,
                        batch_size=ev.feature_batch_size, progress=False)
    feats[which] = (f_train[:len(fit)], f_train[len(fit):], f_test)
    done("features", t0)
  if options.baselines and "raw_pixels" not in cached:
    feats["raw_pixels"] = (_raw(fit.images), _raw(val.images),
                           _raw(test.images))

  probe_kw = dict(num_classes=nc, weight_decays=options.weight_decays,
                  lr=ev.linear_lr, batch_size=ev.linear_batch_size,
                  min_epochs=ev.linear_epochs, min_steps=options.probe_steps,
                  seed=options.seed)
  results: dict[str, Any] = {}
  for which, (a, b, c) in feats.items():
    r = results.setdefault(which, {})
    t0 = step(f"linear ({which})")
    r["linear"] = probe(a, fit.labels, b, val.labels, c, test.labels, **probe_kw)
    done("linear", t0)
    t0 = step(f"kNN ({which})")
    r["knn"] = knn(a, fit.labels, b, val.labels, c, test.labels,
                   num_classes=nc, k=ev.knn_k, t=ev.knn_t)
    done("knn", t0)
    if subsets:
      t0 = step(f"few-label probe ({which})")
      for fraction, idx in subsets.items():
        r[f"probe_{_pct(fraction)}"] = probe(
            a[idx], fit.labels[idx], b, val.labels, c, test.labels, **probe_kw)
      done("few-label probe", t0)
    if which in frozen_paths:
      os.makedirs(cache_dir, exist_ok=True)
      with open(frozen_paths[which], "w") as f:
        json.dump(r, f, indent=1)
  for which in ("random_init", "raw_pixels"):    # the table's order
    if which in cached:
      results[which] = cached[which]
      seconds[f"{which} (cached)"] = 0.0
  if options.do_finetune and subsets:
    for fraction, idx in subsets.items():
      t0 = step(f"fine-tune {_pct(fraction)}")
      results["trained"][f"finetune_{_pct(fraction)}"] = finetune_scores(
          run.method, run.state, fit, val, test, idx, finetune[fraction],
          seed=options.seed)
      done("fine-tune", t0, work["fine-tune"] * finetune[fraction].steps)
  bar.close()
  if options.do_finetune and subsets:
    t0 = time.perf_counter()
    results["scratch"] = scratch_baseline(
        run, options, cache_dir,
        progress=lambda s: print(f"computing the cached baseline: {s}",
                                 flush=True) if progress else None)
    seconds["scratch (cached)"] = time.perf_counter() - t0
  return {
      "method": run.config.method, "step": int(run.step),
      "splits": {"fit": fit.name, "validation": val.name, "test": test.name,
                 "sizes": [len(fit), len(val), len(test)]},
      "label_subsets": {_pct(f): int(len(i)) for f, i in subsets.items()},
      "class_names": list(class_names(run.config.dataset, nc)),
      "results": results, "seconds": seconds,
      "options": dataclasses.asdict(options)}


def summary(result: dict) -> dict[str, dict[str, float]]:
  """Test accuracies (fractions) of the table's columns per encoder:
  ``linear``, ``knn``, ``1%`` / ``10%`` (fine-tuned; frozen probe for raw
  pixels and random init, scratch training for ``scratch``)."""
  res = result["results"]
  out = {}
  for which in ("trained", "random_init", "raw_pixels"):
    if which not in res:
      continue
    r = res[which]
    row = {"linear": r["linear"]["test"], "knn": r["knn"]["test"]}
    for key in r:
      if key.startswith("probe_"):
        row[f"probe {key[6:]}"] = r[key]["test"]
      if key.startswith("finetune_"):
        row[f"finetune {key[9:]}"] = r[key]["test"]
    out[which] = row
  if "scratch" in res:
    out["scratch"] = {k: v["test"] for k, v in res["scratch"].items()
                      if isinstance(v, dict)}
  return out


def format_summary(result: dict) -> str:
  s = summary(result)
  cols = sorted({c for row in s.values() for c in row},
                key=lambda c: (c.split()[0], len(c), c))
  lines = [f"{'encoder':<14}" + "".join(f"{c:>15}" for c in cols)]
  for name, row in s.items():
    lines.append(f"{name:<14}" + "".join(
        f"{100 * row[c]:>14.2f}%" if c in row else f"{'-':>15}" for c in cols))
  return "\n".join(lines)
