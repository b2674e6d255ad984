"""A finished (or interrupted) pre-training run, restored for evaluation.

``restore(workdir)`` reads what ``experiments/pretrain.py`` left in its
workdir (``config.json``, ``checkpoints/``), rebuilds the method, reloads the
train and test splits and restores a checkpoint::

    with ssljax.run.restore("workdirs/simclr_fmnist") as run:
      feats = run.encode(run.test.images)                 # [N, F] numpy
      base = run.encode(run.test.images, state=run.random_state)
      ssljax.eval.protocol.evaluate_run(run)

Layering: this module sits above :mod:`ssljax.train` (it uses the method
builder, the checkpointer and :mod:`ssljax.train.start`) and below
:mod:`ssljax.eval`, which never imports it: evaluation functions take the
:class:`RestoredRun` (or its :meth:`RestoredRun.encode`) from their caller.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ssljax import data as data_lib
from ssljax.data import ArrayDataset
from ssljax.parallel import make_data_mesh, map_batches
from ssljax.train.build import build_method
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.start import (checkpoint_dir, init_state, load_config,
                                load_dataset, validation_fraction)

__all__ = ["RestoredRun", "init_state", "load_config", "load_dataset",
           "restore"]


@dataclasses.dataclass
class RestoredRun:
  """A restored run: what evaluation needs, and a restore-and-encode function.

  Attributes:
    workdir: the run's folder.
    config: its saved config (``config.json``).
    method: the method built from it.
    train, test: its dataset's train and test splits (``train`` without the
      validation split, which the run never trained on).
    validation: the held-out validation split (``ssljax.data.splits``), or
      ``None`` when the run holds none out (``validation_fraction=0``, or a
      dataset with its own splits).
    mesh: the device mesh the states are replicated over.
    state: the restored checkpoint's state.
    random_state: the step-0 state of ``config.seed`` (the random-init
      baseline, and the restore target of every checkpoint).
    step: ``state``'s checkpoint step.
    checkpointer: the open checkpointer of ``workdir/checkpoints``
      (:meth:`close` closes it).
  """

  workdir: str
  config: Any
  method: Any
  train: ArrayDataset
  test: ArrayDataset
  mesh: Any
  state: Any
  random_state: Any
  step: int
  checkpointer: Checkpointer
  validation: ArrayDataset | None = None

  @staticmethod
  def variables(state) -> dict:
    """``{"params", "batch_stats"}`` of a state (what ``method.encode``
    takes)."""
    return {"params": state.params, "batch_stats": state.batch_stats}

  def encode(self, images: np.ndarray, *, state=None, batch_size: int | None = None,
             desc: str = "features", progress: bool = False) -> np.ndarray:
    """Frozen features ``[N, F]`` of uint8 ``images [N, H, W, C]``.

    ``state`` defaults to the restored one (``random_state`` gives the
    random-init baseline; :meth:`state_at` another checkpoint); batches of
    ``batch_size`` (default ``config.eval.feature_batch_size``) are sharded
    over the mesh.
    """
    state = self.state if state is None else state
    if batch_size is None:
      batch_size = int(self.config.get("eval", {}).get("feature_batch_size", 1000))
    return map_batches(self.method.encode, self.variables(state), images,
                       batch_size=batch_size, mesh=self.mesh, desc=desc,
                       progress=progress)

  def checkpoint_steps(self) -> list[int]:
    """Every saved checkpoint step, ascending."""
    return list(self.checkpointer.all_steps())

  def checkpoint_path(self, step: int) -> str:
    """The folder of checkpoint ``step``."""
    return self.checkpointer.step_path(step)

  def state_at(self, step: int):
    """The state of checkpoint ``step`` (restored into ``random_state``'s
    structure and sharding)."""
    return self.checkpointer.restore(self.random_state, step)

  def close(self) -> None:
    self.checkpointer.close()

  def __enter__(self) -> "RestoredRun":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def restore(workdir: str, step: int | None = None, *, mesh=None) -> RestoredRun:
  """The run in ``workdir`` at checkpoint ``step`` (default: the latest).

  Rebuilds ``config.method`` for the train split, initializes its step-0 state
  at ``config.seed`` (replicated over ``mesh``, default all devices) and
  restores the checkpoint into it. Close the result (or use it in a ``with``
  block) to release the checkpointer.
  """
  config = load_config(workdir)
  train, test = load_dataset(config, "train"), load_dataset(config, "test")
  validation = (load_dataset(config, "validation")
                if validation_fraction(config) and config.dataset not in
                data_lib.DATA_OPTIONS else None)
  method, _ = build_method(config, train)
  mesh = mesh or make_data_mesh()
  random_state, _ = init_state(
      method, config,
      getattr(train, "image_shape", None) or train.input_shape, mesh)
  ckpt = Checkpointer(checkpoint_dir(workdir))
  try:
    state = ckpt.restore(random_state, step)
  except BaseException:
    ckpt.close()
    raise
  return RestoredRun(workdir=workdir, config=config, method=method, train=train,
                     test=test, mesh=mesh, state=state, random_state=random_state,
                     step=int(state.step), checkpointer=ckpt,
                     validation=validation)
