"""The linear probe on cached features, ssljax vs scikit-learn: the same
solver with the same stopping rule, every choice made on the validation
split, timed in interleaved rounds.

Launch (on an otherwise idle machine; refused above the load threshold)::

    python benchmarks/probe_vs_sklearn.py --workdir workdirs/reproduce/simclr_s0
    python benchmarks/probe_vs_sklearn.py --features raw       # raw pixels
    python benchmarks/probe_vs_sklearn.py --dry_run            # every code path

Data: the evaluation protocol's splits (``ssljax.eval.standard.splits``):
``fit`` = the training split without its last 10% (54,000 Fashion-MNIST
images), ``validation`` = that last 10% (6,000), ``test`` (10,000). Features:
the frozen encoder of ``--workdir`` (extracted once, untimed; ``--features
raw``: pixels), standardized with ``fit``'s mean and standard deviation, as
float32, cached in memory (numpy for scikit-learn, on the device for ssljax).
Every fit is on ``fit``; every choice is made by accuracy on ``validation``;
each final model's test accuracy is read once, after all choices.

Two comparisons, each of the same solver against the same solver:

1. L-BFGS on the same objective, ``mean_i CE(W x_i + b, y_i) + (l2 / 2)
   ||W||^2`` (multinomial; ``b`` not penalized), i.e. scikit-learn's
   ``LogisticRegression(C = 1 / (l2 N))``, with the same stopping rule:
   at most ``--max_iter`` iterations, stop when the largest absolute entry
   of the gradient is below ``--tol`` (scipy's L-BFGS-B ``gtol`` test, which
   scikit-learn uses; ssljax's ``fit_logistic_regression(grad_norm="inf")``).
   ``sklearn_lbfgs`` vs ``ssljax_lbfgs``; both report their iterations.
   ``l2`` is chosen from ``--l2_grid`` on validation (with ssljax's L-BFGS:
   the same optimum, checked by the weights and objective of both).
2. The early-stopped mini-batch SGD probe (``ssljax.eval.
   train_linear_classifier``, the protocol's probe: Nesterov momentum 0.9,
   cosine decay from ``lr``, batch ``B``, weight decay ``wd``) for ``E``
   epochs vs scikit-learn's ``SGDClassifier(loss="log_loss", penalty="l2",
   alpha=wd)`` for the same ``E`` epochs (``max_iter=E, tol=None``).
   ``(E, wd)`` is chosen on validation from ``--sgd_epochs`` x
   ``--weight_decays`` for the ssljax probe (lr / batch from the run's
   config); scikit-learn then gets the same ``E`` and ``alpha = wd`` and
   its learning-rate schedule chosen on validation from
   ``--sk_sgd_schedules``: ``optimal`` (its default, ``1 / (alpha (t +
   t0))``) and ``cosine`` (the closest it allows to ours: a constant
   per-sample step within an epoch, set before each epoch (``partial_fit``)
   to ``lr / (B (1 - momentum))`` times the cosine factor at mid-epoch).
   What still differs, and cannot be matched in scikit-learn: it updates
   after every example (no mini-batches), without momentum; it fits one
   binary logistic regression per class (one-vs-rest, ``n_jobs`` threads)
   rather than a softmax; it does not penalize the intercept (ssljax's
   weight decay also shrinks ``b``); ssljax drops the last ``N mod B``
   examples of each shuffled epoch.

A third ratio, ``ssljax_sgd_vs_sklearn_lbfgs``, puts the chosen SGD probe
against scikit-learn's converged L-BFGS: different solvers and objectives
(the earlier "15.9x" claim was of this kind); it is context, not a
same-solver figure.

Timing. Each contestant fits once before the rounds: for ssljax after
``jax.clear_caches()``, so that this first fit includes the compilation
(reported as ``first_fit_s`` and ``compile_s`` = first fit minus the warm
median). Then ``benchmarks/_compare.py`` times one fit per contestant per
round, ``--rounds`` (>= 10) interleaved rounds, and each ratio is the median
of the per-round ``sklearn seconds / ssljax seconds`` with a 95% bootstrap
interval (> 1: ssljax faster; parity when the interval holds 1). JSON:
``--out`` (default ``benchmarks/results/probe_vs_sklearn.json``), the
harness's record (machine, commit, command, load, every round).
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import _compare as cmp  # noqa: E402  pylint: disable=wrong-import-position

from ssljax.eval.linear import (  # noqa: E402  pylint: disable=wrong-import-position
    _accuracy, fit_logistic_regression, train_linear_classifier)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "probe_vs_sklearn.json"
DRY_RUN_OUT = Path(tempfile.gettempdir()) / "probe_vs_sklearn_dry_run.json"
MOMENTUM = 0.9          # the SGD probe's (ssljax.eval.linear._sgd_tx)


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------

def synthetic_features(n_fit=800, n_val=200, n_test=200, width=16,
                       classes=4, seed=0):
  """Gaussian blobs (dry runs): fit / validation / test features, labels."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(0.0, 1.0, size=(classes, width))
  def draw(n):
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(0.0, 1.5, size=(n, width))).astype(
        np.float32), y
  return (*draw(n_fit), *draw(n_val), *draw(n_test),
          f"synthetic blobs ({classes} classes, width {width})", {})


