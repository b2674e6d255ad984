"""Optimizers, parameter masks, learning-rate schedules and scaling rules.

SimCLR (Chen et al. 2020, appendix B.1): LARS with momentum 0.9 and trust
coefficient (eeta) 1e-3, weight decay 1e-6, both the weight decay and the LARS
adaptation skipped for biases and BatchNorm parameters; linear warm-up for 10
epochs then cosine decay without restarts; learning rate ``0.3 * B / 256``
(linear rule) or ``0.075 * sqrt(B)`` (square-root rule).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from ssljax.config import check

OPTIMIZERS = ("lars", "sgd", "adamw")
SCHEDULES = ("cosine", "step")
LR_SCALING = ("linear", "sqrt", "none")


def scale_learning_rate(base_lr: float, batch_size: int, rule: str = "linear"
                        ) -> float:
  """``base_lr * B / 256`` (``"linear"``), ``base_lr * sqrt(B)`` (``"sqrt"``),
  or ``base_lr`` unchanged (``"none"``)."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive; got {batch_size}.")
  if rule == "linear":
    return base_lr * batch_size / 256.0
  if rule == "sqrt":
    return base_lr * math.sqrt(batch_size)
  if rule == "none":
    return base_lr
  raise ValueError(f"lr scaling rule must be 'linear', 'sqrt' or 'none'; got "
                   f"{rule!r}.")


def warmup_cosine_schedule(peak_lr: float, total_steps: int, warmup_steps: int,
                           end_lr: float = 0.0) -> optax.Schedule:
  """Linear warm-up from 0 to ``peak_lr`` over ``warmup_steps``, then cosine
  decay to ``end_lr`` at ``total_steps``."""
  if total_steps <= 0:
    raise ValueError(f"total_steps must be positive; got {total_steps}.")
  if not 0 <= warmup_steps <= total_steps:
    raise ValueError(f"warmup_steps ({warmup_steps}) must lie in "
                     f"[0, total_steps={total_steps}].")
  if warmup_steps == total_steps:
    return optax.linear_schedule(0.0, peak_lr, warmup_steps)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=end_lr)


def _path_names(path) -> list[str]:
  names = []
  for k in path:
    names.append(str(getattr(k, "key", getattr(k, "name", k))))
  return names


