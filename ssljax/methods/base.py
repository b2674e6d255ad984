"""The method contract: what every self-supervised method is and provides.

A method is a frozen dataclass, registered by name, with

* ``from_config(config, *, tx, schedule, data)`` (classmethod): the method of
  a config, read through a :class:`ssljax.config.ConfigReader`; its config
  section maps one-to-one onto its fields (:func:`ssljax.config.build`) and
  its value checks live in ``__post_init__`` (:func:`ssljax.config.check`);
* ``init(key, input_shape) -> state``: a pytree (``TrainState`` or a
  subclass-like ``flax.struct.dataclass`` with ``step``, ``params``,
  ``batch_stats``, ``opt_state`` and what the method adds);
* ``train_step(state, batch, key) -> (state, metrics)``: pure, one global
  uint8 batch; its randomness is ``fold_in(key, state.step)`` (:func:`step_key`)
  so a resumed run draws what an uninterrupted one would; jit it with the
  state donated. It ends in :func:`apply_gradients`;
* ``encode(variables_or_state, images) -> [N, F]``: frozen features for
  evaluation.

``takes_labels = True`` (a class attribute) makes the training loop pass the
batch dict ``{"image", "label"}`` instead of the images.

Adding a method = one module that defines the class with ``@register("name")``
plus one config file (``docs/adding_a_method.md``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax.augment import normalize_images, to_float
from ssljax.config import ConfigReader, build, field_names
from ssljax.models import ENCODERS, ProjectionMLP

__all__ = ["COMPUTE_DTYPES", "DataSpec", "build_encoder", "build_head",
           "compute_dtype", "METHODS", "Method", "TrainState", "apply_gradients",
           "encoder_variables", "frozen_features", "get_method", "loss_step", "register",
           "step_key", "train_state"]


@flax.struct.dataclass
class TrainState:
  """The state of a method that needs nothing more: ``step`` (int32
  scalar), ``params``, ``batch_stats`` (BatchNorm running statistics, ``{}``
  without BN) and ``opt_state``."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def train_state(variables: Mapping, tx: optax.GradientTransformation
                ) -> TrainState:
  """The step-0 :class:`TrainState` of Flax ``variables`` under ``tx``."""
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params))


def step_key(key: jax.Array, state) -> jax.Array:
  """This step's randomness: ``fold_in(key, state.step)``."""
  return jax.random.fold_in(key, state.step)


def apply_gradients(state, grads, *, tx: optax.GradientTransformation,
                    metrics: Mapping[str, jax.Array],
                    schedule: Callable | None = None, **changes):
  """One optimizer update of ``state.params``: ``(new_state, metrics)``.

  ``tx.update`` + ``optax.apply_updates``; ``step`` advances by one;
  ``changes`` (new ``batch_stats``, a MoCo queue, ...) replace fields of the
  state; ``metrics`` gain ``lr`` (the schedule at this step) when
  ``schedule`` is given. The last line of every train step.
  """
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics)
  if schedule is not None:
    metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
  return state.replace(step=state.step + 1, params=params,
                       opt_state=opt_state, **changes), metrics


def loss_step(method, state, *inputs,
              metrics: Callable[[jax.Array, Any], Mapping] | None = None,
              **changes):
  """The step of a method with one loss: the gradient of
  ``method.loss(state.params, state.batch_stats, *inputs) -> (loss,
  (batch_stats, aux))``, then :func:`apply_gradients` with ``method.tx`` and
  ``method.schedule``. Metrics: ``metrics(loss, aux)``, by default
  ``{"loss": loss, **aux}`` (``aux`` a dict of scalars)."""
  (loss, (batch_stats, aux)), grads = jax.value_and_grad(
      method.loss, has_aux=True)(state.params, state.batch_stats, *inputs)
  values = metrics(loss, aux) if metrics is not None else {"loss": loss, **aux}
  return apply_gradients(state, grads, tx=method.tx, metrics=values,
                         schedule=method.schedule, batch_stats=batch_stats,
                         **changes)


def encoder_variables(variables_or_state) -> dict:
  """Flax variables (``params``, ``batch_stats``) of a method state, or the
  variables dict itself."""
  if isinstance(variables_or_state, Mapping):
    return variables_or_state
  return {"params": variables_or_state.params,
          "batch_stats": getattr(variables_or_state, "batch_stats", {})}


def frozen_features(model: nn.Module, mean: Sequence[float],
                    std: Sequence[float], variables_or_state,
                    images: jax.Array) -> jax.Array:
  """``model.encode`` features of uint8 or [0,1] float images, normalized with
  ``mean``/``std``, BatchNorm in inference mode."""
  x = normalize_images(to_float(images), mean, std)
  return model.apply(encoder_variables(variables_or_state), x, train=False,
                     method=type(model).encode)


