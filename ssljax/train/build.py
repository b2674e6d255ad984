"""Build a run from its config: the loop's settings, the optimizer, the method.

Every config key is read through a :class:`ssljax.config.ConfigReader` by the
dataclass or function that uses it (:class:`RunConfig` for the loop's
top-level keys, :class:`~ssljax.train.optim.OptimizerConfig` for
``optimizer``, the method's ``from_config`` for the rest), so
:func:`build_method` reports every problem at once and a key nobody reads is
an error (``ssljax.train.validate``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

from ssljax import data as data_lib
from ssljax.config import ConfigError, ConfigReader, build, check
from ssljax.data.splits import VALIDATION_FRACTION
from ssljax.methods import DataSpec, OnlineProbe, get_method
from ssljax.train.optim import OptimizerConfig

NONFINITE_MODES = ("stop", "skip")
DATA_SOURCES = ("auto", "local", "tfds")


def _known_info(name: str):
  """The built-in facts of dataset ``name`` (no TFDS lookup), or None."""
  return data_lib.sources.KNOWN_DATASETS.get(name)


def _pos_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool) and x >= 1


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The top-level keys the training loop reads.

  ``num_steps > 0`` overrides ``num_epochs``; ``input_mean`` / ``input_std``
  (per channel, [0, 1] units) override the dataset's statistics;
  ``nonfinite``: ``"stop"`` or ``"skip"`` (``ssljax.train.loop``).
  """
  method: str
  dataset: str
  batch_size: int
  seed: int = 0
  num_epochs: float = 0.0
  num_steps: int = 0
  data_dir: str = ""
  data_source: str = "auto"
  log_every: int = 20
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  nonfinite: str = "stop"
  input_mean: tuple[float, ...] | None = None
  input_std: tuple[float, ...] | None = None
  #: The last share of the training split held out for validation (never
  #: trained on; ``ssljax.data.splits``); 0 trains on all of it.
  validation_fraction: float = VALIDATION_FRACTION

  def __post_init__(self):
    stats_ok = (self.input_mean is None) == (self.input_std is None) and (
        self.input_mean is None or (len(self.input_mean) == len(self.input_std)
                                    and min(self.input_std) > 0))
    check(self,
          ("batch_size", _pos_int, "must be an integer >= 1"),
          ("seed", lambda s: isinstance(s, int) and s >= 0,
           "must be an integer >= 0"),
          ("num_steps", lambda s: isinstance(s, int) and s >= 0,
           "must be an integer >= 0 (0: train for num_epochs)"),
          ("num_epochs", lambda e: self.num_steps > 0 or (
              math.isfinite(e) and e > 0),
           "must be > 0 when num_steps is 0"),
          ("log_every", _pos_int, "must be an integer >= 1"),
          ("checkpoint_every", _pos_int, "steps between checkpoints: an "
           "integer >= 1"),
          ("keep_checkpoints", _pos_int, "must be an integer >= 1"),
          ("nonfinite", lambda m: m in NONFINITE_MODES,
           f"must be one of {NONFINITE_MODES}"),
          ("validation_fraction", lambda f: isinstance(f, (int, float))
           and 0 <= f <= 0.5, "must be in [0, 0.5] (0: no validation split)"),
          ("data_source", lambda s: s in DATA_SOURCES,
           f"must be one of {DATA_SOURCES}"),
          ("input_std", stats_ok, "input_mean and input_std go together: one "
           "value > 0 per channel in each, or neither"))

  @classmethod
  def from_config(cls, config) -> "RunConfig":
    reader = config if isinstance(config, ConfigReader) else ConfigReader(config)
    for key in ("method", "dataset", "batch_size"):
      if key not in reader:
        reader.problem(key, None, f"required (--config.{key}=...)")
    return build(cls, reader, **{k: reader.get(k, d) for k, d in (
        ("method", ""), ("dataset", ""), ("batch_size", 1))})

  def total_steps(self, num_examples: int) -> int:
    """``num_steps`` if > 0, else ``num_epochs * floor(N / batch_size)``."""
    if self.num_steps:
      return int(self.num_steps)
    per_epoch = num_examples // self.batch_size
    if per_epoch == 0:
      raise ValueError(f"batch_size {self.batch_size} is larger than the "
                       f"dataset ({num_examples} examples).")
    return int(round(self.num_epochs * per_epoch))


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
  """``config.monitor``: the online kNN monitor (``ssljax.eval.monitor``),
  every ``every`` steps (0: off) on ``num_train`` bank / ``num_test`` query
  images, weighted kNN with ``k`` neighbours at temperature ``t``."""
  every: int = 0
  num_train: int = 5000
  num_test: int = 1000
  k: int = 200
  t: float = 0.1
  batch_size: int = 1000

  def __post_init__(self):
    check(self,
          ("every", lambda e: isinstance(e, int) and e >= 0,
           "steps between kNN evaluations: an integer >= 0 (0: off)"),
          ("num_train", _pos_int, "must be an integer >= 1"),
          ("num_test", _pos_int, "must be an integer >= 1"),
          ("k", lambda k: _pos_int(k) and k <= self.num_train,
           "neighbours: an integer in [1, num_train]"),
          ("t", lambda t: t > 0, "must be > 0"),
          ("batch_size", _pos_int, "must be an integer >= 1"))


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """``config.eval``: the frozen-encoder evaluation of a run
  (``ssljax.eval.protocol``): weighted kNN (``knn_k``, ``knn_t``), the linear
  probe (``linear_*``; a tuple of weight decays is a grid searched on a
  held-out part of the training split), the feature batch size, and the
  options of the CPC and pretext evaluations."""
  knn_k: int = 200
  knn_t: float = 0.1
  linear_epochs: int = 100
  linear_lr: float = 0.5
  linear_weight_decay: float | tuple[float, ...] = (1e-5, 1e-4, 1e-3)
  linear_batch_size: int = 1024
  feature_batch_size: int = 1000
  linear_solver: str = "sgd"
  linear_l2: float | None = None
  pools: tuple[str, ...] | None = None
  step_accuracy_batches: int = 8
  probe_train_examples: int = 0
  probe_test_examples: int = 0
  # The few-label fine-tuning and from-scratch training of the protocol
  # (ssljax.eval.standard.protocol_options): the optimizer of both, and
  # learning rates replacing the protocol's (None: the protocol's, chosen on
  # validation for the BatchNorm ResNets; set them from
  # benchmarks/finetune_recipe.py's validation grid for another network).
  finetune_optimizer: str = "sgd"
  finetune_lr: float | None = None
  scratch_lr: float | None = None

  def __post_init__(self):
    wd = self.linear_weight_decay
    wd = wd if isinstance(wd, tuple) else (wd,)
    check(self,
          ("knn_k", _pos_int, "must be an integer >= 1"),
          ("knn_t", lambda t: t > 0, "must be > 0"),
          ("linear_epochs", _pos_int, "must be an integer >= 1"),
          ("linear_lr", lambda v: v > 0, "must be > 0"),
          ("linear_weight_decay", bool(wd) and all(v >= 0 for v in wd),
           "a weight decay >= 0 or a non-empty grid, e.g. (1e-5, 1e-4, 1e-3)"),
          ("linear_batch_size", _pos_int, "must be an integer >= 1"),
          ("feature_batch_size", _pos_int, "must be an integer >= 1"),
          ("linear_solver", lambda v: v in ("sgd", "lbfgs"),
           "'sgd' or 'lbfgs'"),
          ("linear_l2", lambda v: v is None or v >= 0, "must be >= 0"),
          ("step_accuracy_batches", _pos_int, "must be an integer >= 1"),
          ("probe_train_examples", lambda v: v >= 0, "must be >= 0 (0: all)"),
          ("probe_test_examples", lambda v: v >= 0, "must be >= 0 (0: all)"),
          ("finetune_optimizer", lambda v: v in ("sgd", "adamw"),
           "'sgd' or 'adamw'"),
          ("finetune_lr", lambda v: v is None or v > 0, "must be > 0 (or None)"),
          ("scratch_lr", lambda v: v is None or v > 0, "must be > 0 (or None)"))

  @classmethod
  def from_config(cls, config) -> "EvalConfig":
    reader = config if isinstance(config, ConfigReader) else ConfigReader(config)
    return build(cls, reader.get("eval"))


