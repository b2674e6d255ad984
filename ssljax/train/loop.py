"""The pre-training loop: data -> sharded global batches -> one jitted step.

``pretrain(config, workdir)`` trains ``config.method`` on ``config.dataset``,
writes TensorBoard events and ``metrics.jsonl``, and saves Orbax checkpoints
every ``config.checkpoint_every`` steps and at the end. Each checkpoint carries
(Orbax custom metadata) the config, the data-pipeline position (the step:
batches are a pure function of ``(seed, step)``, see ``ssljax.data.batches``)
and the ``skipped_steps`` counter.

Resume. ``resume=True`` or ``"auto"`` continues from the latest good
checkpoint in ``workdir`` when its saved config (``config.json`` and the
checkpoint's copy) equals ``config`` in everything that changes the training
trajectory; it refuses with :class:`ConfigMismatchError`, listing the differing
keys, otherwise (keys in :data:`RESUME_IGNORED_KEYS`, e.g. ``log_every``, may
change). Data order (``start_step``) and augmentation keys (``fold_in(key,
step)``) make the resumed run bit-identical to an uninterrupted one on CPU, and
rows of ``metrics.jsonl`` after the restored step are dropped (the file is
rewritten atomically) so every logged step appears exactly once. A latest
checkpoint that cannot be read is reported (``CheckpointWarning`` naming step
and path), renamed ``<step>.corrupt`` and the previous good one is used.
``resume=False`` (the library default) refuses a ``workdir`` that holds
checkpoints; ``experiments/pretrain.py`` resumes automatically ("auto").
Each checkpoint also records the convolutions ``conv_impl`` resolved to
(:func:`conv_kernels`); a resume that resolves them otherwise (``"auto"``
with and without ``ssljax.cpu`` imported) warns with
:class:`KernelMismatchWarning`: same function, not bit-identical.

Pre-emption. While ``pretrain`` runs (in the main thread) SIGTERM and SIGINT
are caught: the loop finishes the current step, saves a checkpoint at that
step, flushes ``metrics.jsonl``/TensorBoard, restores the previous signal
handlers and raises :class:`Preempted` (``experiments/pretrain.py`` turns it
into exit status 75). A second SIGINT (Ctrl-C) interrupts at once.

Numerical faults. The jitted step also returns a 3-int ``guard`` (skipped-step
count, first bad step, what was non-finite) computed on device from the loss,
the other metrics, the new parameters and the rest of the new state; no host
sync is added per step. The host reads it with the metrics at log steps and
before every checkpoint save. ``config.nonfinite``:

* ``"stop"`` (default): raise :class:`NonFiniteError` naming the first bad step
  and quantity; nothing after the fault is saved, so the last checkpoint is the
  last good state.
* ``"skip"``: a step with a non-finite value keeps the previous state (only
  ``step`` advances; a select inside the jitted step) and ``skipped_steps``
  (cumulative, kept across resumes) is logged.

A monitor (``monitor=``, e.g. the weighted-kNN accuracy of
``ssljax.eval.monitor.KNNMonitor`` that ``experiments/pretrain.py`` passes
when ``config.monitor.every > 0``) is called every ``every`` steps and at the
last step; its scalars (``knn_acc``) are logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ssljax import data as data_lib
from ssljax.models.conv import resolve_conv_impl
from ssljax.parallel import check_batch_divides, make_data_mesh, replicated_sharding
from ssljax.train.build import NONFINITE_MODES, RunConfig
from ssljax.train.checkpoint import (CheckpointError, Checkpointer,
                                     CheckpointSaveError, CheckpointWarning)
from ssljax.train.lock import workdir_lock
from ssljax.train.logging import MetricWriter
from ssljax.train.start import (CONFIG_FILE, checkpoint_dir, init_state,
                                load_dataset, save_config)
from ssljax.train.validate import checked_run, validate_config, validate_images

# Top-level config keys that do not change the training trajectory: they may
# differ between a run and its resumption.
RESUME_IGNORED_KEYS = ("log_every", "checkpoint_every", "keep_checkpoints",
                       "data_dir", "monitor", "eval", "nonfinite")

_log = logging.getLogger(__name__)


class Preempted(Exception):
  """``pretrain`` stopped on SIGTERM/SIGINT after saving a checkpoint.

  Attributes: ``step`` (the last step taken and saved), ``workdir``,
  ``signal_name``.
  """

  def __init__(self, step: int, workdir: str, signal_name: str):
    self.step, self.workdir, self.signal_name = int(step), workdir, signal_name
    super().__init__(
        f"{signal_name} received: stopped after step {step}, checkpoint saved "
        f"at step {step} in {os.path.join(workdir, 'checkpoints')}. Run the "
        "same command (same config and --workdir) to resume.")


class NonFiniteError(FloatingPointError):
  """A step produced a non-finite loss, metric, parameter or state value.

  Attributes: ``step`` (the first bad step), ``metric`` (what was non-finite),
  ``last_good_checkpoint`` (a step, or None).
  """

  def __init__(self, step: int, metric: str, detected_at: int,
               last_good_checkpoint: int | None, checkpoint_dir: str):
    self.step, self.metric = int(step), metric
    self.last_good_checkpoint = last_good_checkpoint
    where = (f"the last good checkpoint is step {last_good_checkpoint} in "
             f"{checkpoint_dir}" if last_good_checkpoint is not None else
             "no checkpoint was saved")
    super().__init__(
        f"non-finite {metric} at step {step} (detected at step {detected_at}); "
        f"nothing after the fault was saved: {where}. Lower the learning rate "
        "or check the data, or set config.nonfinite='skip' to discard such "
        "steps, then run again with the same --workdir to resume.")


_STORAGE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class KernelMismatchWarning(UserWarning):
  """A run resumed with other convolution kernels than it was saved with
  (``conv_impl="auto"`` resolved otherwise, e.g. ``ssljax.cpu`` imported by
  one process and not by the other): the same function, but not
  bit-identical to an uninterrupted run."""


def conv_kernels(config) -> str | None:
  """The convolution implementation ``config.encoder.conv_impl`` (default
  ``"xla"``) resolves to in this process (:func:`ssljax.models.conv.
  resolve_conv_impl`); None for a config without an ``encoder`` section or an
  unknown name (the config checks report that)."""
  encoder = config.get("encoder") if hasattr(config, "get") else None
  if encoder is None or not hasattr(encoder, "get"):
    return None
  try:
    return resolve_conv_impl(encoder.get("conv_impl", "xla"))
  except ValueError:
    return None


class StorageError(OSError):
  """Writing the run's files (metrics, config) failed, e.g. on a full disk;
  the message names the file, the cause and the last checkpoint, which is
  intact."""


class ConfigMismatchError(ValueError):
  """The config differs from the saved run in ``workdir`` (``differences``:
  ``[(key, saved, new), ...]``)."""

  def __init__(self, message: str, differences: list[tuple[str, Any, Any]]):
    self.differences = differences
    super().__init__(message)


def config_to_dict(config) -> dict:
  """``config`` as plain JSON data (tuples become lists), as in config.json."""
  if hasattr(config, "to_json"):
    return json.loads(config.to_json())
  return json.loads(json.dumps(config))


_ABSENT = "<absent>"


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(saved: dict, new: dict, *,
                       ignore=RESUME_IGNORED_KEYS) -> list[tuple[str, Any, Any]]:
  """``[(dotted_key, saved_value, new_value)]`` for keys whose values differ,
  leaving out keys under the top-level names in ``ignore``."""
  a, b = _flatten(saved), _flatten(new)
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key.split(".")[0] in ignore:
      continue
    va, vb = a.get(key, _ABSENT), b.get(key, _ABSENT)
    if va != vb:
      diffs.append((key, va, vb))
  return diffs


def _check_same_run(saved: dict, config, workdir: str, source: str) -> None:
  diffs = config_differences(saved, config_to_dict(config))
  if not diffs:
    return
  listing = "\n".join(f"  {k}: saved {json.dumps(a)}, now {json.dumps(b)}"
                      for k, a, b in diffs)
  overrides = " ".join(f"--config.{k}={json.dumps(a, separators=(',', ':'))}"
                       for k, a, b in diffs if a != _ABSENT)
  raise ConfigMismatchError(
      f"{workdir} holds checkpoints of a run whose config ({source}) differs "
      f"from this one in:\n{listing}\nResuming would not continue the same "
      "run, so nothing was changed. Either start a new run with another "
      f"--workdir, or resume with the saved config"
      + (f" (e.g. {overrides})" if overrides else "") + ". Keys that may "
      f"change on resume: {', '.join(RESUME_IGNORED_KEYS)}.", diffs)


def data_position(config, dataset, step: int) -> dict:
  """Where the data pipeline stands after ``step`` global steps: the inputs of
  ``ssljax.data.batches`` and the (epoch, step in epoch) they imply. (The
  checkpoint metadata adds the data's :func:`ssljax.data.fingerprint`.)"""
  n = len(dataset)
  spe = data_lib.steps_per_epoch(n, config.batch_size)
  epoch, in_epoch = divmod(int(step), max(spe, 1))
  return {"dataset": getattr(dataset, "name", None) or config.dataset,
          "num_examples": n, "batch_size": int(config.batch_size),
          "seed": int(config.seed), "steps_per_epoch": spe, "step": int(step),
          "epoch": epoch, "step_in_epoch": in_epoch}


def nonfinite_mode(config) -> str:
  return RunConfig.from_config(config).nonfinite


# ---------------------------------------------------------------------------
# Non-finite guard.


def _fault_names(metric_keys) -> list[str]:
  """What each ``guard[2]`` code names: the metrics ("loss" first), then the
  new parameters, then the rest of the new state."""
  keys = sorted(metric_keys)
  if "loss" in keys:
    keys.remove("loss")
    keys.insert(0, "loss")
  return keys + ["params", "state (BN statistics, optimizer or method state)"]


def _any_nonfinite(tree) -> jax.Array:
  flags = [~jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
           if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return jnp.any(jnp.stack(flags)) if flags else jnp.array(False)


def _replace(obj, **changes):
  return (obj.replace(**changes) if hasattr(obj, "replace")
          else dataclasses.replace(obj, **changes))


def guarded_train_step(train_step: Callable, nonfinite: str = "stop") -> Callable:
  """``step(state, images, key, guard) -> (state, metrics, guard)`` around a
  method's ``train_step``; jit it with ``donate_argnums=0``.

  ``guard`` is int32 ``[3]``: (steps with a non-finite value so far, the first
  such step or -1, what was non-finite there as an index into
  ``_fault_names(metrics)`` or -1). With ``nonfinite="skip"`` a bad step
  returns the input state with only ``step`` advanced (the select needs the old
  and new state at once: in that mode donation saves less memory).
  """
  if nonfinite not in NONFINITE_MODES:
    raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}; got "
                     f"{nonfinite!r}.")

  def step(state, images, key, guard):
    new, metrics = train_step(state, images, key)
    params = getattr(new, "params", None)
    rest = _replace(new, params=None) if params is not None else new
    flags = [_any_nonfinite(metrics[k]) for k in _fault_names(metrics)[:-2]]
    flags += [_any_nonfinite(params), _any_nonfinite(rest)]
    flags = jnp.stack(flags)
    bad = jnp.any(flags)
    if nonfinite == "skip":
      kept = jax.tree.map(lambda n, o: jnp.where(bad, o, n), new, state)
      new = _replace(kept, step=new.step)
    code = jnp.where(bad, jnp.argmax(flags), -1).astype(jnp.int32)
    first = (guard[1] < 0) & bad
    this_step = (state.step + 1).astype(jnp.int32)
    guard = jnp.stack([guard[0] + bad.astype(jnp.int32),
                       jnp.where(first, this_step, guard[1]),
                       jnp.where(first, code, guard[2])])
    return new, metrics, guard

  return step


