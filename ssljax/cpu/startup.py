"""Process start-up for entry points: one line, before JAX is imported.

Every script in ``experiments/`` and ``benchmarks/`` starts with::

    if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401

Importing this module (once per process) does, in this order:

1. :func:`ssljax.cpu.malloc.reexec_with_fast_malloc`: re-executes the script
   once with tcmalloc preloaded, when it is installed (``SSLJAX_MALLOC=off``
   keeps the system allocator);
2. :func:`ssljax.cpu.xla_flags.apply_cpu_xla_flags`: appends the shipped
   XLA:CPU flags to ``XLA_FLAGS`` (``SSLJAX_XLA_CPU_FLAGS=off`` keeps jaxlib's
   defaults);

and then imports :mod:`ssljax.cpu.conv`, which registers the CPU
convolutions (``"matmul"``, ``"cpu"``, ``"onednn"``) that ``conv_impl="auto"``
chooses from on the CPU platform. All of it only matters on CPU: GPU/TPU runs are
unchanged. The re-exec must come first: it replaces the process, and the
flags are set in the new one. Neither ``ssljax.cpu``'s ``__init__`` nor this
module imports JAX before that, so the re-exec happens before JAX is loaded.

The ``__name__`` guard matters: scripts are also imported by tests and other
scripts, whose process must not be re-executed. In a notebook, start Jupyter
with ``eval "$(python -m ssljax.cpu.malloc)"; eval "$(python -m
ssljax.cpu.xla_flags)"; jupyter lab`` and ``import ssljax.cpu.conv`` for the
convolutions.
"""

from __future__ import annotations

from ssljax.cpu.malloc import reexec_with_fast_malloc
from ssljax.cpu.xla_flags import apply_cpu_xla_flags


def prepare() -> bool:
  """Preload the fast allocator (may re-exec) and set the XLA:CPU flags;
  returns whether ``XLA_FLAGS`` was changed. Importing this module calls it."""
  reexec_with_fast_malloc()
  return apply_cpu_xla_flags()


#: Whether the start-up changed ``XLA_FLAGS`` in this process.
XLA_FLAGS_CHANGED = prepare()

# After the re-exec and the flags: register the CPU convolutions (imports JAX).
from ssljax.cpu import conv  # noqa: E402,F401  pylint: disable=wrong-import-position