def total_steps(config, num_examples: int) -> int:
  """The run's number of steps (:meth:`RunConfig.total_steps`)."""
  return RunConfig.from_config(config).total_steps(num_examples)


def data_spec(run: RunConfig, *, num_examples: int, input_shape,
              dtype: str = "uint8", num_classes: int | None = None,
              num_steps: int = 0, dataset=None) -> DataSpec:
  """What the method is told about its data: shape, size, classes and the
  normalization (``input_mean`` / ``input_std``, else the dataset's known
  statistics, else 0.5 / 0.5)."""
  known = _known_info(run.dataset)
  if run.input_mean is not None and run.input_std is not None:
    mean, std = tuple(run.input_mean), tuple(run.input_std)
  elif known is not None and known.mean is not None:
    mean, std = tuple(known.mean), tuple(known.std)
  else:
    mean, std = (0.5,), (0.5,)
  if num_classes is None:
    num_classes = known.num_classes if known is not None else 0
  return DataSpec(name=run.dataset, num_examples=int(num_examples),
                  input_shape=tuple(input_shape), dtype=str(dtype), mean=mean,
                  std=std, num_classes=int(num_classes),
                  batch_size=run.batch_size, num_steps=int(num_steps),
                  dataset=dataset)


def dataset_spec(config, dataset) -> DataSpec:
  """:func:`data_spec` of a loaded dataset (images or sequences)."""
  run = RunConfig.from_config(config)
  shape = getattr(dataset, "image_shape", None) or dataset.input_shape
  array = getattr(dataset, "images", None)
  if array is None:
    array = dataset.inputs
  return data_spec(run, num_examples=len(dataset), input_shape=shape,
                   dtype=str(array.dtype),
                   num_classes=getattr(dataset, "num_classes", None),
                   num_steps=run.total_steps(len(dataset)), dataset=dataset)


