"""A caching memory allocator for CPU training (tcmalloc), preloaded by re-exec.

Why. XLA:CPU allocates each step's buffers afresh. Under glibc's ``malloc``
the large ones (over 32 MiB) are new ``mmap`` regions, returned to the kernel
when freed, so every step faults in and zero-fills them again: the
Fashion-MNIST SimCLR step (batch 256) takes about 142,000 minor page faults,
556 MiB, and 0.25-0.3 s of kernel time per step on the 2-core CPU. A caching
allocator keeps freed memory for the next step (tcmalloc: 0-8,000 faults and
0.002-0.015 s of kernel time a step), and the step ran 1.15-1.26x (two runs of
``benchmarks/malloc_step.py``) to 1.55x (``benchmarks/simclr_throughput.py``)
faster (BENCHMARKS.md, "Memory allocator"). PyTorch gains too, which is why the
side-by-side benchmarks run both frameworks in one process, under one
allocator.

How. The allocator has to be in place before the process starts, so the entry
points (``experiments/*.py``, ``benchmarks/*.py``) call
:func:`reexec_with_fast_malloc` first, through their start-up line
``import ssljax.cpu.startup`` (:mod:`ssljax.cpu.startup`): if a known allocator
library is installed and not yet loaded, the script re-executes itself once
with ``LD_PRELOAD`` set (same PID, same arguments). ``scripts/setup.sh``
installs Debian's ``libtcmalloc-minimal4`` where ``apt-get`` exists.

Control it with the environment variable ``SSLJAX_MALLOC``:

* unset or ``auto``: the first of :data:`KNOWN_LIBRARIES` found in
  :data:`SEARCH_DIRS`; nothing happens when none is installed;
* ``off`` (or ``system``, ``0``): keep the system allocator;
* a path to a shared library: preload that one (an error if it is missing).

In a notebook, start Jupyter with the library preloaded:
``eval "$(python -m ssljax.cpu.malloc)"; jupyter lab`` (the command prints the
``export`` lines, nothing when no library is found).

This module only uses the standard library, so it can run before JAX is
imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

#: Allocator libraries tried by ``SSLJAX_MALLOC=auto``, in order.
KNOWN_LIBRARIES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4",
                   "libjemalloc.so.2")
#: Folders searched for them.
SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
               "/usr/lib64", "/usr/lib", "/usr/local/lib")
ENV_CHOICE = "SSLJAX_MALLOC"
#: Set in the re-executed process, so that it never re-executes again.
ENV_REEXECUTED = "SSLJAX_MALLOC_REEXECUTED"
_OFF = ("off", "system", "0", "none", "false")


def find_fast_malloc(choice: Optional[str] = None,
                     search_dirs: Sequence[str] = SEARCH_DIRS) -> Optional[str]:
  """The allocator library to preload, or None for the system allocator.

  Args:
    choice: ``"auto"``, ``"off"`` or a library path; default: the
      ``SSLJAX_MALLOC`` environment variable (``"auto"`` when unset).
    search_dirs: folders searched by ``"auto"``.

  Raises:
    FileNotFoundError: ``choice`` names a library file that does not exist.
  """
  if choice is None:
    choice = os.environ.get(ENV_CHOICE, "auto")
  choice = choice.strip()
  if choice.lower() in _OFF:
    return None
  if choice.lower() in ("", "auto"):
    for folder in search_dirs:
      for name in KNOWN_LIBRARIES:
        path = Path(folder) / name
        if path.is_file():
          return str(path)
    return None
  if not Path(choice).is_file():
    raise FileNotFoundError(
        f"{ENV_CHOICE}={choice!r}: no such library file. Give the path of an "
        f"allocator library (e.g. /usr/lib/x86_64-linux-gnu/"
        f"libtcmalloc_minimal.so.4 from Debian's libtcmalloc-minimal4), "
        f"'auto' to search for one, or 'off' for the system allocator.")
  return choice


def loaded_malloc(maps: Optional[str] = None) -> Optional[str]:
  """File name of the tcmalloc/jemalloc library mapped into this process
  (from ``/proc/self/maps``, or the given text), else None."""
  if maps is None:
    try:
      maps = Path("/proc/self/maps").read_text()
    except OSError:
      return None
  for line in maps.splitlines():
    fields = line.split()
    if len(fields) >= 6:
      name = Path(fields[-1]).name
      if name.startswith(("libtcmalloc", "libjemalloc")):
        return name
  return None


def malloc_env(library: str, env: Mapping[str, str]) -> dict:
  """``env`` with ``library`` first in ``LD_PRELOAD``, plus the allocator's
  settings: both told to keep freed pages for reuse (by default they return
  them to the kernel over time, which brings some page faults back), and
  tcmalloc's report of allocations over 1 GiB silenced (the blockwise-loss
  benchmarks make some on purpose)."""
  out = dict(env)
  preload = [p for p in out.get("LD_PRELOAD", "").split(":") if p]
  if library not in preload:
    preload.insert(0, library)
  out["LD_PRELOAD"] = ":".join(preload)
  name = Path(library).name
  if name.startswith("libtcmalloc"):
    out.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    out.setdefault("TCMALLOC_RELEASE_RATE", "0")
  if name.startswith("libjemalloc"):
    out.setdefault("MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
  return out


def reexec_with_fast_malloc(argv: Optional[Sequence[str]] = None) -> None:
  """Re-execute this Python process once with a caching allocator preloaded.

  Returns (doing nothing) when: not on Linux; an allocator is already loaded;
  this process is already the re-executed one; ``SSLJAX_MALLOC=off``; or no
  allocator library is installed. Otherwise it does not return: the process
  image is replaced (``os.execve``; same PID, same command line, given by
  ``argv`` or ``sys.orig_argv``). Call it first thing in a script's
  ``__main__`` block, before any work that would be repeated.
  """
  if not sys.platform.startswith("linux") or loaded_malloc():
    return
  if os.environ.get(ENV_REEXECUTED):
    return
  library = find_fast_malloc()
  if library is None:
    return
  if argv is None:
    argv = [sys.executable, *getattr(sys, "orig_argv", sys.argv)[1:]]
  env = malloc_env(library, os.environ)
  env[ENV_REEXECUTED] = "1"
  sys.stdout.flush()
  print(f"[ssljax] restarting with {Path(library).name} preloaded (a caching "
        f"allocator: faster CPU steps; SSLJAX_MALLOC=off keeps the system "
        f"malloc)", file=sys.stderr, flush=True)
  os.execve(sys.executable, list(argv), env)


def shell_exports(env: Optional[Mapping[str, str]] = None) -> str:
  """``export`` lines that preload the allocator in a shell (empty when
  :func:`find_fast_malloc` finds none). ``python -m ssljax.cpu.malloc`` prints
  them: ``eval "$(python -m ssljax.cpu.malloc)"; jupyter lab``."""
  import shlex  # pylint: disable=import-outside-toplevel
  env = os.environ if env is None else env
  library = find_fast_malloc(env.get(ENV_CHOICE, "auto"))
  if library is None:
    return ""
  changed = {k: v for k, v in malloc_env(library, env).items()
             if env.get(k) != v}
  return "\n".join(f"export {k}={shlex.quote(v)}"
                   for k, v in sorted(changed.items()))


if __name__ == "__main__":
  print(shell_exports())
