"""The convolution a ResNet runs, by name: a small registry.

:data:`CONV_IMPLS` maps a name to a function with ``lax.conv_general_dilated``'s
signature (what ``flax.linen.Conv(conv_general_dilated=...)`` takes). ssljax
ships ``"xla"`` (``lax.conv_general_dilated``: cuDNN on GPU, XLA's own on
TPU and CPU); optional layers add theirs with :func:`register_conv_impl`.
The opt-in CPU layer does (``import ssljax.cpu.conv``, which the entry points'
start-up line does): ``"matmul"``, ``"cpu"`` and ``"onednn"``, faster on
XLA:CPU and the same values up to float rounding.

``"auto"`` (:func:`resolve_conv_impl`) is ``"xla"`` on GPU and TPU; on the CPU
platform it is the registered implementation with the highest ``cpu_rank``
whose ``available()`` holds (``"onednn"`` where its kernels build, else
``"cpu"``, once ``ssljax.cpu`` is imported; ``"xla"`` otherwise). Shipped
configs say ``"auto"``, so they run unchanged on every platform.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
from jax import lax

#: ``ResNet.conv_impl`` names -> convolution functions (see the module docstring).
CONV_IMPLS: dict[str, Callable] = {"xla": lax.conv_general_dilated}
#: The name resolved per platform by :func:`resolve_conv_impl`.
AUTO = "auto"
# name -> (cpu_rank, available or None): the candidates of "auto" on CPU.
_CPU_CANDIDATES: dict[str, tuple[int, Optional[Callable[[], bool]]]] = {
    "xla": (0, None)}


def register_conv_impl(name: str, fn: Callable, *, cpu_rank: Optional[int] = None,
                       available: Optional[Callable[[], bool]] = None) -> None:
  """Make ``fn`` (``lax.conv_general_dilated``'s signature) selectable as
  ``ResNet(conv_impl=name)``.

  Args:
    name: the config-facing name (not ``"auto"``); registering it again
      replaces the earlier function.
    fn: the convolution.
    cpu_rank: if given, ``"auto"`` considers it on the CPU platform; the
      highest rank wins (``"xla"`` has 0).
    available: called when ``"auto"`` considers it; False skips it (e.g.
      kernels that cannot be built here).
  """
  if name == AUTO:
    raise ValueError(f"{AUTO!r} is resolved per platform; register another name.")
  if not callable(fn):
    raise ValueError(f"register_conv_impl({name!r}, ...): fn must be callable "
                     f"(lax.conv_general_dilated's signature); got {fn!r}.")
  CONV_IMPLS[name] = fn
  if cpu_rank is None:
    _CPU_CANDIDATES.pop(name, None)
  else:
    _CPU_CANDIDATES[name] = (int(cpu_rank), available)


def platform() -> str:
  """The platform "auto" resolves for: JAX's default backend (``"cpu"``,
  ``"gpu"``, ``"tpu"``)."""
  return jax.default_backend()


def conv_impl_names() -> list[str]:
  """Every accepted ``conv_impl`` name: ``"auto"`` and the registered ones."""
  return [AUTO, *sorted(CONV_IMPLS)]


def resolve_conv_impl(name: str) -> str:
  """The registered name ``name`` stands for (``"auto"`` resolved for
  :func:`platform`). Raises ValueError, naming the registered ones, for an
  unknown name."""
  if name == AUTO:
    if platform() != "cpu":
      return "xla"
    ranked = sorted(_CPU_CANDIDATES.items(), key=lambda kv: -kv[1][0])
    for candidate, (_, available) in ranked:
      if candidate in CONV_IMPLS and (available is None or available()):
        return candidate
    return "xla"
  if name not in CONV_IMPLS:
    raise ValueError(
        f"conv_impl must be one of {conv_impl_names()}; got {name!r}. (The CPU "
        f"implementations 'matmul', 'cpu' and 'onednn' are registered by "
        f"`import ssljax.cpu.conv`, which the experiments/ and benchmarks/ scripts do.)")
  return name


def get_conv_impl(conv_impl) -> Callable:
  """The convolution function for a ``conv_impl`` name (or the function
  itself, when given one)."""
  if callable(conv_impl):
    return conv_impl
  return CONV_IMPLS[resolve_conv_impl(conv_impl)]