# ---------------------------------------------------------------------------
# Signals.


class StopRequest:
  """Set by :func:`stop_on_signals`' handler; ``signal_name`` once requested."""

  def __init__(self):
    self.signal_name: str | None = None

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def handler(self, signum, frame):  # pylint: disable=unused-argument
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.signal_name = signal.Signals(signum).name
    sys.stderr.write(f"\n{self.signal_name} received: finishing this step, "
                     "then saving a checkpoint and stopping (Ctrl-C again to "
                     "stop at once).\n")
    sys.stderr.flush()


@contextlib.contextmanager
def stop_on_signals(enabled: bool = True,
                    signals=(signal.SIGTERM, signal.SIGINT)) -> Iterator[StopRequest]:
  """Catch ``signals`` into a :class:`StopRequest` for the ``with`` body, then
  restore the previous handlers. Outside the main thread (where Python cannot
  set handlers) or with ``enabled=False`` nothing is installed."""
  request = StopRequest()
  if not enabled or threading.current_thread() is not threading.main_thread():
    yield request
    return
  previous = {}
  try:
    for s in signals:
      previous[s] = signal.signal(s, request.handler)
    yield request
  finally:
    for s, h in previous.items():
      signal.signal(s, h if h is not None else signal.SIG_DFL)


def _any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def _say(message: str) -> None:
  _log.info(message)
  if jax.process_index() == 0:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The loop.


