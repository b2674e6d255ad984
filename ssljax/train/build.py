"""Build a method (model + optimizer + schedule) from an ml_collections config."""

from __future__ import annotations

from typing import Any

from ssljax import data as data_lib
from ssljax.methods import SimCLR
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


def build_encoder(config):
  enc = _plain(config.encoder)
  name = enc.pop("name")
  return get_encoder(name, **enc)


def build_method(config, num_examples: int):
  """The method object of ``config.method`` and its total step count."""
  steps = total_steps(config, num_examples)
  opt = config.optimizer
  peak = scale_learning_rate(opt.base_lr, config.batch_size, opt.lr_scaling)
  steps_per_epoch = max(1, num_examples // config.batch_size)
  warmup = int(round(opt.warmup_epochs * steps_per_epoch))
  warmup = min(warmup, steps)
  schedule = warmup_cosine_schedule(peak, steps, warmup)
  tx = make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                      momentum=opt.get("momentum", 0.9),
                      trust_coefficient=opt.get("trust_coefficient", 1e-3))
  mean, std = input_stats(config)
  if config.method == "simclr":
    head = _plain(config.head)
    model = EncoderWithHead(encoder=build_encoder(config),
                            head=ProjectionMLP(**head))
    method = SimCLR(model=model, tx=tx, temperature=config.temperature,
                    augment=_plain(config.augment), mean=mean, std=std,
                    schedule=schedule)
  else:
    raise ValueError(f"unknown method {config.method!r}; available: 'simclr'.")
  return method, steps


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