@dataclasses.dataclass(frozen=True)
class DataSpec:  # pylint: disable=too-many-instance-attributes
  """What a method may know of its training data when it is built.

  ``input_shape``: one example (``(H, W, C)`` images, ``(T, H, W, C)`` clips,
  ``(L,)`` waveforms); ``dtype`` of the batches; ``mean`` / ``std``:
  per-channel input normalization; ``num_classes`` (0 if unlabelled).
  """
  name: str
  num_examples: int
  input_shape: tuple[int, ...]
  dtype: str = "uint8"
  mean: tuple[float, ...] = (0.5,)
  std: tuple[float, ...] = (0.5,)
  num_classes: int = 0
  batch_size: int = 0
  num_steps: int = 0
  #: The loaded training set (None when only checking a config): for
  #: constants a method derives from its data (e.g. a colour prior).
  dataset: Any = dataclasses.field(default=None, compare=False, repr=False)


@runtime_checkable
class Method(Protocol):
  """The contract (module docstring). Method classes subclass it (for
  ``takes_labels`` and ``name``) and are frozen dataclasses."""
  name: ClassVar[str] = ""
  #: True: ``train_step`` takes the batch dict ``{"image", "label"}``.
  takes_labels: ClassVar[bool] = False

  @classmethod
  def from_config(cls, config, *, tx, schedule, data: DataSpec) -> "Method":
    ...

  def init(self, key: jax.Array, input_shape: Sequence[int]) -> Any:
    ...

  def train_step(self, state, batch, key: jax.Array) -> tuple[Any, dict]:
    ...

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    ...


#: name -> method class, filled by :func:`register`.
METHODS: dict[str, type] = {}

def register(name: str) -> Callable[[type], type]:
  """Class decorator: register a method class under ``name``."""
  def decorate(cls: type) -> type:
    missing = [m for m in ("from_config", "init", "train_step", "encode")
               if not callable(getattr(cls, m, None))]
    if Method not in cls.__mro__ or not dataclasses.is_dataclass(cls):
      missing.append("a frozen dataclass subclassing ssljax.methods.Method")
    if missing:
      raise TypeError(f"method {name!r} ({cls.__name__}) lacks "
                      f"{', '.join(missing)} (see ssljax.methods.base).")
    old = METHODS.get(name, cls)
    if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
      raise ValueError(f"method name {name!r} is already registered to "
                       f"{METHODS[name].__name__}.")
    cls.name = name
    METHODS[name] = cls
    return cls
  return decorate


def get_method(name: str) -> type:
  """The method class registered as ``name`` (a ValueError naming the
  closest registered name otherwise). The shipped methods register when
  ``ssljax.methods`` is imported; a method whose module is named after it
  (``ssljax.methods.<name>``) is imported on first use, so a new method needs
  no other file."""
  if name not in METHODS and isinstance(name, str) and name.isidentifier():
    try:
      importlib.import_module(f"ssljax.methods.{name}")
    except ModuleNotFoundError as e:
      if e.name != f"ssljax.methods.{name}":
        raise
  if name not in METHODS:
    hint = difflib.get_close_matches(str(name), sorted(METHODS), n=1)
    raise ValueError(f"unknown method {name!r}"
                     + (f"; did you mean {hint[0]!r}?" if hint else "")
                     + f" (registered: {', '.join(sorted(METHODS))}).")
  return METHODS[name]


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def compute_dtype(config: ConfigReader):
  """``config.compute_dtype`` ("float32" default, or "bfloat16"): the dtype of
  activations and matmuls; parameters, BN statistics and losses stay
  float32."""
  name = config.get("compute_dtype", "float32") or "float32"
  if name not in COMPUTE_DTYPES:
    config.problem("compute_dtype", name, f"must be one of {COMPUTE_DTYPES}")
    name = "float32"
  return jnp.dtype(name)


def build_encoder(config: ConfigReader, registry: Mapping[str, type] = ENCODERS,
                  **fixed) -> nn.Module:
  """The encoder of ``config.encoder``: ``name`` picks a class of
  ``registry`` (default :data:`ssljax.models.ENCODERS`), the other keys are
  its fields; ``dtype`` defaults to :func:`compute_dtype`."""
  section = config.get("encoder")
  if section is None:
    config.problem("encoder", None, "required: e.g. --config.encoder.name="
                   f"{next(iter(registry))}")
    section = ConfigReader({})
  name = section.get("name", next(iter(registry)))
  if name not in registry:
    hint = difflib.get_close_matches(str(name), list(registry), n=1)
    section.problem("name", name, (f"did you mean {hint[0]!r}? " if hint
                                   else "") + f"choose one of {list(registry)}")
    # Go on with the first encoder and its defaults: the other keys of the
    # section belong to the unknown name, so they are not checked.
    section.to_dict()
    section, name = ConfigReader({}), next(iter(registry))
  cls = registry[name]
  if "dtype" not in section and "dtype" in field_names(cls):
    dtype = compute_dtype(config)
    if dtype != jnp.float32:
      fixed.setdefault("dtype", dtype)
  return build(cls, section, **fixed)


def build_head(config: ConfigReader, **fixed) -> nn.Module:
  """``ProjectionMLP`` of ``config.head`` in the compute dtype."""
  return build(ProjectionMLP, config.get("head"),
               **{"dtype": compute_dtype(config), **fixed})