def pretrain(config, workdir: str, *, resume: bool | str = False,
             stop_at: int | None = None, dataset=None, progress: bool = True,
             monitor=None, handle_signals: bool = True,
             on_event: Callable[[str, int], None] | None = None):
  """Pre-train; returns ``(method, state)``.

  Args:
    config: an ml_collections config (see ``experiments/configs``).
      ``config.nonfinite``: ``"stop"`` (default) or ``"skip"`` (module doc).
    workdir: output folder (config.json, checkpoints/, tb/, metrics.jsonl).
    resume: ``False``: a ``workdir`` that already holds checkpoints is refused
      (``FileExistsError``), so nothing saved is overwritten. ``True`` or
      ``"auto"``: continue from the latest good checkpoint when there is one
      and the saved config matches (else :class:`ConfigMismatchError`); start
      at step 0 when there is none. (``True`` also resumes a workdir whose
      config cannot be checked, with a warning; ``"auto"`` refuses it.)
    stop_at: stop after this global step, saving a checkpoint there
      (simulates a pre-empted run).
    dataset: an ``ArrayDataset`` to use instead of ``config.dataset``.
    progress: show a progress bar.
    monitor: ``monitor(method, state) -> dict`` of scalars, called when
      ``monitor.due(step, last_step)``; or a factory ``monitor(train_dataset,
      mesh)`` returning one (or None), called once the data is loaded
      (``experiments/pretrain.py`` passes the kNN monitor of
      ``config.monitor`` this way).
    handle_signals: catch SIGTERM/SIGINT (main thread only): finish the step,
      save, flush and raise :class:`Preempted`.
    on_event: ``on_event(name, step)``, called as the run enters each phase:
      ``"locked"`` (the workdir lock is held), ``"restore"`` (before reading a
      checkpoint to resume from), ``"start"`` (the step training starts
      from), ``"compile"`` (before the first step, which compiles), ``"step"``
      (after each step), ``"save"`` (before each checkpoint save) and
      ``"done"``. For progress displays and for tests that kill a run in a
      given phase (tests/test_kill.py).

  Raises:
    Preempted: after SIGTERM/SIGINT, once the checkpoint is saved.
    NonFiniteError: ``nonfinite="stop"`` and a step went non-finite.
    ConfigMismatchError: resuming with a config that differs from the run's.
    CheckpointError: no checkpoint in ``workdir`` can be restored.
    CheckpointSaveError: a save failed (e.g. disk full); earlier checkpoints
      are intact.
    WorkdirLockedError: another live process trains in ``workdir``.
    StorageError: metrics or config could not be written (e.g. disk full).
  """
  if resume not in (False, True, "auto"):
    raise ValueError(f"resume must be False, True or 'auto'; got {resume!r}.")
  # Every config problem at once, before any data is read or code compiled
  # (the train step is traced on the real data's shapes in _pretrain).
  validate_config(config, dataset=dataset, check_shapes=False)
  nonfinite = nonfinite_mode(config)
  mesh = make_data_mesh()
  check_batch_divides(config.batch_size, mesh)
  event = on_event or (lambda name, step: None)
  with workdir_lock(workdir, enabled=jax.process_index() == 0) as stale:
    if stale:
      _say(f"took over the lock of {workdir} from pid {stale.get('pid')} on "
           f"{stale.get('host')}, which is no longer running.")
    event("locked", -1)
    return _locked_pretrain(
        config, workdir, resume=resume, nonfinite=nonfinite, mesh=mesh,
        stop_at=stop_at, dataset=dataset, progress=progress, monitor=monitor,
        handle_signals=handle_signals, event=event)