def load_features(args):
  """``(fit_x, fit_y, val_x, val_y, test_x, test_y, description, eval
  config)``: the protocol's splits, features unstandardized."""
  from ssljax.data import holdout, load  # pylint: disable=import-outside-toplevel
  flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255.0
  if args.features == "raw":
    fit, val = holdout(load("fashion_mnist", "train"))
    test = load("fashion_mnist", "test")
    return (flat(fit.images), fit.labels, flat(val.images), val.labels,
            flat(test.images), test.labels,
            "raw pixels (Fashion-MNIST)", {})
  from ssljax.eval.standard import splits  # pylint: disable=import-outside-toplevel
  from ssljax.run import restore  # pylint: disable=import-outside-toplevel
  with restore(args.workdir) as run:
    fit, val, test = splits(run)
    train_x = run.encode(np.concatenate([fit.images, val.images]))
    test_x = run.encode(test.images)
    ev = dict(run.config.get("eval", {}))
    what = (f"{run.config.method} encoder of {args.workdir} (step {run.step}); "
            f"splits {fit.name} / {val.name} / {test.name}")
  return (train_x[:len(fit)], fit.labels, train_x[len(fit):], val.labels,
          test_x, test.labels, what, ev)


def standardize(fit_x, *others):
  mean = fit_x.mean(0, keepdims=True)
  std = fit_x.std(0, keepdims=True) + 1e-6
  return [((x - mean) / std).astype(np.float32) for x in (fit_x, *others)]


# --------------------------------------------------------------------------
# The contestants
# --------------------------------------------------------------------------

def objective(w, b, x, y, l2) -> float:
  """``mean CE(W x + b, y) + (l2 / 2) ||W||^2`` in float64 (numpy)."""
  logits = x.astype(np.float64) @ np.asarray(w, np.float64) + np.asarray(
      b, np.float64)
  logits -= logits.max(1, keepdims=True)
  lse = np.log(np.exp(logits).sum(1))
  ce = float(np.mean(lse - logits[np.arange(len(y)), y]))
  return ce + 0.5 * l2 * float(np.sum(np.asarray(w, np.float64) ** 2))


def sklearn_lbfgs(x, y, *, l2, tol, max_iter):
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  clf = LogisticRegression(C=1.0 / (l2 * len(x)), solver="lbfgs", tol=tol,
                           max_iter=max_iter)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")        # ConvergenceWarning at max_iter
    clf.fit(x, y)
  return clf


def cosine_factor(epoch: int, epochs: int) -> float:
  """The cosine decay at the middle of ``epoch`` (0-based) of ``epochs``."""
  return 0.5 * (1.0 + math.cos(math.pi * (epoch + 0.5) / epochs))


