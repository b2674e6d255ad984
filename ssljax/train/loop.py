"""The pre-training loop: data -> sharded global batches -> one jitted step.

``pretrain(config, workdir)`` trains ``config.method`` on ``config.dataset``,
writes TensorBoard events and ``metrics.jsonl``, saves Orbax checkpoints every
``config.checkpoint_every`` steps and at the end, and with ``resume=True``
continues from the latest checkpoint: data order (``start_step``) and
augmentation keys (``fold_in(key, step)``) make the resumed run reach the same
parameters as an uninterrupted one.

With ``config.monitor.every > 0`` a weighted-kNN accuracy of the frozen encoder
on a small labelled subset (``ssljax.eval.monitor.KNNMonitor``) is logged as
``knn_acc`` every ``every`` steps and at the last step.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from ssljax import data as data_lib
from ssljax.parallel import check_batch_divides, make_data_mesh, replicated_sharding
from ssljax.train.build import build_method
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import MetricWriter

CONFIG_FILE = "config.json"


def load_dataset(config, split: str = "train"):
  return data_lib.load(config.dataset, split, data_dir=config.get("data_dir") or None,
                       source=config.get("data_source", "auto"))


def save_config(config, workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json(indent=2))


def load_config(workdir: str):
  import ml_collections
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} the --workdir of a "
                            "pretrain.py run?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def init_state(method, config, image_shape, mesh):
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  state = method.init(init_key, image_shape)
  return jax.device_put(state, replicated_sharding(mesh)), data_key


def make_monitor(config, train, *, mesh=None, test=None):
  """The kNN monitor of ``config.monitor`` (``None`` when it is off).

  Bank images come from ``train``; queries from ``test`` (held-out images,
  e.g. the test split), or when ``test`` is None from other images of
  ``train``.
  """
  mon = config.get("monitor")
  if not mon or not mon.get("every"):
    return None
  # The monitor is evaluation code (ssljax.eval sits above ssljax.train); it is
  # imported here, lazily, so that a config alone turns it on for any method.
  from ssljax.eval.monitor import KNNMonitor  # pylint: disable=import-outside-toplevel
  return KNNMonitor.from_config(config, train, test, mesh=mesh)


def pretrain(config, workdir: str, *, resume: bool = False,
             stop_at: int | None = None, dataset=None, progress: bool = True,
             monitor=None):
  """Pre-train; returns ``(method, state)``.

  Args:
    config: an ml_collections config (see ``experiments/configs``).
    workdir: output folder (config.json, checkpoints/, tb/, metrics.jsonl).
    resume: continue from the latest checkpoint in ``workdir``. Without it a
      ``workdir`` that already holds checkpoints is refused, so nothing saved
      is overwritten.
    stop_at: stop after this global step (simulates a pre-empted run).
    dataset: an ``ArrayDataset`` to use instead of ``config.dataset``.
    monitor: ``monitor(method, state) -> dict`` of scalars, called when
      ``monitor.due(step, last_step)``; default :func:`make_monitor` (from
      ``config.monitor``; with ``dataset`` given, its queries are other images
      of ``dataset``).
  """
  mesh = make_data_mesh()
  check_batch_divides(config.batch_size, mesh)
  ds = dataset if dataset is not None else load_dataset(config)
  method, steps = build_method(config, len(ds))
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      max_to_keep=config.get("keep_checkpoints", 3),
                      every=config.checkpoint_every)
  if ckpt.latest_step() is not None and not resume:
    raise FileExistsError(
        f"{workdir} already holds checkpoints (latest step "
        f"{ckpt.latest_step()}): pass --resume to continue that run, or choose "
        "another --workdir. Nothing was overwritten.")
  if jax.process_index() == 0:
    save_config(config, workdir)
  if monitor is None and config.get("monitor") and config.monitor.get("every"):
    monitor = make_monitor(config, ds, mesh=mesh,
                           test=None if dataset is not None
                           else load_dataset(config, "test"))

  state, data_key = init_state(method, config, ds.image_shape, mesh)
  if resume and ckpt.latest_step() is not None:
    state = ckpt.restore(state)
  start = int(state.step)
  end = steps if stop_at is None else min(steps, stop_at)

  step_fn = jax.jit(method.train_step, donate_argnums=0)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  host_batches = data_lib.prefetch(
      data_lib.batches(ds, batch_size=config.batch_size, seed=config.seed,
                       start_step=start), size=2)
  batches = data_lib.device_prefetch(host_batches, mesh, size=2)
  bar = tqdm(total=steps, initial=start, disable=not progress or jax.process_index() != 0,
             unit="step", dynamic_ncols=True)
  t0, seen, step = time.perf_counter(), 0, start
  try:
    with jax.set_mesh(mesh):
      while step < end:
        batch = next(batches)
        state, metrics = step_fn(state, batch["image"], data_key)
        step += 1
        seen += config.batch_size
        bar.update(1)
        extra = {}
        if monitor is not None and monitor.due(step, steps):
          jax.block_until_ready(state)          # the step counts in images/s,
          t_mon = time.perf_counter()
          extra = monitor(method, state)
          t0 += time.perf_counter() - t_mon     # the monitor does not
        if step % config.log_every == 0 or step == end:
          metrics = jax.device_get(metrics)
          dt = time.perf_counter() - t0
          metrics["images_per_sec"] = seen / max(dt, 1e-9)
          writer.write(step, {**metrics, **extra})
          bar.set_postfix(loss=f"{float(metrics['loss']):.3f}",
                          img_s=f"{metrics['images_per_sec']:.0f}")
          t0, seen = time.perf_counter(), 0
        elif extra:
          writer.write(step, extra)
        if step % config.checkpoint_every == 0 or step == steps:
          ckpt.save(step, state, force=True)
  finally:
    bar.close()
    writer.close()
    if hasattr(host_batches, "close"):
      host_batches.close()
    ckpt.close()
  return method, state