def build_method(config, num_examples_or_data, *, input_shape=None):
  """``(method, total_steps)`` of ``config``.

  ``num_examples_or_data``: a :class:`DataSpec`, a loaded dataset, or the
  number of training examples (the input shape then comes from
  ``input_shape`` or the dataset's known facts). Raises one
  :class:`ssljax.config.ConfigError` listing every value problem (unknown
  keys are ``ssljax.train.validate``'s: other code, such as the
  evaluation, reads parts of a config too).
  """
  reader = config if isinstance(config, ConfigReader) else ConfigReader(config)
  _, method, spec = build_run(reader, num_examples_or_data,
                              input_shape=input_shape)
  if reader.problems:
    raise ConfigError(reader.problems)
  return method, spec.num_steps


def build_run(reader: ConfigReader, data, *, input_shape=None):
  """``(RunConfig, method, DataSpec)`` of the config behind ``reader``,
  without raising for config problems: they stay on ``reader``
  (``reader.all_problems()``); ``method`` is None when no method could be
  built."""
  run = RunConfig.from_config(reader)
  options = data_lib.DATA_OPTIONS.get(run.dataset)
  if options is not None:               # its config.data section
    options = build(options, reader.get("data"))
  if isinstance(data, DataSpec):
    spec = data
  elif hasattr(data, "__len__") and not isinstance(data, int):
    spec = dataset_spec(reader, data)
  elif options is not None:
    spec = data_spec(run, num_examples=options.num_examples("train"),
                     input_shape=options.input_shape, dtype=options.dtype,
                     num_classes=options.num_classes)
  else:
    if input_shape is None:
      known = _known_info(run.dataset)
      input_shape = known.image_shape if known is not None else (32, 32, 3)
    spec = data_spec(run, num_examples=int(data), input_shape=input_shape)
  try:
    steps = run.total_steps(spec.num_examples)
  except ValueError:       # batch > dataset: CROSS_FIELD_RULES report it
    steps = 1
  spec = dataclasses.replace(spec, num_steps=steps)
  optimizer = build(OptimizerConfig, reader.get("optimizer"))
  tx, schedule = optimizer.make(steps=steps, batch_size=run.batch_size,
                                num_examples=spec.num_examples)
  try:
    cls = get_method(run.method)
  except ValueError as e:
    reader.problem("method", run.method, str(e))
    return run, None, spec
  method = cls.from_config(reader, tx=tx, schedule=schedule, data=spec)
  # Sections the loop and the evaluation read (checked with the rest).
  build(MonitorConfig, reader.get("monitor"))
  EvalConfig.from_config(reader)
  if reader.get("online_probe"):
    method = OnlineProbe.from_config(reader, method=method, data=spec)
  return run, method, spec


def load_config_file(path: str):
  """``get_config()`` of a config file (for notebooks; the launchers use
  ``ml_collections.config_flags``)."""
  spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"no config file at {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