def sklearn_sgd(x, y, *, epochs, alpha, schedule, lr, batch_size, n_jobs,
                classes, seed=0):
  """``SGDClassifier(loss="log_loss")`` for exactly ``epochs`` passes.
  ``schedule``: ``"optimal"`` (scikit-learn's default) or ``"cosine"`` (a
  constant per-example step per epoch, ``lr / (B (1 - momentum))`` times
  the cosine factor, via ``partial_fit``)."""
  from sklearn.linear_model import SGDClassifier  # pylint: disable=import-outside-toplevel
  common = dict(loss="log_loss", penalty="l2", alpha=alpha, fit_intercept=True,
                shuffle=True, n_jobs=n_jobs, average=False,
                early_stopping=False)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if schedule == "optimal":
      clf = SGDClassifier(learning_rate="optimal", max_iter=epochs, tol=None,
                          random_state=seed, **common)
      clf.fit(x, y)
      return clf
    if schedule != "cosine":
      raise ValueError(f"unknown scikit-learn SGD schedule {schedule!r}")
    peak = lr / (batch_size * (1.0 - MOMENTUM))
    # A RandomState instance (not an int): each partial_fit draws new
    # per-class seeds, so each epoch visits the examples in a new order.
    clf = SGDClassifier(learning_rate="constant", eta0=peak, max_iter=1,
                        tol=None, random_state=np.random.RandomState(seed),
                        **common)
    for e in range(epochs):
      clf.eta0 = peak * cosine_factor(e, epochs)
      clf.partial_fit(x, y, classes=np.arange(classes))
  return clf


def sk_params(clf) -> dict:
  return {"w": np.asarray(clf.coef_.T), "b": np.asarray(clf.intercept_)}


def accuracy(params, x, y) -> float:
  return _accuracy(params, x, y)


# --------------------------------------------------------------------------
# Choices on validation
# --------------------------------------------------------------------------

def choose(args, d, log=print) -> dict:
  """Every choice, on validation (``d`` holds the arrays): l2 for L-BFGS
  (``--compare`` lbfgs or both); (E, wd) for the SGD probe and
  scikit-learn's SGD schedule (sgd or both)."""
  out = {}
  if args.compare in ("both", "lbfgs"):
    out.update(choose_lbfgs(args, d, log))
  if args.compare in ("both", "sgd"):
    out.update(choose_sgd(args, d, log))
  return out


def choose_lbfgs(args, d, log=print) -> dict:
  """L-BFGS's l2 from ``--l2_grid`` (ties: the stronger regularization)."""
  fx, fy, vx, vy = d["fit_x_j"], d["fit_y_j"], d["val_x"], d["val_y"]
  out = {}
  l2_grid = sorted(float(v) for v in args.l2_grid.split(","))
  val, iters, secs = {}, {}, {}
  for l2 in l2_grid:
    t = time.perf_counter()
    params, count = fit_logistic_regression(
        fx, fy, num_classes=d["classes"], l2=l2, max_iter=args.max_iter,
        tol=args.tol, grad_norm="inf", return_iterations=True)
    jax.block_until_ready(params)
    secs[l2], iters[l2] = time.perf_counter() - t, int(count)
    val[l2] = accuracy(params, vx, vy)
    log(f"  L-BFGS l2 {l2:g}: validation {100 * val[l2]:.2f}%, "
        f"{iters[l2]} iterations, {secs[l2]:.1f} s")
  l2 = max(sorted(val, reverse=True), key=lambda k: val[k])
  out["lbfgs"] = {"grid": l2_grid, "validation_accuracy": val,
                  "iterations": iters, "seconds": secs, "chosen_l2": l2}
  return out