def weight_decay_mask(params: Any) -> Any:
  """True for weights that get weight decay / LARS adaptation.

  Excluded (False): biases and every BatchNorm parameter (``scale``/``bias``),
  i.e. every parameter with fewer than two dimensions, as in SimCLR's and
  BYOL's LARS set-up.
  """
  def keep(path, x):
    names = _path_names(path)
    if names and names[-1] in ("bias", "scale"):
      return False
    return x.ndim > 1
  return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(name: str, learning_rate: float | optax.Schedule, *,
                   weight_decay: float = 0.0, momentum: float = 0.9,
                   trust_coefficient: float = 1e-3, b1: float = 0.9,
                   b2: float = 0.999, mask: Callable | None = weight_decay_mask
                   ) -> optax.GradientTransformation:
  """``"lars"`` (optax.lars), ``"sgd"`` (momentum SGD + decoupled L2 on
  weights) or ``"adamw"``; ``mask`` selects the weights that are decayed
  (and LARS-adapted)."""
  mask = mask if mask is not None else True
  if name == "lars":
    return optax.lars(learning_rate, weight_decay=weight_decay,
                      weight_decay_mask=mask, trust_coefficient=trust_coefficient,
                      trust_ratio_mask=mask, momentum=momentum)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay, mask),
                       optax.sgd(learning_rate, momentum=momentum))
  if name == "adamw":
    return optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay,
                       mask=mask)
  raise ValueError(f"optimizer must be 'lars', 'sgd' or 'adamw'; got {name!r}.")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """``config.optimizer``: the optimizer and its learning-rate schedule.

  ``base_lr`` is scaled by ``lr_scaling`` (:func:`scale_learning_rate`);
  ``schedule="cosine"``: linear warm-up for ``warmup_epochs`` then cosine
  decay to 0; ``"step"``: constant, times ``decay_factor`` at each of
  ``decay_epochs`` (MoCo v1; no warm-up). ``momentum`` / ``trust_coefficient``
  (LARS, SGD) and ``b1`` / ``b2`` (Adam) go to :func:`make_optimizer`.
  """
  name: str = "lars"
  base_lr: float = 0.3
  lr_scaling: str = "linear"
  weight_decay: float = 0.0
  warmup_epochs: float = 0.0
  momentum: float = 0.9
  trust_coefficient: float = 1e-3
  schedule: str = "cosine"
  decay_epochs: tuple[float, ...] = ()
  decay_factor: float = 0.1
  b1: float = 0.9
  b2: float = 0.999
  fixed_lr: tuple[str, ...] = ()

  def __post_init__(self):
    num = lambda lo, hi=math.inf: (lambda v: lo <= v <= hi)
    check(self,
          ("name", lambda n: n in OPTIMIZERS, f"must be one of {OPTIMIZERS}"),
          ("base_lr", num(0.0), "a learning rate is >= 0, e.g. 0.3"),
          ("lr_scaling", lambda r: r in LR_SCALING,
           f"must be one of {LR_SCALING}"),
          ("weight_decay", num(0.0), "must be >= 0 (0.0 for none)"),
          ("warmup_epochs", lambda w: w >= 0 and (
              w == 0 or self.schedule != "step"),
           "must be >= 0, and 0 with schedule 'step' (it has no warm-up)"),
          ("momentum", num(0.0, 1.0), "must lie in [0, 1]"),
          ("trust_coefficient", lambda t: t > 0, "must be > 0 (LARS eeta)"),
          ("schedule", lambda s: s in SCHEDULES, f"must be one of {SCHEDULES}"),
          ("decay_epochs", lambda d: all(e >= 0 for e in d),
           "epochs where the lr drops, e.g. (120, 160)"),
          ("decay_factor", lambda f: f > 0, "must be > 0"),
          ("b1", lambda b: 0 <= b < 1, "Adam's decay rates lie in [0, 1)"),
          ("b2", lambda b: 0 <= b < 1, "Adam's decay rates lie in [0, 1)"),
          ("fixed_lr", lambda g: all(isinstance(n, str) and n for n in g),
           "names of top-level parameter groups, e.g. ('predictor',)"))

  def make(self, *, steps: int, batch_size: int, num_examples: int
           ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """``(tx, schedule)`` for a run of ``steps`` steps of ``batch_size``."""
    peak = scale_learning_rate(self.base_lr, batch_size, self.lr_scaling)
    per_epoch = max(1, num_examples // batch_size)
    if self.schedule == "step":
      schedule = optax.piecewise_constant_schedule(
          peak, {int(round(e * per_epoch)): self.decay_factor
                 for e in self.decay_epochs})
    else:
      warmup = min(int(round(self.warmup_epochs * per_epoch)), steps)
      schedule = warmup_cosine_schedule(peak, max(steps, 1), warmup)
    kw = dict(weight_decay=self.weight_decay, momentum=self.momentum,
              trust_coefficient=self.trust_coefficient, b1=self.b1, b2=self.b2)
    tx = make_optimizer(self.name, schedule, **kw)
    if self.fixed_lr:
      tx = optax.multi_transform(
          {"scheduled": tx, "fixed": make_optimizer(self.name, peak, **kw)},
          fixed_lr_labels(self.fixed_lr))
    return tx, schedule


def fixed_lr_labels(groups: tuple[str, ...]) -> Callable[[Any], Any]:
  """``optax.multi_transform``'s labels: ``"fixed"`` for every parameter
  under a top-level key in ``groups``, ``"scheduled"`` for the rest. A group
  that the parameters do not have is an error (a misspelt name would
  silently train on the schedule)."""
  def labels(params):
    if not isinstance(params, Mapping):
      raise ValueError(f"optimizer.fixed_lr={groups} needs parameters "
                       f"grouped by name; got {type(params).__name__}.")
    missing = [g for g in groups if g not in params]
    if missing:
      raise ValueError(f"optimizer.fixed_lr names {missing}, which the "
                       f"method's parameters do not have (they have "
                       f"{sorted(params)}); e.g. ('predictor',) for SimSiam.")
    return {k: jax.tree.map(lambda _, k=k: "fixed" if k in groups
                            else "scheduled", v) for k, v in params.items()}
  return labels
