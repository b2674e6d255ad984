"""Build a method (model + optimizer + schedule) from an ml_collections config."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from ssljax import data as data_lib
from ssljax.methods import MoCo, SimCLR, momentum_schedule
from ssljax.models import EncoderWithHead, ProjectionMLP, get_encoder
from ssljax.train.optim import (make_optimizer, scale_learning_rate,
                                warmup_cosine_schedule)


def _plain(d) -> dict[str, Any]:
  """A ConfigDict (or dict) as a plain dict with tuples for lists."""
  d = d.to_dict() if hasattr(d, "to_dict") else dict(d)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def total_steps(config, num_examples: int) -> int:
  """``config.num_steps`` if set (> 0), else epochs * floor(N / batch)."""
  if config.get("num_steps"):
    return int(config.num_steps)
  per_epoch = num_examples // config.batch_size
  if per_epoch == 0:
    raise ValueError(f"batch_size {config.batch_size} is larger than the "
                     f"dataset ({num_examples} examples).")
  return int(round(config.num_epochs * per_epoch))


def input_stats(config):
  """Per-channel (mean, std) for input normalization."""
  if config.get("input_mean") is not None:
    return tuple(config.input_mean), tuple(config.input_std)
  info = data_lib.info(config.dataset)
  if info.mean is None:
    return (0.5,), (0.5,)
  return tuple(info.mean), tuple(info.std)


def compute_dtype(config):
  """``config.compute_dtype`` ("float32" default, or "bfloat16"): the dtype of
  activations and matmuls; parameters, BN statistics and losses stay float32."""
  name = config.get("compute_dtype", "float32") or "float32"
  if name not in ("float32", "bfloat16", "float16"):
    raise ValueError(f"compute_dtype must be 'float32', 'bfloat16' or "
                     f"'float16'; got {name!r}.")
  return jnp.dtype(name)


def build_encoder(config):
  enc = _plain(config.encoder)
  name = enc.pop("name")
  if "dtype" not in enc and compute_dtype(config) != jnp.float32:
    enc["dtype"] = compute_dtype(config)
  return get_encoder(name, **enc)


def build_method(config, num_examples: int):
  """The method object of ``config.method`` and its total step count."""
  steps = total_steps(config, num_examples)
  opt = config.optimizer
  peak = scale_learning_rate(opt.base_lr, config.batch_size, opt.lr_scaling)
  steps_per_epoch = max(1, num_examples // config.batch_size)
  warmup = int(round(opt.warmup_epochs * steps_per_epoch))
  warmup = min(warmup, steps)
  if opt.get("schedule", "cosine") == "step":
    # MoCo v1: lr x decay_factor at each of decay_epochs (120 and 160 of 200).
    if warmup:
      raise ValueError("optimizer.schedule='step' has no warm-up; set "
                       "optimizer.warmup_epochs=0.")
    factor = opt.get("decay_factor", 0.1)
    schedule = optax.piecewise_constant_schedule(
        peak, {int(round(e * steps_per_epoch)): factor
               for e in opt.decay_epochs})
  elif opt.get("schedule", "cosine") == "cosine":
    schedule = warmup_cosine_schedule(peak, steps, warmup)
  else:
    raise ValueError(f"optimizer.schedule must be 'cosine' or 'step'; got "
                     f"{opt.schedule!r}.")
  tx = make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                      momentum=opt.get("momentum", 0.9),
                      trust_coefficient=opt.get("trust_coefficient", 1e-3))
  if config.method in ("cpc_sequence", "cpc_image"):
    from ssljax.train.build_cpc import build_cpc  # pylint: disable=import-outside-toplevel
    return with_online_probe(config, build_cpc(config, tx, schedule)), steps
  if config.method in ("colorization", "splitbrain"):
    # Lab input scaled inside the method: no input_mean / input_std.
    from ssljax.methods.colorization import build_colorization  # pylint: disable=import-outside-toplevel
    return with_online_probe(
        config, build_colorization(config, tx, schedule, build_encoder)), steps
  mean, std = input_stats(config)
  if config.method == "simclr":
    head = {"dtype": compute_dtype(config), **_plain(config.head)}
    model = EncoderWithHead(encoder=build_encoder(config),
                            head=ProjectionMLP(**head))
    method = SimCLR(model=model, tx=tx, temperature=config.temperature,
                    augment=_plain(config.augment), mean=mean, std=std,
                    schedule=schedule,
                    loss_block_size=config.get("loss_block_size") or None)
  elif config.method == "moco":
    method = _build_moco(config, tx, schedule, steps, mean, std)
  elif config.method in ("rotation", "jigsaw", "relpos"):
    method = _build_pretext(config, tx, schedule, mean, std)
  elif config.method == "inpainting":
    from ssljax.train.build_inpainting import build_inpainting  # pylint: disable=import-outside-toplevel
    method = build_inpainting(config, schedule, mean, std)
  else:
    raise ValueError(f"unknown method {config.method!r}; available: 'simclr', "
                     "'moco', 'rotation', 'jigsaw', 'relpos', 'inpainting', "
                     "'cpc_sequence', 'cpc_image', 'colorization', "
                     "'splitbrain'.")
  return with_online_probe(config, method), steps


def with_online_probe(config, method):
  """``method`` wrapped in :class:`~ssljax.methods.online_probe.OnlineProbe`
  when ``config.online_probe`` is set (keys ``lr``, ``momentum``,
  ``weight_decay``, ``num_classes``: default the dataset's)."""
  probe = config.get("online_probe")
  if not probe:
    return method
  # pylint: disable-next=import-outside-toplevel
  from ssljax.methods.online_probe import OnlineProbe
  probe = _plain(probe)
  num_classes = probe.pop("num_classes", None) or data_lib.info(
      config.dataset).num_classes
  return OnlineProbe(method, num_classes=int(num_classes), **probe)


def _build_moco(config, tx, schedule, steps, mean, std):
  moco = config.moco
  model = EncoderWithHead(encoder=build_encoder(config),
                          head=ProjectionMLP(**_plain(config.head)))
  kind = moco.get("momentum_schedule", "constant")
  if kind == "constant":
    momentum = float(moco.momentum)
  elif kind == "cosine":
    momentum = momentum_schedule(float(moco.momentum), steps)
  else:
    raise ValueError(f"moco.momentum_schedule must be 'constant' or 'cosine'; "
                     f"got {kind!r}.")
  return MoCo(model=model, tx=tx, queue_size=int(moco.queue_size),
              temperature=config.temperature, momentum=momentum,
              shuffle_bn=bool(moco.get("shuffle_bn", True)),
              bn_splits=int(moco.get("bn_splits", 1)),
              batch_size=int(config.batch_size), augment=_plain(config.augment),
              mean=mean, std=std, schedule=schedule)


def _build_pretext(config, tx, schedule, mean, std):
  """Rotation / jigsaw / relative position: a TileClassifier (shared encoder,
  head ``ProjectionMLP(**config.head)`` with ``out_dim`` = the task's number
  of classes) and the task's geometry from ``config.<method>``."""
  # pylint: disable=import-outside-toplevel
  from ssljax.methods import (Jigsaw, RelativePosition, Rotation,
                              TileClassifier, permutation_set)
  from ssljax.methods.relpos import PAIR_GROUPS
  head = {"dtype": compute_dtype(config),
          **{k: v for k, v in _plain(config.head).items() if k != "out_dim"}}
  common = dict(tx=tx, mean=mean, std=std, schedule=schedule)
  encoder = build_encoder(config)
  if config.method == "rotation":
    model = TileClassifier(encoder=encoder,
                           head=ProjectionMLP(out_dim=4, **head))
    return Rotation(model=model, augment=_plain(config.get("augment") or {}),
                    **common)
  task = _plain(config[config.method])
  size = task.pop("size", None) or None
  if config.method == "jigsaw":
    perms = permutation_set(int(task.pop("num_permutations", 100)),
                            grid=int(task.get("grid", 3)),
                            seed=int(task.pop("permutation_seed", 0)))
    model = TileClassifier(encoder=encoder,
                           head=ProjectionMLP(out_dim=len(perms), **head))
    return Jigsaw(model=model, permutations=perms, size=size, **task, **common)
  all_neighbors = bool(task.pop("all_neighbors", True))
  model = TileClassifier(encoder=encoder, head=ProjectionMLP(out_dim=8, **head),
                         groups=PAIR_GROUPS if all_neighbors else None)
  return RelativePosition(model=model, size=size, all_neighbors=all_neighbors,
                          **task, **common)


def load_config_file(path: str):
  """``get_config()`` of a config file (for notebooks; the launchers use
  ``ml_collections.config_flags``)."""
  import importlib.util
  import os
  spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"no config file at {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