def choose_sgd(args, d, log=print) -> dict:
  """The SGD probe's (epochs, weight decay), then scikit-learn's SGD
  schedule at those epochs and alpha = weight decay."""
  fx, fy, vx, vy = d["fit_x_j"], d["fit_y_j"], d["val_x"], d["val_y"]
  out = {}
  # SGD probe: (epochs, wd); every wd of the grid in one vmapped loop.
  wds = tuple(sorted(float(v) for v in args.weight_decays.split(",")))
  grid, secs = {}, {}
  for epochs in [int(e) for e in args.sgd_epochs.split(",")]:
    t = time.perf_counter()
    stacked = train_linear_classifier(
        fx, fy, num_classes=d["classes"], epochs=epochs,
        batch_size=d["batch_size"], lr=d["lr"], weight_decay=wds, seed=0)
    jax.block_until_ready(stacked)
    secs[epochs] = time.perf_counter() - t
    for i, wd in enumerate(wds):
      p = jax.tree.map(lambda a, i=i: a[i], stacked)
      grid[f"{epochs}/{wd:g}"] = accuracy(p, vx, vy)
    log(f"  SGD probe {epochs:3d} epochs: validation " + ", ".join(
        f"wd {wd:g} {100 * grid[f'{epochs}/{wd:g}']:.2f}%" for wd in wds)
        + f" ({secs[epochs]:.1f} s for the grid)")
  # Best validation accuracy; ties: fewer epochs, then stronger decay.
  order = sorted(grid, key=lambda k: (int(k.split("/")[0]),
                                      -float(k.split("/")[1])))
  best = max(order, key=lambda k: grid[k])      # the first of the best
  epochs, wd = int(best.split("/")[0]), float(best.split("/")[1])
  out["sgd"] = {"epochs_grid": [int(e) for e in args.sgd_epochs.split(",")],
                "weight_decay_grid": list(wds),
                "validation_accuracy": grid, "grid_seconds": secs,
                "chosen_epochs": epochs, "chosen_weight_decay": wd,
                "lr": d["lr"], "batch_size": d["batch_size"]}
  # scikit-learn's SGD schedule at (E, alpha = wd).
  sk_val, sk_secs = {}, {}
  for schedule in args.sk_sgd_schedules.split(","):
    t = time.perf_counter()
    clf = sklearn_sgd(d["fit_x"], d["fit_y"], epochs=epochs, alpha=wd,
                      schedule=schedule, lr=d["lr"],
                      batch_size=d["batch_size"], n_jobs=args.sk_n_jobs,
                      classes=d["classes"])
    sk_secs[schedule] = time.perf_counter() - t
    sk_val[schedule] = float(clf.score(vx, vy))
    log(f"  scikit-learn SGD ({schedule}), {epochs} epochs, alpha {wd:g}: "
        f"validation {100 * sk_val[schedule]:.2f}% ({sk_secs[schedule]:.1f} s)")
  schedule = max(sk_val, key=lambda k: sk_val[k])      # ties: listed first
  out["sklearn_sgd"] = {"schedules": list(sk_val), "validation_accuracy": sk_val,
                        "seconds": sk_secs, "chosen_schedule": schedule}
  return out


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default="workdirs/reproduce/simclr_s0")
  p.add_argument("--features", choices=("encoder", "raw"), default="encoder")
  p.add_argument("--rows", type=int, default=0,
                 help="use the first N rows of the fit split (0 = all)")
  p.add_argument("--l2_grid", default="1e-5,1e-4,1e-3",
                 help="L-BFGS's l2 (per example), chosen on validation")
  p.add_argument("--tol", type=float, default=1e-4,
                 help="both L-BFGS: stop when max |gradient entry| < tol "
                      "(scikit-learn's default 1e-4)")
  p.add_argument("--max_iter", "--max-iter", type=int, default=1000)
  p.add_argument("--sgd_epochs", default="5,10,20,50,100",
                 help="the SGD probe's epochs, chosen on validation")
  p.add_argument("--weight_decays", default="1e-5,1e-4,1e-3,1e-2",
                 help="the SGD probe's weight decay, chosen on validation "
                      "(the protocol's grid); scikit-learn's alpha = it")
  p.add_argument("--lr", type=float, default=0.0,
                 help="the SGD probe's peak lr (default: the run's "
                      "config.eval.linear_lr, else 0.5)")
  p.add_argument("--batch_size", type=int, default=0,
                 help="the SGD probe's batch (default: config.eval."
                      "linear_batch_size, else 1024)")
  p.add_argument("--sk_sgd_schedules", default="optimal,cosine",
                 help="scikit-learn SGD schedules, chosen on validation")
  p.add_argument("--sk_n_jobs", type=int, default=-1,
                 help="SGDClassifier's n_jobs (its one-vs-rest fits in "
                      "threads; -1: every core)")
  p.add_argument("--compare", choices=("both", "lbfgs", "sgd"),
                 default="both",
                 help="which same-solver pair(s) to choose and time")
  p.add_argument("--dry_run", "--dry-run", action="store_true",
                 help="tiny synthetic features, small grids, 2 rounds, no "
                      "load refusal: every code path in seconds, no figure")
  p.add_argument("--out", type=Path, default=None)
  cmp.add_arguments(p)
  args = p.parse_args(argv)
  if args.dry_run:
    args.rounds, args.allow_load = 2, True
    args.l2_grid, args.sgd_epochs, args.weight_decays = "1e-3,1e-2", "1,2", "1e-4,1e-3"
    args.max_iter, args.n_boot = 100, 200
  if args.out is None:
    args.out = DRY_RUN_OUT if args.dry_run else DEFAULT_OUT
  return args


