"""Exponential moving averages of network weights (momentum / EMA teachers).

Used by every method with a slowly moving copy of the online network: MoCo's
key encoder (He et al. 2020, eq. 2), BYOL's target network (Grill et al.
2020), DINO's teacher. The target is a pytree with the same structure as the
online tree (parameters, and BatchNorm statistics where a method averages
them too)::

    target = ema_update(target, online, momentum)       # m * target + (1 - m) * online
    m = momentum_schedule(0.996, total_steps)(step)     # BYOL / MoCo v3 cosine ramp to 1
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def ema_update(target: Any, online: Any, momentum: float | jax.Array) -> Any:
  """``momentum * target + (1 - momentum) * online``, leaf by leaf.

  MoCo's momentum update ``theta_k <- m theta_k + (1 - m) theta_q`` (He et al.
  2020, eq. 2) and BYOL's ``xi <- tau xi + (1 - tau) theta``.

  Args:
    target: the slow pytree (key encoder / target network).
    online: a pytree of the same structure and shapes (the trained network).
    momentum: scalar m in [0, 1] (a Python float or a traced scalar); m = 1
      keeps ``target``, m = 0 copies ``online``.

  Returns:
    The new target, each leaf in the target leaf's dtype.
  """
  t_struct = jax.tree.structure(target)
  o_struct = jax.tree.structure(online)
  if t_struct != o_struct:
    raise ValueError(f"ema_update: target and online trees differ: {t_struct} "
                     f"vs {o_struct}.")
  m = jnp.asarray(momentum, jnp.float32)

  def one(t, o):
    if jnp.shape(t) != jnp.shape(o):
      raise ValueError(f"ema_update: leaf shapes differ: {jnp.shape(t)} vs "
                       f"{jnp.shape(o)}.")
    return (m * t + (1.0 - m) * o).astype(jnp.result_type(t))

  return jax.tree.map(one, target, online)


def momentum_schedule(base: float, total_steps: int
                      ) -> Callable[[jax.Array], jax.Array]:
  """Cosine increase of the EMA momentum from ``base`` to 1.

  ``m(k) = 1 - (1 - base) * (cos(pi * k / K) + 1) / 2`` for step k of K total
  steps (clipped to [0, K]); BYOL (Grill et al. 2020, sec. 3.2) and MoCo v3.
  ``m(0) = base``, ``m(K/2) = (1 + base) / 2``, ``m(K) = 1``.
  """
  if not 0.0 <= base <= 1.0:
    raise ValueError(f"base momentum must lie in [0, 1]; got {base}.")
  if total_steps <= 0:
    raise ValueError(f"total_steps must be positive; got {total_steps}.")

  def schedule(step):
    k = jnp.clip(jnp.asarray(step, jnp.float32), 0.0, float(total_steps))
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * k / total_steps) + 1.0) / 2.0

  return schedule


def constant_momentum(value: float) -> Callable[[jax.Array], jax.Array]:
  """A schedule that returns ``value`` at every step."""
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"momentum must lie in [0, 1]; got {value}.")
  return lambda step: jnp.asarray(value, jnp.float32)
