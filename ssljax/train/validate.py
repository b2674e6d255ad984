"""Config and input checks, before anything is compiled.

:func:`validate_config` builds the run from the config through a
:class:`ssljax.config.ConfigReader` (``ssljax.train.build``) and raises ONE
:class:`~ssljax.config.ConfigError` listing every problem::

    ConfigError: 2 problems in the config:
      - temperature = -0.1: must be > 0 (the logits are divided by it); e.g.
        0.1 (--config.temperature=...)
      - optimizer.weight_decy = 0.0001: unknown key; did you mean
        'optimizer.weight_decay'? (--config.optimizer.weight_decay=...)

Nothing here lists keys or values by hand, so it cannot drift from the code:

* value problems come from the constructors that read each section (their
  ``__post_init__`` checks, ``ssljax.config.check``);
* unknown keys are the keys no code read (with the closest key that was asked
  for at the same place);
* the normalization must have one value per image channel (or one for
  all): :func:`channel_problems` compares ``input_mean`` / ``input_std`` (or
  the dataset's known statistics) with the channels of the images, so a
  1-channel dataset with 3-value normalization is a config problem at
  ``input_mean`` before anything is traced;
* shape and geometry problems (a lattice that does not fit the images, a
  colour-only method on grayscale images, ...) come from ``jax.eval_shape``
  of the method's ``init`` and ``train_step`` on an abstract global uint8
  batch: traced, not compiled;
* the few rules across sections are the table :data:`CROSS_FIELD_RULES`.

:func:`validate_images` checks a host batch: uint8 (or float in [0, 1]),
``[B, H, W, C]`` with ``C`` in {1, 3}.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.config import ConfigError, ConfigReader, Problem
from ssljax.data.sources import KNOWN_DATASETS
from ssljax.train.build import build_run

__all__ = ["CROSS_FIELD_RULES", "ConfigError", "Problem", "channel_problems",
           "checked_run", "config_problems", "run_problems", "shape_problems",
           "validate_config", "validate_images"]


def _nearest_multiples(value: int, of: int) -> str:
  lower = (value // of) * of
  return " or ".join(f"--config.batch_size={o}"
                     for o in sorted({max(lower, of), lower + of}))


#: ``(key, applies(run, ctx), message(run, ctx))``: the rules that span
#: sections or need the machine (``ctx``: ``devices``, ``num_examples``).
CROSS_FIELD_RULES: tuple[tuple[str, Callable, Callable], ...] = (
    ("batch_size", lambda r, c: r.batch_size % c["devices"] != 0,
     lambda r, c: f"does not divide over {c['devices']} devices (mesh axis "
     f"'data'): use a multiple of {c['devices']}, e.g. "
     + _nearest_multiples(r.batch_size, c["devices"])),
    ("batch_size", lambda r, c: c["num_examples"] is not None
     and r.batch_size > c["num_examples"],
     lambda r, c: f"larger than the dataset ({c['num_examples']} examples): "
     "not one step per epoch; use a smaller --config.batch_size"),
    ("optimizer.warmup_epochs", lambda r, c: not r.num_steps
     and c["warmup_epochs"] > r.num_epochs,
     lambda r, c: f"longer than the run (num_epochs={r.num_epochs}): the lr "
     f"would never decay; use at most --config.optimizer.warmup_epochs="
     f"{r.num_epochs}"),
)


def channel_problems(run, spec) -> list[Problem]:
  """A problem if the normalization's values do not match the images'
  channels: ``input_mean`` / ``input_std`` (or, when unset, the dataset's
  known statistics) need 1 value (for every channel) or one per channel.

  Checked only where the images' channels are known: a loaded dataset
  (``spec.dataset``) or a dataset of the built-in table. Inputs that are not
  images (waveforms ``(L,)``) are skipped.

  Args:
    run: The run's :class:`ssljax.train.build.RunConfig`.
    spec: Its :class:`ssljax.methods.DataSpec`.

  Returns:
    ``[]``, or one :class:`Problem` at ``input_mean`` (set in the config) or
    ``dataset`` (its known statistics).
  """
  shape = tuple(spec.input_shape)
  if len(shape) < 3 or not isinstance(shape[-1], int):
    return []
  if spec.dataset is None and run.dataset not in KNOWN_DATASETS:
    return []              # channels unknown until the data is loaded
  if (run.input_mean is None) != (run.input_std is None):
    return []              # RunConfig's own check reports input_std
  channels = shape[-1]
  counts = {len(spec.mean), len(spec.std)}
  if counts <= {1, channels}:
    return []
  n = "/".join(str(c) for c in sorted(counts))
  plural = "s" if channels != 1 else ""
  allowed = "1 value" if channels == 1 else f"1 or {channels} values"
  example = "(" + ", ".join(["0.5"] * channels) + ("," if channels == 1
                                                    else "") + ")"
  found = (f"the images of {run.dataset!r} have {channels} channel{plural} "
           f"(shape {shape})")
  own = "the dataset's own: ssljax.data.channel_stats(dataset)"
  if run.input_mean is not None:
    return [Problem(
        "input_mean", tuple(run.input_mean),
        f"input_mean and input_std have {n} values, but {found}: give each "
        f"{allowed}, e.g. --config.input_mean='{example}' "
        f"--config.input_std='{example}' ({own})")]
  return [Problem(
      "dataset", run.dataset,
      f"its known statistics have {n} values, but {found}: set "
      f"input_mean and input_std in the config file, {allowed} each, e.g. "
      f"config.input_mean = {example} and config.input_std = {example} "
      f"({own})")]


def shape_problems(method, spec) -> list[Problem]:
  """A problem if ``method.init`` / ``method.train_step`` cannot trace on an
  abstract global batch of ``spec`` (``jax.eval_shape``: nothing runs)."""
  if method is None or any(d is None for d in spec.input_shape):
    return []
  key = jax.random.key(0)
  batch = jax.ShapeDtypeStruct((spec.batch_size, *spec.input_shape),
                               jnp.dtype(spec.dtype))
  if getattr(method, "takes_labels", False):
    batch = {"image": batch,
             "label": jax.ShapeDtypeStruct((spec.batch_size,), jnp.int32)}
  try:
    state = jax.eval_shape(lambda k: method.init(k, spec.input_shape), key)
    jax.eval_shape(method.train_step, state, batch, key)
  except Exception as e:  # pylint: disable=broad-except
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return [Problem("method", getattr(method, "name", type(method).__name__),
                    f"its train step cannot run on batches "
                    f"{tuple(batch['image'].shape if isinstance(batch, dict) else batch.shape)} "
                    f"{spec.dtype} of {spec.name}: {type(e).__name__}: {text}")]
  return []


def config_problems(config, *, device_count: int | None = None,
                    num_examples: int | None = None, dataset=None,
                    check_shapes: bool = True) -> list[Problem]:
  """Every problem of ``config`` (empty if none); see :func:`validate_config`."""
  reader = ConfigReader(config)
  data = dataset if dataset is not None else (num_examples or 60000)
  run, method, spec = build_run(reader, data)
  return run_problems(reader, run, method, spec, device_count=device_count,
                      num_examples=len(dataset) if dataset is not None
                      else num_examples, check_shapes=check_shapes)


def run_problems(reader: ConfigReader, run, method, spec, *,
                 device_count: int | None = None,
                 num_examples: int | None = None,
                 check_shapes: bool = True) -> list[Problem]:
  """The problems of a run built by ``ssljax.train.build.build_run(reader,
  ...)``: value problems, unknown keys, :data:`CROSS_FIELD_RULES`,
  :func:`channel_problems` and (when there is no other problem)
  :func:`shape_problems`."""
  # Unknown keys only once a method could be built (else every key of its
  # sections would be unread).
  problems = (reader.all_problems() if method is not None
              else list(reader.problems))
  if run is not None:
    optimizer = reader.get("optimizer")
    warmup = optimizer.get("warmup_epochs", 0.0) if optimizer else 0.0
    ctx = {"devices": device_count or jax.device_count(),
           "num_examples": num_examples,
           "warmup_epochs": warmup if isinstance(warmup, (int, float)) else 0}
    for key, applies, message in CROSS_FIELD_RULES:
      try:
        bad = applies(run, ctx)
      except (TypeError, ValueError):
        bad = False
      if bad:
        value = (ctx["warmup_epochs"] if key.startswith("optimizer.")
                 else getattr(run, key))
        problems.append(Problem(key, value, message(run, ctx)))
    problems += channel_problems(run, spec)
  if check_shapes and not problems:
    problems += shape_problems(method, spec)
  return problems


def checked_run(config, dataset, *, device_count: int | None = None):
  """``(method, DataSpec)`` of ``config`` on the loaded ``dataset``, after
  every check (:func:`run_problems`, shapes included); raises one
  :class:`ConfigError` otherwise. What the training loop calls."""
  reader = ConfigReader(config)
  run, method, spec = build_run(reader, dataset)
  problems = run_problems(reader, run, method, spec, device_count=device_count,
                          num_examples=len(dataset))
  if problems:
    raise ConfigError(problems)
  return method, spec


def validate_config(config, *, device_count: int | None = None,
                    num_examples: int | None = None, dataset=None,
                    check_shapes: bool = True) -> None:
  """Raise a :class:`ConfigError` listing every problem of ``config``.

  Args:
    config: an ``ml_collections.ConfigDict`` (or nested dict).
    device_count: devices the batch is sharded over (default
      ``jax.device_count()``).
    num_examples / dataset: the training data, when known (its size and
      shape; otherwise the dataset's known facts).
    check_shapes: trace ``init`` and ``train_step`` (:func:`shape_problems`).
  """
  problems = config_problems(config, device_count=device_count,
                             num_examples=num_examples, dataset=dataset,
                             check_shapes=check_shapes)
  if problems:
    raise ConfigError(problems)


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
