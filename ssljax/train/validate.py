"""Config and input validation, before anything is compiled.

:func:`validate_config` checks an ``ml_collections`` config (or a plain dict)
against what :func:`ssljax.train.build.build_method`, the training loop and
the evaluation code read, and raises ONE :class:`ConfigError` that lists every
problem it found; each names the key, the bad value and the fix::

    ConfigError: 2 problems in the config:
      - temperature = -0.1: must be > 0 (the logits are divided by it); e.g.
        --config.temperature=0.1.
      - optimizer.weight_decy = 0.0001: unknown key; did you mean
        'optimizer.weight_decay'?

It catches unknown keys (typos and keys no code reads: both are otherwise
silently ignored; keys only another method reads are a
:class:`ConfigWarning`, or errors with ``strict=True``), missing required keys,
impossible values (temperature <= 0, crop ranges outside (0, 1], probabilities
outside [0, 1], negative learning rates, ...), unknown names (method,
optimizer, schedule, encoder, dataset) and sizes that cannot work together
(MoCo queue vs batch, batch vs device count, jigsaw lattice vs image size, the
CPC patch grid vs the prediction steps).

:func:`validate_images` checks a host batch: uint8 (or float in [0, 1]),
``[B, H, W, C]`` with ``C`` in {1, 3}.

The names the checks accept come from the code wherever it keeps them
(``ssljax.models`` encoders, ``ssljax.data`` dataset facts and TFDS's
registry, the fields of the Flax modules and method dataclasses, the keyword
arguments of ``ssljax.augment.simclr_view``); the rest mirrors the
``config.get(...)`` reads of ``ssljax/train`` and ``ssljax/eval``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "CONFIG_KEYS",
    "ConfigError",
    "ConfigWarning",
    "METHODS",
    "OPTIMIZERS",
    "Problem",
    "allowed_keys",
    "config_problems",
    "validate_config",
    "validate_images",
]

# ---------------------------------------------------------------------------
# Names.

#: ``config.method`` values that ``build_method`` builds.
IMAGE_METHODS = ("simclr", "moco", "rotation", "jigsaw", "relpos")
#: Image methods without a projection/classifier head (ssljax.methods.inpainting).
GENERATIVE_METHODS = ("inpainting",)
CPC_METHODS = ("cpc_sequence", "cpc_image")
#: ``ssljax.methods.colorization.build_colorization``.
COLOR_METHODS = ("colorization", "splitbrain")
METHODS = IMAGE_METHODS + GENERATIVE_METHODS + CPC_METHODS + COLOR_METHODS
#: ``config.optimizer.name`` values of ``ssljax.train.optim.make_optimizer``.
OPTIMIZERS = ("lars", "sgd", "adamw")
SCHEDULES = ("cosine", "step")
LR_SCALING = ("linear", "sqrt", "none")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
NONFINITE = ("stop", "skip")
DATA_SOURCES = ("auto", "local", "tfds")
MOMENTUM_SCHEDULES = ("constant", "cosine")
STEMS = ("cifar", "imagenet")
#: Datasets ``ssljax.data.load`` reads without TFDS.
LOCAL_DATASETS = ("fashion_mnist", "mnist", "digits", "opencv_photos")
#: The sequence dataset of ``experiments/cpc_audio.py``.
SEQUENCE_DATASETS = ("spoken_words",)

# ---------------------------------------------------------------------------
# Keys.

#: Top-level keys every method may set (the loop, logging, checkpoints,
#: evaluation, and the documented optional keys).
COMMON_KEYS = frozenset({
    "method", "seed", "dataset", "data_dir", "data_source", "batch_size",
    "num_epochs", "num_steps", "encoder", "optimizer", "log_every",
    "checkpoint_every", "keep_checkpoints", "eval", "monitor",
    "compute_dtype", "input_mean", "input_std", "nonfinite", "online_probe",
})

#: Extra top-level keys of each method.
METHOD_KEYS = {
    "simclr": frozenset({"temperature", "head", "augment", "loss_block_size"}),
    "moco": frozenset({"temperature", "head", "augment", "moco"}),
    "rotation": frozenset({"head", "augment"}),
    "jigsaw": frozenset({"head", "jigsaw"}),
    "relpos": frozenset({"head", "relpos"}),
    "inpainting": frozenset({"inpainting", "decoder", "discriminator"}),
    "cpc_sequence": frozenset({"context", "cpc", "data"}),
    "cpc_image": frozenset({"context", "cpc"}),
    "colorization": frozenset({"colorization"}),
    "splitbrain": frozenset({"colorization"}),
}

#: Common keys a method does not read (why, for the message).
_LAB_INPUT = "the input is the Lab lightness, scaled as (L - 50) / 50"
METHOD_IGNORES = {
    "colorization": {"input_mean": _LAB_INPUT, "input_std": _LAB_INPUT},
    "splitbrain": {"input_mean": _LAB_INPUT, "input_std": _LAB_INPUT},
    "cpc_image": {"compute_dtype": "the CPC models compute in float32"},
    "cpc_sequence": {
        "compute_dtype": "the CPC models compute in float32",
        "data_dir": "spoken words come from config.data",
        "data_source": "spoken words come from config.data",
        "input_mean": "waveforms are scaled by cpc.input_scale",
        "input_std": "waveforms are scaled by cpc.input_scale",
        "monitor": "experiments/cpc_audio.py runs no kNN monitor",
    },
}

#: ``config.<name>`` keys for every method (top-level key -> its keys).
CONFIG_KEYS = {
    # build.build_method reads these.
    "optimizer": frozenset({
        "name", "base_lr", "lr_scaling", "weight_decay", "warmup_epochs",
        "momentum", "trust_coefficient", "schedule", "decay_epochs",
        "decay_factor"}),
    # build._build_moco.
    "moco": frozenset({"queue_size", "momentum", "momentum_schedule",
                       "shuffle_bn", "bn_splits"}),
    # ssljax.eval.monitor.KNNMonitor.from_config and the loop.
    "monitor": frozenset({"every", "num_train", "num_test", "k", "t",
                          "batch_size"}),
    # ssljax.eval.protocol and experiments/cpc_*.py.
    "eval": frozenset({
        "knn_k", "knn_t", "linear_epochs", "linear_lr", "linear_weight_decay",
        "linear_batch_size", "feature_batch_size", "pools", "linear_solver",
        "linear_l2",
        "step_accuracy_batches", "probe_train_examples",
        "probe_test_examples"}),
    # ssljax.methods.colorization.build_colorization.
    "colorization": frozenset({
        "grid", "ab_range", "num_neighbors", "sigma", "temperature",
        "rebalance_lambda", "prior_sigma", "prior_images", "hidden_dim",
        "out_stride", "hypercolumn", "flip", "num_l_bins"}),
    # ssljax.train.build.with_online_probe (ssljax.methods.online_probe).
    "online_probe": frozenset({"lr", "momentum", "weight_decay",
                               "num_classes"}),
    # experiments/cpc_audio.py load_data.
    "data": frozenset({"repeats", "seed", "length", "test_fraction",
                       "cache_dir"}),
}

#: ``config.cpc`` keys (build_cpc.build_cpc).
CPC_KEYS = {
    "cpc_sequence": frozenset({"num_steps", "negatives", "num_negatives",
                               "pool", "input_scale"}),
    "cpc_image": frozenset({"num_steps", "negatives", "num_negatives", "pool",
                            "patch_size", "patch_stride", "pad", "skip",
                            "flip"}),
}

_MODULE_INTERNAL = {"parent", "name"}


def _fields(cls) -> set[str]:
  return {f.name for f in dataclasses.fields(cls)} - _MODULE_INTERNAL


def _augment_keys() -> frozenset:
  from ssljax.augment import simclr_view  # pylint: disable=import-outside-toplevel
  params = inspect.signature(simclr_view).parameters
  return frozenset(p for p in params if p not in ("key", "image"))


def _head_keys() -> frozenset:
  from ssljax.models import ProjectionMLP  # pylint: disable=import-outside-toplevel
  return frozenset(_fields(ProjectionMLP))


def _image_encoders() -> dict[str, Any]:
  import ssljax.models as models  # pylint: disable=import-outside-toplevel
  return dict(getattr(models, "_ENCODERS", {}))


def _encoder_keys(method: str, name: str) -> frozenset | None:
  """Keys of ``config.encoder`` (besides ``name``) for encoder ``name``;
  None when the name is unknown."""
  # pylint: disable=import-outside-toplevel
  if method in CPC_METHODS:
    cls = _cpc_modules(method)["encoder"].get(name)
    return None if cls is None else frozenset(_fields(cls))
  if name not in _image_encoders():
    return None
  from ssljax.models import ResNet
  keys = _fields(ResNet) - {"block"}
  return frozenset(keys)


def _cpc_modules(method: str) -> dict[str, dict[str, Any]]:
  """The (encoder, context) names ``build_cpc`` builds for ``method``."""
  # pylint: disable=import-outside-toplevel
  from ssljax.models.cpc import (CausalConvEncoder, GRUContext, PatchEncoder,
                                 RowCausalContext)
  if method == "cpc_sequence":
    return {"encoder": {"causal_conv": CausalConvEncoder},
            "context": {"gru": GRUContext}}
  return {"encoder": {"patch_encoder": PatchEncoder},
          "context": {"row_causal": RowCausalContext}}


def _pretext_keys(method: str) -> frozenset:
  # pylint: disable=import-outside-toplevel
  from ssljax.methods import Jigsaw, PretextMethod, RelativePosition
  base = _fields(PretextMethod)
  if method == "jigsaw":
    return frozenset((_fields(Jigsaw) - base - {"permutations"})
                     | {"num_permutations", "permutation_seed"})
  return frozenset(_fields(RelativePosition) - base)


def allowed_keys(method: str) -> dict[str, frozenset | None]:
  """The keys ``method`` reads: ``{"": top-level keys, section: its keys}``
  (``None``: the section's keys depend on a name, e.g. ``encoder.name``)."""
  if method not in METHOD_KEYS:
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
  top = (COMMON_KEYS | METHOD_KEYS[method]) - set(METHOD_IGNORES.get(method, ()))
  out: dict[str, frozenset | None] = {"": frozenset(top)}
  for section in top:
    if section in CONFIG_KEYS:
      out[section] = CONFIG_KEYS[section]
  if "augment" in top:
    out["augment"] = _augment_keys()
  if "head" in top:
    keys = _head_keys()
    if method in ("rotation", "jigsaw", "relpos"):
      keys = keys - {"out_dim"}   # the task fixes the number of classes
    out["head"] = frozenset(keys)
  if method in ("jigsaw", "relpos"):
    out[method] = _pretext_keys(method)
  if method in CPC_METHODS:
    out["cpc"] = CPC_KEYS[method]
    out["context"] = None
  if method == "inpainting":
    # pylint: disable=import-outside-toplevel
    from ssljax.train.build_inpainting import (DECODER_KEYS,
                                               DISCRIMINATOR_KEYS,
                                               INPAINTING_KEYS)
    out["inpainting"] = INPAINTING_KEYS
    out["decoder"] = DECODER_KEYS
    out["discriminator"] = DISCRIMINATOR_KEYS
    out["optimizer"] = CONFIG_KEYS["optimizer"] | {"b1", "b2"}   # Adam's betas
  out["encoder"] = None
  return out


# ---------------------------------------------------------------------------
# Problems and the error.


def _show(value: Any, limit: int = 60) -> str:
  if isinstance(value, Mapping):
    text = "{" + ", ".join(sorted(map(str, value))) + "}"
  else:
    text = repr(tuple(value) if isinstance(value, list) else value)
  return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclasses.dataclass(frozen=True)
class Problem:
  """One problem: the dotted ``key``, its ``value`` and what is wrong and how
  to fix it (``message``). ``unused``: a key the code knows but this method
  does not read (e.g. ``temperature`` in a rotation config, left over from
  switching ``method``): a :class:`ConfigWarning` unless ``strict``."""
  key: str
  value: Any
  message: str
  unused: bool = False

  def __str__(self) -> str:
    if self.value is _MISSING:
      return f"{self.key} (missing): {self.message}"
    return f"{self.key} = {_show(self.value)}: {self.message}"


class _Missing:
  def __repr__(self):
    return "<missing>"


_MISSING = _Missing()


class ConfigWarning(UserWarning):
  """Keys the method does not read (see ``Problem.unused``)."""


class ConfigError(ValueError):
  """A config with one or more problems; ``problems`` lists them all."""

  def __init__(self, problems: Sequence[Problem]):
    self.problems = tuple(problems)
    n = len(self.problems)
    lines = "\n".join(f"  - {p}" for p in self.problems)
    super().__init__(f"{n} problem{'s' if n != 1 else ''} in the config:\n"
                     f"{lines}")

  @property
  def keys(self) -> tuple[str, ...]:
    return tuple(p.key for p in self.problems)


# ---------------------------------------------------------------------------
# Value predicates.


def _is_int(x) -> bool:
  return isinstance(x, (Integral, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_num(x) -> bool:
  return (isinstance(x, (Real, np.floating, np.integer))
          and not isinstance(x, (bool, np.bool_)) and math.isfinite(float(x)))


def _is_seq(x) -> bool:
  return isinstance(x, (list, tuple))


def _closest(word: str, options) -> str | None:
  match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1,
                                    cutoff=0.6)
  return match[0] if match else None


def _choices(value, options) -> str:
  hint = _closest(value, options) if isinstance(value, str) else None
  text = f"choose one of {', '.join(repr(o) for o in options)}"
  return f"did you mean {hint!r}? ({text})" if hint else text


def _flag(key: str) -> str:
  return f"--config.{key}"


class _Checker:
  """Collects problems for one config (a plain nested dict)."""

  def __init__(self, cfg: Mapping[str, Any], device_count, num_examples,
               check_dataset: bool, check_tfds: bool):
    self.cfg = cfg
    self.check_dataset = check_dataset
    self.problems: list[Problem] = []
    self._device_count = device_count
    self.num_examples = num_examples
    self.check_tfds = check_tfds

  # -- helpers ---------------------------------------------------------------

  def add(self, key: str, value: Any, message: str,
          unused: bool = False) -> None:
    self.problems.append(Problem(key, value, message, unused))

  def get(self, key: str, default=_MISSING):
    node: Any = self.cfg
    for part in key.split("."):
      if not isinstance(node, Mapping) or part not in node:
        return default
      node = node[part]
    return default if node is None and default is not _MISSING else node

  def has(self, key: str) -> bool:
    return self.get(key, _MISSING) is not _MISSING and self.get(key) is not None

  def require(self, key: str, hint: str) -> bool:
    if not self.has(key):
      self.add(key, _MISSING, f"required; {hint}")
      return False
    return True

  def device_count(self) -> int:
    if self._device_count is None:
      import jax  # pylint: disable=import-outside-toplevel
      self._device_count = jax.device_count()
    return int(self._device_count)

  def int_at_least(self, key: str, low: int, hint: str = "",
                   optional: bool = True) -> bool:
    """``key`` an int >= low (or absent/None when ``optional``)."""
    if not self.has(key):
      if not optional:
        self.add(key, _MISSING, f"required: an integer >= {low}. {hint}".strip())
      return False
    v = self.get(key)
    if not _is_int(v) or v < low:
      self.add(key, v, f"must be an integer >= {low}"
               + (f"; {hint}" if hint else f"; set {_flag(key)}=..."))
      return False
    return True

  def num_in(self, key: str, low=None, high=None, *, low_open=False,
             high_open=False, hint: str = "") -> bool:
    """``key`` (when set) a finite number in the given interval."""
    if not self.has(key):
      return False
    v = self.get(key)
    bad = not _is_num(v)
    if not bad:
      bad = ((low is not None and (v <= low if low_open else v < low)) or
             (high is not None and (v >= high if high_open else v > high)))
    if bad:
      if low is not None and high is not None:
        what = (f"in {'(' if low_open else '['}{low}, {high}"
                f"{')' if high_open else ']'}")
      elif low is not None:
        what = f"{'>' if low_open else '>='} {low}"
      else:
        what = f"{'<' if high_open else '<='} {high}"
      self.add(key, v, f"must be a number {what}"
               + (f"; {hint}" if hint else f"; set {_flag(key)}=..."))
      return False
    return True

  def prob(self, key: str) -> None:
    self.num_in(key, 0.0, 1.0, hint=f"it is a probability ({_flag(key)}=0.5)")

  def boolean(self, key: str) -> None:
    if self.has(key) and not isinstance(self.get(key), (bool, np.bool_)):
      self.add(key, self.get(key), f"must be True or False ({_flag(key)}=true)")

  def choice(self, key: str, options, *, required: bool = False) -> bool:
    if not self.has(key):
      if required:
        self.add(key, _MISSING, "required; " + _choices("", options))
      return False
    v = self.get(key)
    if v not in options:
      self.add(key, v, _choices(v, options) + f" ({_flag(key)}=...)")
      return False
    return True

  def pair(self, key: str, *, low=None, high=None, low_open=True,
           example: str) -> None:
    """``key`` (when set) a ``(min, max)`` pair of numbers, min <= max, both
    in the interval."""
    if not self.has(key):
      return
    v = self.get(key)
    if not _is_seq(v) or len(v) != 2 or not all(_is_num(x) for x in v):
      self.add(key, v, f"must be a (min, max) pair of numbers, e.g. {example}")
      return
    lo, hi = v
    bad_low = low is not None and (lo <= low if low_open else lo < low)
    bad_high = high is not None and hi > high
    if bad_low or bad_high:
      rule = (f"{low} {'<' if low_open else '<='} min" if low is not None
              else "min")
      rule += " <= max" + (f" <= {high}" if high is not None else "")
      self.add(key, v, f"must satisfy {rule}; e.g. {example}")
    elif lo > hi:
      self.add(key, v, f"min {lo} > max {hi}: swap them, e.g. "
               f"{_flag(key)}=({hi}, {lo})")

  def int_seq(self, key: str, low: int = 1, length: int | None = None,
              what: str = "") -> bool:
    if not self.has(key):
      return False
    v = self.get(key)
    if (not _is_seq(v) or not v or not all(_is_int(x) and x >= low for x in v)
        or (length is not None and len(v) != length)):
      n = f"{length} " if length is not None else ""
      self.add(key, v, f"must be a tuple of {n}integers >= {low}{what}")
      return False
    return True

  # -- unknown keys ----------------------------------------------------------

  def unknown_keys(self, method: str | None) -> None:
    cfg = self.cfg
    if method in METHOD_KEYS:
      allowed = allowed_keys(method)
      top = allowed[""]
    else:
      allowed = {}
      top = COMMON_KEYS.union(*METHOD_KEYS.values())
    every_method = COMMON_KEYS.union(*METHOD_KEYS.values())
    for key, value in cfg.items():
      if key in top:
        continue
      if method in METHOD_KEYS and key in METHOD_IGNORES.get(method, {}):
        self.add(key, value, f"not used by method {method!r} "
                 f"({METHOD_IGNORES[method][key]}); remove it", unused=True)
      elif method in METHOD_KEYS and key in every_method:
        users = [m for m in METHODS if key in METHOD_KEYS[m]]
        self.add(key, value, f"not used by method {method!r} (only by "
                 f"{', '.join(users)}); remove it", unused=True)
      else:
        self.add(key, value, self._unknown(key, top))
    for section, keys in allowed.items():
      node = cfg.get(section) if section else None
      if not section or keys is None or not isinstance(node, Mapping):
        continue
      self._unknown_in(section, node, keys)
    # Name-dependent sections: encoder, context.
    enc = cfg.get("encoder")
    if isinstance(enc, Mapping) and method in METHOD_KEYS:
      name = enc.get("name")
      keys = _encoder_keys(method, name) if isinstance(name, str) else None
      if keys is not None:
        self._unknown_in("encoder", enc, keys | {"name"})
    ctx = cfg.get("context")
    if isinstance(ctx, Mapping) and method in CPC_METHODS:
      name = ctx.get("name")
      cls = _cpc_modules(method)["context"].get(name) if name else None
      if cls is None and name is None:
        cls = next(iter(_cpc_modules(method)["context"].values()))
      if cls is not None:
        self._unknown_in("context", ctx, frozenset(_fields(cls)) | {"name"})

  def _unknown(self, key: str, allowed, prefix: str = "") -> str:
    hint = _closest(key, allowed)
    if hint:
      return (f"unknown key; did you mean {prefix + hint!r}? "
              f"({_flag(prefix + hint)}=...)")
    return (f"unknown key (nothing reads it); remove it. Known keys here: "
            f"{', '.join(sorted(allowed))}")

  def _unknown_in(self, section: str, node: Mapping, keys) -> None:
    for key, value in node.items():
      if key in keys:
        continue
      if section == "head" and key == "out_dim":
        self.add("head.out_dim", value, "not used by a pretext task (the "
                 "task sets the number of classes); remove it",
                 unused=True)
        continue
      self.add(f"{section}.{key}", value,
               self._unknown(key, keys, prefix=section + "."))

  # -- values ----------------------------------------------------------------

  def run(self) -> list[Problem]:
    method = self.get("method", None)
    if method is None:
      self.add("method", _MISSING, "required; " + _choices("", METHODS))
    elif method not in METHODS:
      self.add("method", method, _choices(method, METHODS)
               + " (--config.method=...)")
    known = method in METHODS
    self.unknown_keys(method if known else None)
    self.common(method if known else None)
    if not known:
      return self.problems
    if method in ("simclr", "moco"):
      self.num_in("temperature", 0.0, low_open=True,
                  hint="the logits are divided by it; e.g. "
                  "--config.temperature=0.1")
      self.require("temperature", "e.g. --config.temperature=0.1 (> 0)")
      self.require("augment", "keyword arguments of ssljax.augment.simclr_view")
    if method in IMAGE_METHODS:
      self.require("head", "the projection/classifier head "
                   "(ssljax.models.ProjectionMLP arguments)")
      self.head(method)
      self.augment()
      self.image_encoder(method)
    if method == "simclr" and self.has("loss_block_size"):
      self.int_at_least("loss_block_size", 0,
                        "0 or None computes the full 2N x 2N logits")
    if method == "moco":
      self.moco()
    if method in ("jigsaw", "relpos"):
      self.pretext(method)
    if method == "inpainting":
      self.image_encoder(method)
      self.inpainting()
    if method in CPC_METHODS:
      self.cpc(method)
    if method in COLOR_METHODS:
      self.image_encoder(method)
      self.colorization()
    return self.problems

  def common(self, method: str | None) -> None:
    self.int_at_least("seed", 0, "e.g. --config.seed=0", optional=False)
    if self.check_dataset:
      self.dataset(method)
    if self.int_at_least("batch_size", 1, "e.g. --config.batch_size=256",
                         optional=False):
      b, d = self.get("batch_size"), self.device_count()
      if b % d:
        lower = (b // d) * d
        options = sorted({max(lower, d), lower + d})
        self.add("batch_size", b, f"does not divide over {d} devices (mesh "
                 f"axis 'data'): use a multiple of {d}, e.g. "
                 + " or ".join(f"--config.batch_size={o}" for o in options))
      if self.num_examples is not None and b > self.num_examples:
        self.add("batch_size", b, f"larger than the dataset "
                 f"({self.num_examples} examples): not one step per epoch; "
                 "use a smaller --config.batch_size")
    steps = self.get("num_steps", 0)
    steps_ok = True
    if self.has("num_steps"):
      steps_ok = self.int_at_least("num_steps", 0,
                                   "0 trains for num_epochs, > 0 overrides it")
    if steps_ok and not steps:
      epochs = self.get("num_epochs", None)
      if epochs is None:
        self.add("num_epochs", _MISSING, "required when num_steps is 0: set "
                 "--config.num_epochs=... (> 0) or --config.num_steps=...")
      else:
        self.num_in("num_epochs", 0.0, low_open=True,
                    hint="with num_steps 0 training runs num_epochs epochs; "
                    "set --config.num_epochs=... or --config.num_steps=...")
    self.int_at_least("log_every", 1, "e.g. --config.log_every=20",
                      optional=False)
    self.int_at_least("checkpoint_every", 1, "steps between checkpoints, e.g. "
                      "--config.checkpoint_every=1000", optional=False)
    self.int_at_least("keep_checkpoints", 1)
    self.choice("compute_dtype", COMPUTE_DTYPES)
    self.choice("nonfinite", NONFINITE)
    self.choice("data_source", DATA_SOURCES)
    self.input_stats()
    self.optimizer(steps if steps_ok else None)
    self.monitor()
    self.eval()
    self.online_probe()

  def dataset(self, method: str | None) -> None:
    name = self.get("dataset", None)
    if name is None:
      self.add("dataset", _MISSING, "required, e.g. --config.dataset=fashion_mnist")
      return
    if not isinstance(name, str) or not name:
      self.add("dataset", name, "must be a dataset name, e.g. "
               "--config.dataset=fashion_mnist")
      return
    if method == "cpc_sequence":
      if name not in SEQUENCE_DATASETS:
        self.add("dataset", name, "cpc_sequence trains on waveforms: "
                 + _choices(name, SEQUENCE_DATASETS))
      return
    if name in SEQUENCE_DATASETS:
      self.add("dataset", name, f"is audio; method {method!r} needs images "
               "(e.g. --config.dataset=fashion_mnist)")
      return
    source = self.get("data_source", "auto")
    if source == "local" and name not in LOCAL_DATASETS:
      self.add("dataset", name, f"has no local source (local: "
               f"{', '.join(LOCAL_DATASETS)}); set --config.data_source=auto "
               "or tfds")
      return
    if source == "tfds" and name == "digits":
      self.add("data_source", source, "'digits' comes from scikit-learn, not "
               "TFDS: set --config.data_source=auto")
      return
    builtin = sorted(set(self._builtin_datasets()))
    if name in builtin:
      return
    base = name.split(":")[0].split("/")[0]
    registry = self._tfds_names() if self.check_tfds else None
    if registry is None:
      if not self.check_tfds:
        return
      hint = _closest(name, builtin)
      self.add("dataset", name, "not a built-in dataset ("
               + ", ".join(builtin) + ") and TFDS is not installed "
               "(pip install tensorflow-datasets)"
               + (f"; did you mean {hint!r}?" if hint else ""))
      return
    if base not in registry:
      hint = _closest(name, builtin) or _closest(base, registry)
      self.add("dataset", name, "unknown dataset (neither built in nor a TFDS "
               "name)" + (f"; did you mean {hint!r}? (--config.dataset="
                          f"{hint})" if hint else
                          f"; built in: {', '.join(builtin)}"))

  @staticmethod
  def _builtin_datasets():
    from ssljax.data import sources  # pylint: disable=import-outside-toplevel
    return list(getattr(sources, "_INFO", {})) + list(LOCAL_DATASETS)

  @staticmethod
  def _tfds_names():
    try:
      import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
      return set(tfds.list_builders(with_community_datasets=False))
    except Exception:  # pylint: disable=broad-except
      return None

  def image_info(self):
    """``DatasetInfo`` of ``config.dataset`` when known without TFDS."""
    from ssljax.data import sources  # pylint: disable=import-outside-toplevel
    return getattr(sources, "_INFO", {}).get(self.get("dataset", None))

  def input_stats(self) -> None:
    has_mean, has_std = self.has("input_mean"), self.has("input_std")
    if has_mean != has_std:
      missing = "input_std" if has_mean else "input_mean"
      self.add(missing, _MISSING, "input_mean and input_std go together: set "
               "both (per-channel, [0, 1] units) or neither")
      return
    if not has_mean:
      return
    mean, std = self.get("input_mean"), self.get("input_std")
    ok = True
    if not _is_seq(mean) or not mean or not all(_is_num(m) for m in mean):
      self.add("input_mean", mean, "must be a tuple of per-channel means, "
               "e.g. (0.5,)")
      ok = False
    if not _is_seq(std) or not std or not all(_is_num(s) and s > 0 for s in std):
      self.add("input_std", std, "must be a tuple of per-channel stds > 0, "
               "e.g. (0.25,)")
      ok = False
    if ok and len(mean) != len(std):
      self.add("input_std", std, f"has {len(std)} channels but input_mean "
               f"has {len(mean)}: give one value per channel to both")
    info = self.image_info()
    if ok and info is not None and len(mean) not in (1, info.image_shape[-1]):
      self.add("input_mean", mean, f"{info.name} has {info.image_shape[-1]} "
               f"channels: give 1 or {info.image_shape[-1]} values")

  def optimizer(self, num_steps) -> None:
    if not self.require("optimizer", "e.g. name, base_lr, lr_scaling, "
                        "weight_decay, warmup_epochs"):
      return
    if not isinstance(self.get("optimizer"), Mapping):
      self.add("optimizer", self.get("optimizer"), "must be a ConfigDict")
      return
    self.choice("optimizer.name", OPTIMIZERS, required=True)
    if not self.has("optimizer.base_lr"):
      self.add("optimizer.base_lr", _MISSING, "required, e.g. "
               "--config.optimizer.base_lr=0.1")
    else:
      self.num_in("optimizer.base_lr", 0.0, hint="a learning rate cannot be "
                  "negative; e.g. --config.optimizer.base_lr=0.1")
    if not self.has("optimizer.weight_decay"):
      self.add("optimizer.weight_decay", _MISSING, "required (0.0 for none)")
    else:
      self.num_in("optimizer.weight_decay", 0.0, hint="weight decay cannot be "
                  "negative; e.g. --config.optimizer.weight_decay=1e-4")
    self.choice("optimizer.lr_scaling", LR_SCALING, required=True)
    if not self.has("optimizer.warmup_epochs"):
      self.add("optimizer.warmup_epochs", _MISSING, "required (0.0 for none)")
    else:
      self.num_in("optimizer.warmup_epochs", 0.0)
    self.num_in("optimizer.momentum", 0.0, 1.0)
    self.num_in("optimizer.trust_coefficient", 0.0, low_open=True)
    schedule = self.get("optimizer.schedule", "cosine")
    if self.choice("optimizer.schedule", SCHEDULES) and schedule == "step":
      warm = self.get("optimizer.warmup_epochs", 0)
      if _is_num(warm) and warm > 0:
        self.add("optimizer.warmup_epochs", warm, "schedule 'step' has no "
                 "warm-up: set --config.optimizer.warmup_epochs=0")
      decay = self.get("optimizer.decay_epochs", None)
      if (decay is None or not _is_seq(decay) or
          not all(_is_num(e) and e >= 0 for e in decay)):
        self.add("optimizer.decay_epochs", _MISSING if decay is None else decay,
                 "schedule 'step' needs the epochs where the lr drops, e.g. "
                 "(120, 160)")
      self.num_in("optimizer.decay_factor", 0.0, low_open=True)
    epochs, warm = self.get("num_epochs", None), self.get(
        "optimizer.warmup_epochs", None)
    if (num_steps == 0 and _is_num(epochs) and _is_num(warm) and epochs > 0
        and warm > epochs):
      self.add("optimizer.warmup_epochs", warm, f"longer than the run "
               f"(num_epochs={epochs}): the lr would never decay; use at most "
               f"--config.optimizer.warmup_epochs={epochs}")

  def monitor(self) -> None:
    mon = self.get("monitor", None)
    if mon is None:
      return
    if not isinstance(mon, Mapping):
      self.add("monitor", mon, "must be a ConfigDict (every, num_train, "
               "num_test, k, t, batch_size)")
      return
    if not self.has("monitor.every"):
      self.add("monitor.every", _MISSING, "required: steps between kNN "
               "evaluations (0 turns the monitor off)")
    else:
      self.int_at_least("monitor.every", 0)
    self.int_at_least("monitor.num_train", 1)
    self.int_at_least("monitor.num_test", 1)
    self.int_at_least("monitor.batch_size", 1)
    self.num_in("monitor.t", 0.0, low_open=True)
    if self.int_at_least("monitor.k", 1):
      k, n = self.get("monitor.k"), self.get("monitor.num_train", 5000)
      if _is_int(n) and k > n:
        self.add("monitor.k", k, f"more neighbours than bank images "
                 f"(monitor.num_train={n}); use --config.monitor.k<={n}")

  def online_probe(self) -> None:
    probe = self.get("online_probe", None)
    if probe is None:
      return
    if not isinstance(probe, Mapping):
      self.add("online_probe", probe, "must be a ConfigDict (lr, momentum, "
               "weight_decay, num_classes), e.g. ml_collections.ConfigDict("
               "dict(lr=0.1)), or None for no online probe")
      return
    self.num_in("online_probe.lr", 0.0, low_open=True)
    self.num_in("online_probe.momentum", 0.0, 1.0, high_open=True)
    self.num_in("online_probe.weight_decay", 0.0)
    self.int_at_least("online_probe.num_classes", 2,
                      "default: the dataset's number of classes")

  def eval(self) -> None:
    if not isinstance(self.get("eval", None), Mapping):
      return
    for key in ("knn_k", "linear_epochs", "linear_batch_size",
                "feature_batch_size", "step_accuracy_batches",
                "probe_train_examples", "probe_test_examples"):
      self.int_at_least(f"eval.{key}", 1)
    self.num_in("eval.knn_t", 0.0, low_open=True)
    self.num_in("eval.linear_lr", 0.0, low_open=True)
    wd = self.get("eval.linear_weight_decay", None)
    if _is_seq(wd):
      if not wd or not all(isinstance(v, (int, float)) and v >= 0 for v in wd):
        self.add("eval.linear_weight_decay", wd,
                 "a weight-decay grid must be non-empty and >= 0; e.g. "
                 "(1e-5, 1e-4, 1e-3)")
    else:
      self.num_in("eval.linear_weight_decay", 0.0)
    if self.has("eval.linear_solver") and self.get("eval.linear_solver") not in (
        "sgd", "lbfgs"):
      self.add("eval.linear_solver", self.get("eval.linear_solver"),
               "unknown linear-probe solver; use 'sgd' or 'lbfgs'")
    if self.has("eval.linear_l2") and self.get("eval.linear_l2") is not None:
      self.num_in("eval.linear_l2", 0.0)
    if self.has("eval.pools"):
      from ssljax.methods.cpc import FEATURE_POOLS  # pylint: disable=import-outside-toplevel
      pools = self.get("eval.pools")
      if not _is_seq(pools) or not all(p in FEATURE_POOLS for p in pools):
        self.add("eval.pools", pools, f"each must be one of {FEATURE_POOLS}")

  def head(self, method: str) -> None:
    if not isinstance(self.get("head", None), Mapping):
      return
    self.int_at_least("head.out_dim", 1)
    self.int_at_least("head.hidden_dim", 0, "0 or None = the encoder width")
    self.int_at_least("head.num_layers", 1)
    self.num_in("head.bn_momentum", 0.0, 1.0)
    self.boolean("head.use_bn")
    self.boolean("head.final_bn")

  def augment(self) -> None:
    if not isinstance(self.get("augment", None), Mapping):
      return
    self.pair("augment.area_range", low=0.0, high=1.0,
              example="(0.08, 1.0): crop areas are fractions in (0, 1]")
    self.pair("augment.aspect_range", low=0.0,
              example="(3/4, 4/3): aspect ratios are > 0")
    self.pair("augment.blur_sigma", low=0.0, example="(0.1, 2.0)")
    for p in ("jitter_p", "grayscale_p", "blur_p", "solarize_p"):
      self.prob(f"augment.{p}")
    self.num_in("augment.strength", 0.0)
    self.boolean("augment.flip")
    if self.has("augment.size"):
      size = self.get("augment.size")
      ok = (_is_int(size) and size >= 1) or (
          _is_seq(size) and len(size) == 2 and all(_is_int(s) and s >= 1
                                                   for s in size))
      if not ok:
        self.add("augment.size", size, "must be a positive int or (h, w) "
                 "pair (or None for the input size)")

  def image_encoder(self, method: str) -> None:
    if not self.require("encoder", "e.g. name='small_resnet'"):
      return
    names = sorted(_image_encoders())
    if not self.choice("encoder.name", names, required=True):
      return
    if self.has("encoder.widths"):
      name = self.get("encoder.name")
      stages = self.get("encoder.stage_sizes", None)
      if stages is None and name != "small_resnet":
        stages = (2, 2, 2, 2)           # every ResNet-18/34/50 has 4 stages
      n = len(stages) if _is_seq(stages) else (3 if stages is None else None)
      self.int_seq("encoder.widths", 1, n, f" (one per stage: {n})"
                   if n else "")
    self.int_seq("encoder.stage_sizes", 1)
    self.choice("encoder.stem", STEMS)
    self.int_at_least("encoder.stem_width", 1)
    self.int_at_least("encoder.first_stage_stride", 1)
    self.choice("encoder.conv_impl", ("xla", "matmul", "cpu", "onednn"))
    self.num_in("encoder.bn_momentum", 0.0, 1.0)

  def colorization(self) -> None:
    for key, hint in (("grid", "the ab bin spacing, e.g. 10"),
                      ("ab_range", "e.g. 110"),
                      ("sigma", "the soft-encoding width, e.g. 5"),
                      ("temperature", "the annealed-mean T, e.g. 0.38")):
      self.num_in(f"colorization.{key}", 0.0, low_open=True, hint=hint)
    self.num_in("colorization.rebalance_lambda", 0.0, 1.0,
                hint="0.5 in the paper; 1.0 turns rebalancing off")
    self.num_in("colorization.prior_sigma", 0.0)
    self.int_at_least("colorization.num_neighbors", 1)
    self.int_at_least("colorization.prior_images", 0)
    self.int_at_least("colorization.hidden_dim", 1)
    self.int_at_least("colorization.out_stride", 1)
    self.int_at_least("colorization.num_l_bins", 2)
    self.boolean("colorization.hypercolumn")
    self.boolean("colorization.flip")

  def moco(self) -> None:
    if not self.require("moco", "queue_size, momentum, ..."):
      return
    ok = self.int_at_least("moco.queue_size", 1, "MoCo's K, e.g. "
                           "--config.moco.queue_size=4096", optional=False)
    if not self.has("moco.momentum"):
      self.add("moco.momentum", _MISSING, "required: the key encoder's EMA "
               "momentum m, e.g. --config.moco.momentum=0.99")
    else:
      self.num_in("moco.momentum", 0.0, 1.0)
    self.choice("moco.momentum_schedule", MOMENTUM_SCHEDULES)
    self.boolean("moco.shuffle_bn")
    b = self.get("batch_size", None)
    if ok and _is_int(b) and b >= 1:
      from ssljax.methods.moco import check_queue_divides  # pylint: disable=import-outside-toplevel
      try:
        check_queue_divides(int(self.get("moco.queue_size")), int(b))
      except ValueError as e:
        self.add("moco.queue_size", self.get("moco.queue_size"), str(e))
    if self.int_at_least("moco.bn_splits", 1) and _is_int(b) and b >= 1:
      splits = self.get("moco.bn_splits")
      devices = self.device_count()
      if (devices == 1 and self.get("moco.shuffle_bn", True) and b % splits):
        self.add("moco.bn_splits", splits, f"must divide the batch size {b} "
                 "(the keys' BatchNorm runs on bn_splits equal sub-batches); "
                 "e.g. --config.moco.bn_splits=8")

  def pretext(self, method: str) -> None:
    if not self.require(method, f"the {method} task geometry"):
      return
    if not isinstance(self.get(method), Mapping):
      self.add(method, self.get(method), "must be a ConfigDict")
      return
    grid = self.get(f"{method}.grid", 3) if method == "jigsaw" else 3
    for key in ("grid", "cell", "tile", "size"):
      if method == "relpos" and key == "grid":
        continue
      self.int_at_least(f"{method}.{key}", 1)
    self.num_in(f"{method}.eps", 0.0, low_open=True)
    self.boolean(f"{method}.normalize")
    if method == "relpos":
      self.boolean("relpos.all_neighbors")
    from ssljax.methods.jigsaw import MAX_TILES  # pylint: disable=import-outside-toplevel
    if method == "jigsaw" and _is_int(grid) and grid >= 1:
      if grid * grid > MAX_TILES:
        self.add("jigsaw.grid", grid, f"gives {grid * grid} tiles; at most "
                 f"{MAX_TILES} are supported (grid <= 3)")
      elif self.has("jigsaw.num_permutations"):
        n = self.get("jigsaw.num_permutations")
        total = math.factorial(grid * grid)
        if not _is_int(n) or not 1 <= n <= total:
          self.add("jigsaw.num_permutations", n, f"must lie in [1, "
                   f"{grid * grid}! = {total}]; the paper uses 100 or 1000")
      self.int_at_least("jigsaw.permutation_seed", 0)
    cell = self.get(f"{method}.cell", 9)
    tile = self.get(f"{method}.tile", 7)
    if not all(_is_int(v) and v >= 1 for v in (grid, cell, tile)):
      return
    if tile > cell:
      self.add(f"{method}.tile", tile, f"must not exceed {method}.cell "
               f"({cell}): a tile is cut from inside its cell")
    size = self.get(f"{method}.size", None)
    info = self.image_info()
    side = size if _is_int(size) else (
        None if info is None or info.image_shape[0] is None
        else min(info.image_shape[:2]))
    if side is not None and grid * cell > side:
      self.add(f"{method}.cell", cell, f"a {grid}x{grid} lattice of "
               f"{cell}-pixel cells ({grid * cell} px) does not fit in "
               f"{side}x{side} images; use cell <= {side // grid} or a larger "
               f"--config.{method}.size")

  def inpainting(self) -> None:
    # pylint: disable=import-outside-toplevel
    from ssljax.augment.masks import MASK_KINDS
    from ssljax.methods.inpainting import ADVERSARIAL_INPUTS
    if self.has("inpainting") and not isinstance(self.get("inpainting"), Mapping):
      self.add("inpainting", self.get("inpainting"), "must be a ConfigDict")
      return
    self.choice("inpainting.mask", MASK_KINDS)
    self.num_in("inpainting.mask_size", 0.0, 1.0, low_open=True,
                hint="the centre hole's side as a fraction of the image side "
                "(the paper: 0.5)")
    self.num_in("inpainting.coverage", 0.0, 1.0, low_open=True,
                hint="the fraction of the image the random masks drop "
                "(the paper: 0.25)")
    self.int_at_least("inpainting.num_blocks", 1)
    self.pair("inpainting.block_size_range", low=0.0, high=1.0,
              example="(0.15, 0.35): block sides as fractions of the image side")
    self.int_at_least("inpainting.region_grid", 2)
    self.int_at_least("inpainting.border", 0)
    for key in ("border_weight", "rec_weight", "adv_weight"):
      self.num_in(f"inpainting.{key}", 0.0)
    self.choice("inpainting.adversarial_input", ADVERSARIAL_INPUTS)
    for section in ("decoder", "discriminator"):
      self.int_seq(f"{section}.widths", 1)
    self.num_in("decoder.bn_momentum", 0.0, 1.0)
    for key in ("b1", "b2"):
      self.num_in(f"optimizer.{key}", 0.0, 1.0, high_open=True,
                  hint="Adam's decay rates lie in [0, 1); the paper: b1=0.5")

  def cpc(self, method: str) -> None:
    modules = _cpc_modules(method)
    for section in ("encoder", "context"):
      if not self.require(section, f"the {method} {section} arguments"):
        continue
      names = list(modules[section])
      if self.has(f"{section}.name"):
        self.choice(f"{section}.name", names)
    if not self.require("cpc", "num_steps, negatives, ..."):
      return
    from ssljax.losses.cpc import NEGATIVE_MODES  # pylint: disable=import-outside-toplevel
    from ssljax.methods.cpc import FEATURE_POOLS  # pylint: disable=import-outside-toplevel
    self.int_at_least("cpc.num_steps", 1)
    if self.choice("cpc.negatives", NEGATIVE_MODES) and \
        self.get("cpc.negatives") == "sampled":
      self.int_at_least("cpc.num_negatives", 1, "negatives='sampled' draws "
                        "num_negatives candidates", optional=False)
    elif self.has("cpc.num_negatives"):
      self.int_at_least("cpc.num_negatives", 0)
    pools = FEATURE_POOLS if method == "cpc_sequence" else tuple(
        p for p in FEATURE_POOLS if p != "c_last")
    self.choice("cpc.pool", pools)
    for key in ("features", "num_blocks"):
      self.int_at_least(f"context.{key}", 1)
    if method == "cpc_sequence":
      self.num_in("cpc.input_scale", 0.0, low_open=True)
      n = None
      for key in ("features", "kernels", "strides"):
        if self.int_seq(f"encoder.{key}", 1):
          v = self.get(f"encoder.{key}")
          if n is not None and len(v) != n:
            self.add(f"encoder.{key}", v, f"needs one entry per layer ({n}, "
                     "as the other encoder tuples)")
          n = len(v) if n is None else n
      if self.require("data", "spoken_words arguments: repeats, seed, length, "
                      "test_fraction"):
        for key in ("repeats", "length"):
          self.int_at_least(f"data.{key}", 1, optional=False)
        self.int_at_least("data.seed", 0)
        self.num_in("data.test_fraction", 0.0, 1.0, low_open=True,
                    high_open=True)
      return
    # cpc_image
    ok = self.int_at_least("cpc.patch_size", 1)
    ok &= self.int_at_least("cpc.patch_stride", 1)
    self.int_at_least("cpc.pad", 0)
    self.int_at_least("cpc.skip", 0)
    self.boolean("cpc.flip")
    if self.int_seq("encoder.widths", 1) and self.int_seq("encoder.blocks", 0):
      w, b = self.get("encoder.widths"), self.get("encoder.blocks")
      if len(w) != len(b):
        self.add("encoder.blocks", b, f"needs one entry per width ({len(w)})")
    self.int_at_least("encoder.features", 1)
    info = self.image_info()
    if info is None or info.image_shape[0] is None:
      return
    p, s = self.get("cpc.patch_size", 8), self.get("cpc.patch_stride", 4)
    pad, skip = self.get("cpc.pad", 2), self.get("cpc.skip", 2)
    steps = self.get("cpc.num_steps", 3)
    if not all(_is_int(v) for v in (p, s, pad, skip, steps)) or min(p, s) < 1:
      return
    for side, name in zip(info.image_shape[:2], ("height", "width")):
      full = side + 2 * pad
      if full < p or (full - p) % s:
        self.add("cpc.patch_stride", s, f"{info.name} {name} {side} + 2*pad "
                 f"({full}) is not tiled by {p}-pixel patches at stride {s}: "
                 "need (size + 2*pad - patch_size) % patch_stride == 0")
        return
    rows = (info.image_shape[0] + 2 * pad - p) // s + 1
    if rows <= skip + steps:
      self.add("cpc.num_steps", steps, f"a grid of {rows} rows cannot hold "
               f"skip={skip} plus {steps} prediction steps; need skip + "
               f"num_steps < {rows}")


# ---------------------------------------------------------------------------
# Public API.


def _plain(config) -> dict:
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise TypeError(f"config must be an ml_collections.ConfigDict or a dict; "
                    f"got {type(config).__name__}.")

  def conv(x):
    if hasattr(x, "to_dict"):
      x = x.to_dict()
    if isinstance(x, Mapping):
      return {k: conv(v) for k, v in x.items()}
    return x
  return conv(config)


def config_problems(config, *, device_count: int | None = None,
                    num_examples: int | None = None,
                    check_dataset: bool = True,
                    check_tfds: bool = True) -> list[Problem]:
  """Every problem of ``config`` (empty if none), including the keys this
  method does not read (``Problem.unused``); see :func:`validate_config`."""
  return _Checker(_plain(config), device_count, num_examples, check_dataset,
                  check_tfds).run()


def validate_config(config, *, device_count: int | None = None,
                    num_examples: int | None = None,
                    check_dataset: bool = True, check_tfds: bool = True,
                    strict: bool = False) -> None:
  """Raise a :class:`ConfigError` listing every problem of ``config``.

  Call it before building or compiling anything.

  Args:
    config: an ``ml_collections.ConfigDict`` (or nested dict) as in
      ``experiments/configs``.
    device_count: devices the batch is sharded over (default
      ``jax.device_count()``, asked only when needed).
    num_examples: the training set size, when known (checks the batch fits).
    check_dataset: check ``config.dataset`` (False when the caller supplies
      the data itself, e.g. ``pretrain(config, dataset=ds)``).
    check_tfds: look a dataset name that is not built in up in TFDS's
      registry (imports ``tensorflow_datasets``, not TensorFlow). With False
      such names are accepted.
    strict: keys this method does not read (but another method or option
      does) are errors too; by default they are one :class:`ConfigWarning`.

  Raises:
    ConfigError: a ``ValueError`` whose message lists every problem, each
      with its key, the bad value and the fix; ``.problems`` holds them.
  """
  problems = config_problems(config, device_count=device_count,
                             num_examples=num_examples,
                             check_dataset=check_dataset,
                             check_tfds=check_tfds)
  errors = [p for p in problems if strict or not p.unused]
  unused = [p for p in problems if not strict and p.unused]
  if unused:
    warnings.warn(ConfigWarning(
        "config keys the method does not read:\n"
        + "\n".join(f"  - {p}" for p in unused)), stacklevel=2)
  if errors:
    raise ConfigError(errors)


def validate_images(images, *, expected_shape: Sequence[int | None] | None = None,
                    name: str = "images") -> None:
  """Raise a ValueError unless ``images`` is a host batch the methods take.

  Expected: rank 4 ``[B, H, W, C]``, ``B >= 1``, ``C`` in {1, 3}, dtype
  ``uint8`` or a float dtype with values in [0, 1]. The value range is
  checked for concrete arrays only (numpy, or jax arrays outside ``jit``);
  under ``jit`` only the shape and dtype are.

  Args:
    images: numpy or jax array.
    expected_shape: ``(H, W, C)`` or ``(B, H, W, C)``; ``None`` entries match
      any size.
    name: what to call the array in messages.
  """
  shape = getattr(images, "shape", None)
  dtype = getattr(images, "dtype", None)
  if shape is None or dtype is None:
    raise ValueError(f"{name} must be an array [B, H, W, C] of uint8 (or "
                     f"float in [0, 1]); got a {type(images).__name__}.")
  shape, dtype = tuple(shape), np.dtype(dtype)
  got = f"got shape {shape}, dtype {dtype}"
  if len(shape) != 4:
    if len(shape) == 3 and shape[-1] in (1, 3):
      hint = " (one image? add a batch axis: images[None])"
    elif len(shape) == 3:
      hint = " (grayscale without a channel axis? use images[..., None])"
    else:
      hint = ""
    raise ValueError(f"{name} must be a batch of rank 4 [B, H, W, C]; {got}"
                     f"{hint}.")
  if shape[-1] not in (1, 3):
    raise ValueError(f"{name} must have C in {{1, 3}} channels (last axis, "
                     f"[B, H, W, C]); {got}"
                     + (" (channels first? transpose to [B, H, W, C])"
                        if shape[1] in (1, 3) else "") + ".")
  if min(shape) < 1:
    raise ValueError(f"{name} must not be empty; {got}.")
  is_float = _is_float_dtype(dtype)
  if dtype != np.uint8 and not is_float:
    raise ValueError(f"{name} must be uint8 (or float in [0, 1]); {got}"
                     + ("; if the values are 0-255 use .astype(np.uint8)"
                        if np.issubdtype(dtype, np.integer) else "") + ".")
  if expected_shape is not None:
    expected = tuple(expected_shape)
    if len(expected) not in (3, 4):
      raise ValueError(f"expected_shape must be (H, W, C) or (B, H, W, C); "
                       f"got {expected}.")
    tail = shape[-len(expected):]
    if any(e is not None and e != s for e, s in zip(expected, tail)):
      want = ("[B, " + ", ".join("?" if e is None else str(e) for e in expected)
              + "]") if len(expected) == 3 else str(
                  tuple("?" if e is None else e for e in expected))
      raise ValueError(f"{name} must have shape {want}; {got}.")
  if is_float:
    lo_hi = _concrete_range(images)
    if lo_hi is not None:
      lo, hi = lo_hi
      if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} holds NaN or inf values; {got}.")
      if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float {name} must lie in [0, 1]; {got} with values in "
            f"[{lo:.4g}, {hi:.4g}]"
            + ("; 0-255 values: pass uint8 (.astype(np.uint8)) or divide by "
               "255" if hi > 1.0 and hi <= 255.0 and lo >= 0.0 else "") + ".")


def _is_float_dtype(dtype) -> bool:
  """float16/32/64 and the ml_dtypes floats (bfloat16, ...)."""
  if np.issubdtype(dtype, np.floating):
    return True
  try:
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  except ImportError:  # pragma: no cover
    return False
  return bool(jnp.issubdtype(dtype, jnp.floating))


def _concrete_range(images) -> tuple[float, float] | None:
  if isinstance(images, np.ndarray):
    if images.size == 0:
      return None
    return float(np.min(images)), float(np.max(images))
  try:
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  except ImportError:  # pragma: no cover
    return None
  if isinstance(images, jax.core.Tracer) or not isinstance(images, jax.Array):
    return None
  return float(jnp.min(images)), float(jnp.max(images))
