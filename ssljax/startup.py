"""Process start-up for entry points: one call, before JAX is imported.

Every script in ``experiments/`` and ``benchmarks/`` starts with::

    if __name__ == "__main__":
      from ssljax.startup import prepare_cpu_process
      prepare_cpu_process()

which does, in this order:

1. :func:`ssljax.malloc.reexec_with_fast_malloc`: re-executes the script once
   with tcmalloc preloaded, when it is installed (``SSLJAX_MALLOC=off`` keeps
   the system allocator);
2. :func:`ssljax.xla_cpu.apply_cpu_xla_flags`: appends the shipped XLA:CPU
   flags to ``XLA_FLAGS`` (``SSLJAX_XLA_CPU_FLAGS=off`` keeps jaxlib's
   defaults).

Both only matter on CPU and leave GPU/TPU runs unchanged. The re-exec must
come first: it replaces the process, and the flags are set in the new one
(an environment variable set before it would be inherited, but applying it
after keeps one place that decides). Standard library only.
"""

from __future__ import annotations

from ssljax.malloc import reexec_with_fast_malloc
from ssljax.xla_cpu import apply_cpu_xla_flags


def prepare_cpu_process() -> bool:
  """Preload the fast allocator (may re-exec) and set the XLA:CPU flags;
  returns whether ``XLA_FLAGS`` was changed."""
  reexec_with_fast_malloc()
  return apply_cpu_xla_flags()