PAIRS = {"lbfgs": ("ssljax_lbfgs", "sklearn_lbfgs"),
         "sgd": ("ssljax_sgd", "sklearn_sgd")}


def main(argv=None):
  args = parse_args(argv)
  import scipy  # pylint: disable=import-outside-toplevel
  import sklearn  # pylint: disable=import-outside-toplevel
  load = cmp.check_load(args.max_load, allow_load=args.allow_load)
  pairs = ["lbfgs", "sgd"] if args.compare == "both" else [args.compare]

  t0 = time.perf_counter()
  if args.dry_run:
    fit_x, fit_y, val_x, val_y, test_x, test_y, what, ev = synthetic_features()
  else:
    fit_x, fit_y, val_x, val_y, test_x, test_y, what, ev = load_features(args)
  if args.rows:
    fit_x, fit_y = fit_x[:args.rows], fit_y[:args.rows]
  fit_x, val_x, test_x = standardize(np.asarray(fit_x, np.float32).reshape(
      len(fit_x), -1), *(np.asarray(a, np.float32).reshape(len(a), -1)
                         for a in (val_x, test_x)))
  fit_y, val_y, test_y = (np.asarray(a, np.int64) for a in (fit_y, val_y, test_y))
  feature_seconds = time.perf_counter() - t0
  classes = int(max(fit_y.max(), val_y.max(), test_y.max())) + 1
  n, f = fit_x.shape
  d = dict(fit_x=fit_x, fit_y=fit_y, val_x=val_x, val_y=val_y,
           fit_x_j=jax.device_put(fit_x), fit_y_j=jax.device_put(
               fit_y.astype(np.int32)), classes=classes,
           lr=float(args.lr or ev.get("linear_lr", 0.5)),
           # as train_linear_classifier: at most the fit rows
           batch_size=min(int(args.batch_size or
                              ev.get("linear_batch_size", 1024)), n))
  print(f"{what}: fit {n} x {f}, validation {len(val_x)}, test {len(test_x)}, "
        f"{classes} classes ({feature_seconds:.0f} s)")

  print("choices on the validation split:")
  t0 = time.perf_counter()
  choices = choose(args, d)
  choice_seconds = time.perf_counter() - t0
  l2 = choices.get("lbfgs", {}).get("chosen_l2")
  epochs = choices.get("sgd", {}).get("chosen_epochs")
  wd = choices.get("sgd", {}).get("chosen_weight_decay")
  schedule = choices.get("sklearn_sgd", {}).get("chosen_schedule")
  if "lbfgs" in pairs:
    print(f"chosen: L-BFGS l2 {l2:g}")
  if "sgd" in pairs:
    print(f"chosen: SGD probe {epochs} epochs, weight decay {wd:g} (lr "
          f"{d['lr']:g}, batch {d['batch_size']}); scikit-learn SGD schedule "
          f"{schedule!r}")

  models = {}

  def sk_lbfgs(steps):
    for _ in range(steps):
      models["sklearn_lbfgs"] = sklearn_lbfgs(fit_x, fit_y, l2=l2, tol=args.tol,
                                              max_iter=args.max_iter)

  def jx_lbfgs(steps):
    for _ in range(steps):
      models["ssljax_lbfgs"] = jax.block_until_ready(fit_logistic_regression(
          d["fit_x_j"], d["fit_y_j"], num_classes=classes, l2=l2,
          max_iter=args.max_iter, tol=args.tol, grad_norm="inf",
          return_iterations=True))

  def sk_sgd(steps):
    for _ in range(steps):
      models["sklearn_sgd"] = sklearn_sgd(
          fit_x, fit_y, epochs=epochs, alpha=wd, schedule=schedule, lr=d["lr"],
          batch_size=d["batch_size"], n_jobs=args.sk_n_jobs, classes=classes)

  def jx_sgd(steps):
    for _ in range(steps):
      models["ssljax_sgd"] = jax.block_until_ready(train_linear_classifier(
          d["fit_x_j"], d["fit_y_j"], num_classes=classes, epochs=epochs,
          batch_size=d["batch_size"], lr=d["lr"], weight_decay=wd, seed=0))

  all_sides = {"ssljax_lbfgs": jx_lbfgs, "sklearn_lbfgs": sk_lbfgs,
               "ssljax_sgd": jx_sgd, "sklearn_sgd": sk_sgd}
  fns = {name: all_sides[name] for pair in pairs for name in PAIRS[pair]}

  print("first fits (ssljax after jax.clear_caches(): compilation included):")
  first = {}
  jax.clear_caches()     # once: the selection compiled the same functions
  for name, fn in fns.items():
    t = time.perf_counter()
    fn(1)
    first[name] = time.perf_counter() - t
    print(f"  {name:14s} {first[name]:8.2f} s")

  rounds = cmp.interleaved_rounds(fns, rounds=args.rounds, steps_per_round=1,
                                  warmup=0, order=args.order)
  cmp.finish_load(load)
  times = rounds.times
  kw = dict(confidence=args.confidence, n_boot=args.n_boot)
  summaries = {f"{a}_vs_{b}": cmp.ratio_summary(times[a], times[b], **kw)
               for a, b in (PAIRS[p] for p in pairs)}
  if len(pairs) == 2:       # context: different solvers and objectives
    summaries["ssljax_sgd_vs_sklearn_lbfgs"] = cmp.ratio_summary(
        times["ssljax_sgd"], times["sklearn_lbfgs"], **kw)

  # The final models: validation (again) and test, each read once, here.
  params, settings = {}, {}
  if "lbfgs" in pairs:
    sk_lb, (jx_lb, jx_count) = models["sklearn_lbfgs"], models["ssljax_lbfgs"]
    params.update(sklearn_lbfgs=sk_params(sk_lb), ssljax_lbfgs=jx_lb)
    settings["sklearn_lbfgs"] = dict(
        estimator="LogisticRegression", solver="lbfgs", C=1.0 / (l2 * n),
        l2=l2, tol=args.tol, max_iter=args.max_iter,
        dtype=str(sk_lb.coef_.dtype),
        stopping=("scipy L-BFGS-B: max|grad| <= tol (and ftol = 64 eps), "
                  "maxcor 10, maxls 50"),
        iterations=int(np.max(sk_lb.n_iter_)))
    settings["ssljax_lbfgs"] = dict(
        function="fit_logistic_regression", l2=l2, tol=args.tol,
        max_iter=args.max_iter, grad_norm="inf", dtype="float32",
        stopping="max|grad| < tol; optax.lbfgs, memory 10, zoom line search",
        iterations=int(jx_count))
  if "sgd" in pairs:
    params.update(sklearn_sgd=sk_params(models["sklearn_sgd"]),
                  ssljax_sgd=models["ssljax_sgd"])
    settings["sklearn_sgd"] = dict(
        estimator="SGDClassifier", loss="log_loss", penalty="l2", alpha=wd,
        epochs=epochs, schedule=schedule, n_jobs=args.sk_n_jobs,
        batch_size=1, momentum=0.0, multiclass="one-vs-rest",
        eta0_peak=(d["lr"] / (d["batch_size"] * (1 - MOMENTUM))
                   if schedule == "cosine" else None))
    settings["ssljax_sgd"] = dict(
        function="train_linear_classifier", epochs=epochs, weight_decay=wd,
        lr=d["lr"], batch_size=d["batch_size"], momentum=MOMENTUM,
        nesterov=True, schedule="cosine", multiclass="softmax")
  contestants = {}
  for name in fns:
    warm = float(np.median(times[name]))
    contestants[name] = dict(
        settings[name], first_fit_s=first[name], warm_median_s=warm,
        compile_s=first[name] - warm if name.startswith("ssljax") else None,
        validation_accuracy=accuracy(params[name], val_x, val_y),
        test_accuracy=accuracy(params[name], test_x, test_y))
  same_optimum = None
  if "lbfgs" in pairs:
    w_sk, w_jx = params["sklearn_lbfgs"]["w"], np.asarray(jx_lb["w"])
    same_optimum = {
        "weight_rel_diff": float(np.linalg.norm(w_jx - w_sk)
                                 / np.linalg.norm(w_sk)),
        "objective_sklearn": objective(w_sk, params["sklearn_lbfgs"]["b"],
                                       fit_x, fit_y, l2),
        "objective_ssljax": objective(w_jx, np.asarray(jx_lb["b"]), fit_x,
                                      fit_y, l2)}
  # Counting ssljax's compilation: scikit-learn's warm median over ssljax's
  # first fit (one fit each: no interval).
  with_compile = {f"{a}_vs_{b}": contestants[b]["warm_median_s"] / first[a]
                  for a, b in (PAIRS[p] for p in pairs)}

  print("\nfinal models (test read once each):")
  for name, row in contestants.items():
    extra = (f", {row['iterations']} iterations" if "iterations" in row else "")
    print(f"  {name:14s} warm {row['warm_median_s']:8.3f} s  first "
          f"{row['first_fit_s']:8.3f} s  validation "
          f"{100 * row['validation_accuracy']:6.2f}%  test "
          f"{100 * row['test_accuracy']:6.2f}%{extra}")
  if same_optimum:
    print(f"  same optimum: weights differ by "
          f"{same_optimum['weight_rel_diff']:.2e} (relative); objective "
          f"sklearn {same_optimum['objective_sklearn']:.6f}, ssljax "
          f"{same_optimum['objective_ssljax']:.6f}")
  for key, summ in summaries.items():
    a, b = key.split("_vs_")
    print("  " + cmp.format_summary(summ, a, b))
  print("  counting ssljax's compilation (one fit): " + ", ".join(
      f"{k} {v:.2f}x" for k, v in with_compile.items()))

  import jaxlib  # pylint: disable=import-outside-toplevel
  record = cmp.results_record(
      benchmark="probe_vs_sklearn", rounds=rounds, summaries=summaries,
      load=load, argv=(sys.argv if argv is None else
                       ["benchmarks/probe_vs_sklearn.py", *argv]),
      machine={"jax": jax.__version__, "jaxlib": jaxlib.__version__,
               "sklearn": sklearn.__version__, "scipy": scipy.__version__,
               "numpy": np.__version__, "devices": str(jax.devices()),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               # a persistent compilation cache would shorten compile_s
               "jax_compilation_cache_dir":
                   jax.config.jax_compilation_cache_dir or None},
      extra={"dry_run": bool(args.dry_run), "compare": pairs,
             "features": what, "feature_seconds": feature_seconds,
             "choice_seconds": choice_seconds,
             "splits": {"fit": int(n), "validation": int(len(val_x)),
                        "test": int(len(test_x)), "width": int(f),
                        "classes": classes},
             "choices": choices, "contestants": contestants,
             "same_optimum": same_optimum,
             "ratio_counting_compilation": with_compile,
             "direction": ("ratios are scikit-learn seconds / ssljax "
                           "seconds per round: above 1, ssljax is faster"),
             "differences": DIFFERENCES})
  cmp.write_record(args.out, record)
  return record


#: What the two sides of each comparison do differently (in the record).
DIFFERENCES = [
    "L-BFGS: the same objective and stopping test (max |grad| < tol, at most "
    "max_iter iterations); scipy's L-BFGS-B (float64 iterate, More-Thuente "
    "line search, maxls 50, also stops at a relative decrease below 64 eps) "
    "vs optax.lbfgs (float32, zoom line search); both keep 10 pairs",
    "SGD: scikit-learn updates after every example, without momentum, fits "
    "one binary logistic regression per class (one-vs-rest, n_jobs threads) "
    "and does not penalize the intercept; its schedule is chosen on "
    "validation among --sk_sgd_schedules. ssljax: mini-batches of B, "
    "Nesterov momentum 0.9, cosine decay, softmax, weight decay on W and b, "
    "the last N mod B examples of each shuffled epoch dropped",
    "features: the same standardized float32 arrays, numpy for scikit-learn, "
    "already on the device for ssljax",
]


if __name__ == "__main__":
  main()
