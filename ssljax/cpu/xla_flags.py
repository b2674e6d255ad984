"""XLA:CPU settings for training: convolutions on XLA's own kernels, not YNNPACK.

Why. Recent jaxlib versions hand CPU convolutions, dots and large reductions
to YNNPACK. For the small-channel convolutions of CPU-sized ResNets (16-64
channels at 7x7-28x28) XLA's own (Eigen) convolution kernels are faster: in ``benchmarks/conv_layers.py`` the
command-1 encoder's ten convolutions, forward and backward, took 448.7 ms
instead of 476.6 ms per step (417.9 instead of 692.8 ms with
``conv_impl="xla"``), with YNNPACK's convolutions turned off and its dots and
reductions kept; the whole SimCLR train step ran 1.03x and 1.12x faster in two
interleaved runs of ``benchmarks/xla_cpu_step.py``, faster in 9 of 10 rounds
(BENCHMARKS.md, "XLA:CPU convolutions: YNNPACK or XLA's own"). Turning
YNNPACK off altogether was slower.

How. :func:`apply_cpu_xla_flags` appends :data:`CPU_XLA_FLAGS` to the
``XLA_FLAGS`` environment variable, which XLA reads when JAX first creates a
backend; the entry points (``experiments/*.py``, ``benchmarks/*.py``) call it
first, through their start-up line ``import ssljax.cpu.startup``. It leaves
``XLA_FLAGS`` alone when:

* ``SSLJAX_XLA_CPU_FLAGS=off``;
* ``XLA_FLAGS`` already chooses ``xla_cpu_experimental_ynn_fusion_type``
  (the user's setting wins);
* the installed jaxlib is older than :data:`MIN_JAXLIB` (older XLA builds
  abort on flags they do not know).

The flag only concerns the CPU backend; GPU and TPU runs are unaffected. In a
notebook, call it before the first JAX computation, or start Jupyter with
``eval "$(python -m ssljax.cpu.xla_flags)"`` (prints the ``export`` line).

Standard library only, so it can run before JAX is imported.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Mapping, Optional

#: Appended to ``XLA_FLAGS``: YNNPACK keeps dots and reductions, not convolutions.
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
#: The oldest jaxlib these flags were measured with (0.10.2 on CPU, 0.11.2 on
#: the GPU machine's host); older ones are left alone.
MIN_JAXLIB = (0, 10)
ENV_CHOICE = "SSLJAX_XLA_CPU_FLAGS"
_OFF = ("off", "0", "none", "false")


def _jaxlib_version() -> Optional[tuple]:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    text = metadata.version("jaxlib")
  except metadata.PackageNotFoundError:
    return None
  return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def cpu_xla_flags(env: Optional[Mapping[str, str]] = None,
                  jaxlib_version: Optional[tuple] = ()) -> Optional[str]:
  """The ``XLA_FLAGS`` value to use, or None to leave it as it is.

  Args:
    env: the environment (default ``os.environ``).
    jaxlib_version: e.g. ``(0, 10, 2)``; ``()`` reads the installed one,
      ``None`` means jaxlib is not installed.
  """
  env = os.environ if env is None else env
  if env.get(ENV_CHOICE, "").strip().lower() in _OFF:
    return None
  current = env.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in current:
    return None
  if jaxlib_version == ():
    jaxlib_version = _jaxlib_version()
  if jaxlib_version is None or tuple(jaxlib_version[:2]) < MIN_JAXLIB:
    return None
  return " ".join([*current.split(), *CPU_XLA_FLAGS])


def _backend_started() -> bool:
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return bool(xla_bridge.backends_are_initialized())
  except Exception:  # pylint: disable=broad-except
    return False


def apply_cpu_xla_flags() -> bool:
  """Set ``XLA_FLAGS`` for this process (see the module docstring); True when
  it changed. Warns, without changing anything, if a JAX backend already
  exists (XLA has read its flags by then)."""
  flags = cpu_xla_flags()
  if flags is None:
    return False
  if _backend_started():
    warnings.warn("ssljax.cpu.xla_flags.apply_cpu_xla_flags() was called after "
                  "JAX started a backend; it has no effect in this process. Call "
                  "it before the first JAX computation.", stacklevel=2)
    return False
  os.environ["XLA_FLAGS"] = flags
  return True


def shell_exports(env: Optional[Mapping[str, str]] = None) -> str:
  """The ``export XLA_FLAGS=...`` line (empty when nothing would change)."""
  import shlex  # pylint: disable=import-outside-toplevel
  flags = cpu_xla_flags(env)
  return "" if flags is None else f"export XLA_FLAGS={shlex.quote(flags)}"


if __name__ == "__main__":
  print(shell_exports())