def _locked_pretrain(config, workdir, *, resume, nonfinite, mesh, **kwargs):
  """``pretrain`` once the workdir is locked: the resume checks, the run, and
  a checkpointer closed without hiding an error already in flight."""
  ckpt = Checkpointer(checkpoint_dir(workdir),
                      max_to_keep=config.get("keep_checkpoints", 3),
                      every=config.checkpoint_every)
  in_flight = None
  try:
    latest = ckpt.latest_step()
    if latest is not None:
      if resume is False:
        raise FileExistsError(
            f"{workdir} already holds checkpoints (latest step {latest}): pass "
            "--resume (or resume=True/'auto') to continue that run, or choose "
            "another --workdir. Nothing was overwritten.")
      config_path = os.path.join(workdir, CONFIG_FILE)
      if os.path.exists(config_path):
        with open(config_path) as f:
          _check_same_run(json.load(f), config, workdir, config_path)
      elif resume == "auto":
        raise ConfigMismatchError(
            f"{workdir} holds checkpoints but no {CONFIG_FILE}, so this config "
            "cannot be checked against the run: pass --resume to continue it "
            "anyway, or choose another --workdir.", [])
      else:
        warnings.warn(f"{config_path} is missing: resuming without checking "
                      "the config.", CheckpointWarning, stacklevel=2)
    return _pretrain(config, workdir, ckpt, latest, nonfinite=nonfinite,
                     mesh=mesh, **kwargs)
  except CheckpointSaveError as e:
    in_flight = e
    raise
  except OSError as e:
    in_flight = e
    if isinstance(e, StorageError) or e.errno not in _STORAGE_FULL:
      raise
    last = ckpt.complete_steps()
    where = e.filename or f"the run's files in {workdir}"
    raise StorageError(
        e.errno, f"writing {where} failed ({e.strerror or e}); "
        + (f"the checkpoint at step {last[-1]} is intact" if last else
           "no checkpoint was saved yet")
        + ". Fix the cause (free some space if the disk is full), then run "
        "the same command to resume.") from e
  except BaseException as e:
    in_flight = e
    raise
  finally:
    try:
      ckpt.close()
    except CheckpointSaveError as e:
      if in_flight is None:
        raise
      # Never hide the error already on its way (a pre-emption, a non-finite
      # loss, a failed write): report the save's failure beside it.
      _say(f"also: {e}")


