"""What a run starts from: its workdir files, its dataset, its step-0 state.

Shared by the training loop (:mod:`ssljax.train.loop`, which writes a run) and
:mod:`ssljax.run` (which restores one for evaluation), so both read a workdir
the same way:

* ``workdir/config.json`` (:data:`CONFIG_FILE`): the run's config,
  :func:`save_config` / :func:`load_config`;
* ``workdir/checkpoints/`` (:data:`CHECKPOINT_DIR`, :func:`checkpoint_dir`):
  the Orbax checkpoints;
* :func:`load_dataset`: ``config.dataset`` (``data_dir``, ``data_source``)
  through :func:`ssljax.data.load`;
* :func:`init_state`: the method's step-0 state from ``config.seed``,
  replicated over the mesh, and the data key (the random-init baseline and the
  restore target of every checkpoint).
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from ssljax import data as data_lib
from ssljax.config import ConfigReader, build
from ssljax.data.splits import OWN_VALIDATION_SPLIT, VALIDATION_FRACTION, holdout
from ssljax.parallel import replicated_sharding

__all__ = ["CHECKPOINT_DIR", "CONFIG_FILE", "FINISHED_FILE", "checkpoint_dir", "init_state",
           "load_config", "load_dataset", "save_config", "validation_fraction"]

#: The run's config, as JSON, in its workdir.
CONFIG_FILE = "config.json"
#: Written by ``experiments/pretrain.py`` when a run reaches its last step.
FINISHED_FILE = "finished.json"
#: The Orbax checkpoint folder, in the workdir.
CHECKPOINT_DIR = "checkpoints"


def checkpoint_dir(workdir: str) -> str:
  """``workdir/checkpoints``: where the loop saves and :mod:`ssljax.run`
  restores."""
  return os.path.join(workdir, CHECKPOINT_DIR)


def save_config(config, workdir: str) -> None:
  """Write ``workdir/config.json`` atomically."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      f.write(config.to_json(indent=2))
    os.replace(tmp, path)
  finally:                 # a failed write (full disk) leaves no tmp file
    if os.path.exists(tmp):
      os.remove(tmp)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``workdir/config.json``."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} the --workdir of a "
                            "pretrain.py run?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_dataset(config, split: str = "train") -> data_lib.ArrayDataset:
  """``split`` of ``config.dataset`` (from ``config.data_dir`` /
  ``config.data_source`` when set; a dataset of
  :data:`ssljax.data.DATA_OPTIONS` from its ``config.data`` section).

  For image datasets, ``"train"`` is the training split without its last
  ``config.validation_fraction`` (default 0.1, :mod:`ssljax.data.splits`),
  which ``"validation"`` returns; ``"train_all"`` is the whole training split.
  A dataset of :data:`~ssljax.data.splits.OWN_VALIDATION_SPLIT` (held out by
  source file) keeps its own ``"train"`` and ``"validation"`` splits.
  """
  options = data_lib.DATA_OPTIONS.get(config.dataset)
  if options is not None:
    return build(options, ConfigReader(config).get("data")).load(split)
  load = lambda s: data_lib.load(
      config.dataset, s, data_dir=config.get("data_dir") or None,
      source=config.get("data_source", "auto"))
  if split not in ("train", "validation", "train_all"):
    return load(split)
  if config.dataset in OWN_VALIDATION_SPLIT:     # held out by source file
    if split == "train_all":
      raise ValueError(f"{config.dataset} holds its validation sources out "
                       "by file: load 'train' and 'validation' separately.")
    return load(split)
  full = load("train")
  fraction = validation_fraction(config)
  if split == "train_all":
    return full
  if fraction == 0:
    if split == "validation":
      raise ValueError(f"{config.dataset}: validation_fraction is 0, so the run "
                       "holds out no validation split.")
    return full
  train, validation = holdout(full, fraction)
  return train if split == "train" else validation


def validation_fraction(config) -> float:
  """The run's held-out share of the training split
  (:data:`ssljax.data.splits.VALIDATION_FRACTION` unless the config says)."""
  return float(config.get("validation_fraction", VALIDATION_FRACTION))


def init_state(method, config, image_shape, mesh):
  """``(state, data_key)``: ``method.init`` at ``config.seed``'s init key,
  replicated over ``mesh``, and the key the data augmentation folds steps
  into."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  state = method.init(init_key, image_shape)
  return jax.device_put(state, replicated_sharding(mesh)), data_key