def _pretrain(config, workdir, ckpt, latest, *, nonfinite, mesh, stop_at,
              dataset, progress, monitor, handle_signals, event):
  ds = dataset if dataset is not None else load_dataset(config)
  if hasattr(ds, "images") and ds.images.ndim == 4:
    validate_images(ds.images[:1], name=f"dataset {config.dataset!r} images")
  # Every check again, now with the train step traced on this data's batches.
  method, spec = checked_run(config, ds)
  input_shape, steps = spec.input_shape, spec.num_steps
  proc0 = jax.process_index() == 0
  if monitor is not None and not hasattr(monitor, "due"):
    monitor = monitor(ds, mesh)      # a factory

  state, data_key = init_state(method, config, input_shape, mesh)
  start, skipped = 0, 0
  data_print = data_lib.fingerprint(ds)
  kernels = conv_kernels(config)
  if latest is not None:
    def verify(step, restored, meta):
      if int(restored.step) != step:
        raise CheckpointError(f"its state is at step {int(restored.step)}, "
                              f"not {step}")
      if not meta:       # saved by an older ssljax: nothing more to check
        return
      if int(meta.get("step", step)) != step:
        raise CheckpointError(f"its metadata says step {meta['step']}")
      if "data" in meta:
        saved, now = meta["data"], data_position(config, ds, step)
        diffs = [(f"data.{k}", saved.get(k), now[k])
                 for k in ("dataset", "num_examples", "batch_size", "seed")
                 if saved.get(k) != now[k]]
        if diffs:
          raise ConfigMismatchError(
              f"the data pipeline differs from the run in {workdir}: "
              + ", ".join(f"{k} saved {a!r}, now {b!r}" for k, a, b in diffs)
              + ". Pass the same dataset, or choose another --workdir.", diffs)
        if any(saved.get(k) != now[k] for k in now):
          raise CheckpointError(f"its data position {saved} does not match "
                                f"step {step} ({now})")
      saved_print = meta.get("data_fingerprint")
      if saved_print and data_print and saved_print != data_print:
        show = lambda p: ", ".join(f"{k}={v}" for k, v in p.items())
        raise ConfigMismatchError(
            f"the training data differs from the data the run in {workdir} "
            f"was trained on (same name, other content):\n  saved: "
            f"{show(saved_print)}\n  now:   {show(data_print)}\nResuming "
            "would not continue the same run, so nothing was changed. Point "
            "--config.data_dir (or data_source) back at the run's data, or "
            "start a new run with another --workdir.",
            [("data_fingerprint", saved_print, data_print)])
      if "config" in meta:
        _check_same_run(meta["config"], config, workdir,
                        f"saved with the checkpoint at step {step}")
      saved_kernels = meta.get("conv_kernels")
      if saved_kernels and kernels and saved_kernels != kernels:
        warnings.warn(
            f"the run in {workdir} was saved with the {saved_kernels!r} "
            f"convolutions and this process runs {kernels!r} (conv_impl "
            f"{config.encoder.get('conv_impl', 'xla')!r}): the resumed run "
            f"computes the same function but is not bit-identical to an "
            f"uninterrupted one. To match, resume the way it was started "
            f"(experiments/pretrain.py imports ssljax.cpu; in Python, "
            f"`import ssljax.cpu.conv` before pretrain, or not, as the run "
            f"did), or name conv_impl explicitly.",
            KernelMismatchWarning, stacklevel=2)

    event("restore", latest)
    restored = ckpt.restore_last_good(state, verify=verify)
    if restored.bad_steps:
      moved = ckpt.set_aside(restored.bad_steps)
      _say(f"unreadable checkpoint(s) at step(s) {restored.bad_steps} moved "
           f"aside to {moved}; resuming from the previous good one.")
    state, start = restored.state, restored.step
    skipped = int(restored.metadata.get("skipped_steps", 0))
    _say(f"resuming {workdir} from step {start} (checkpoint "
         f"{ckpt.step_path(start)}).")
  event("start", start)
  if proc0:  # after the checks: a refused resume leaves config.json as it was
    save_config(config, workdir)
  for path in ckpt.unfinished():
    warnings.warn(f"unfinished checkpoint save {path} ignored (left on disk).",
                  CheckpointWarning, stacklevel=3)
  end = steps if stop_at is None else min(steps, stop_at)

  takes_labels = method.takes_labels
  step_fn = jax.jit(guarded_train_step(method.train_step, nonfinite),
                    donate_argnums=0)
  guard = jax.device_put(np.array([skipped, -1, -1], np.int32),
                         replicated_sharding(mesh))
  writer = MetricWriter(workdir, enabled=proc0, start_step=start)
  host_batches = data_lib.prefetch(
      data_lib.batches(ds, batch_size=config.batch_size, seed=config.seed,
                       start_step=start), size=2)
  batches = data_lib.device_prefetch(host_batches, mesh, size=2)
  bar = tqdm(total=steps, initial=start, disable=not progress or not proc0,
             unit="step", dynamic_ncols=True)
  names = None
  last_saved, seen_skipped = start, skipped

  def check(g, step):
    """Raise NonFiniteError in stop mode; report new skips in skip mode."""
    nonlocal seen_skipped
    count, first_step, code = (int(v) for v in g)
    if nonfinite == "stop" and first_step >= 0:
      good = [s for s in ckpt.all_steps() if s < first_step]
      raise NonFiniteError(first_step, names[code], step,
                           good[-1] if good else None, ckpt.directory)
    if nonfinite == "skip" and count > seen_skipped:
      _log.warning("step %d: %d step(s) with a non-finite value skipped so far "
                   "(first at step %d: %s).", step, count, first_step,
                   names[code])
      seen_skipped = count

  def save(step, g):
    nonlocal last_saved
    check(g, step)
    if step == last_saved:
      return
    event("save", step)
    ckpt.save(step, state, force=True,
              metadata={"step": step, "data": data_position(config, ds, step),
                        "data_fingerprint": data_print,
                        "skipped_steps": int(g[0]), "nonfinite": nonfinite,
                        "conv_kernels": kernels,
                        "config": config_to_dict(config)})
    last_saved = step

  t0, seen, step = time.perf_counter(), 0, start
  in_flight = None
  try:
    with stop_on_signals(handle_signals) as stop, jax.set_mesh(mesh):
      while step < end:
        batch = next(batches)
        # A method with an online probe (``takes_labels``) gets the labels too.
        inputs = batch if takes_labels else batch["image"]
        if names is None:
          event("compile", step)
        state, metrics, guard = step_fn(state, inputs, data_key, guard)
        if names is None:
          names = _fault_names(metrics)
        step += 1
        event("step", step)
        seen += config.batch_size
        bar.update(1)
        extra = {}
        if monitor is not None and monitor.due(step, steps):
          jax.block_until_ready(state)          # the step counts in images/s,
          t_mon = time.perf_counter()
          extra = monitor(method, state)
          t0 += time.perf_counter() - t_mon     # the monitor does not
        g = None
        log_now = step % config.log_every == 0 or step == steps
        if log_now:
          metrics, g = jax.device_get((metrics, guard))
          dt = time.perf_counter() - t0
          metrics["images_per_sec"] = seen / max(dt, 1e-9)
          if nonfinite == "skip":
            metrics["skipped_steps"] = int(g[0])
          writer.write(step, {**metrics, **extra})
          bar.set_postfix(loss=f"{float(metrics['loss']):.3f}",
                          img_s=f"{metrics['images_per_sec']:.0f}")
          t0, seen = time.perf_counter(), 0
          check(g, step)
        elif extra:
          writer.write(step, extra)
        # Every process must agree to stop at the same step: with several
        # processes the request is shared at log steps only (one all-gather).
        preempt = (stop.requested if jax.process_count() == 1 else
                   log_now and _any_process(stop.requested))
        if step % config.checkpoint_every == 0 or step == end or preempt:
          save(step, jax.device_get(guard) if g is None else g)
        if preempt:
          writer.flush()
          raise Preempted(step, workdir,
                          stop.signal_name or "a stop request (other process)")
  except BaseException as e:
    in_flight = e
    raise
  finally:
    bar.close()
    if hasattr(host_batches, "close"):
      host_batches.close()
    try:
      writer.close()
    except OSError as e:
      if in_flight is None:
        raise
      _say(f"also: flushing metrics.jsonl / TensorBoard failed ({e}).")
  event("done", step)
  return method, state
