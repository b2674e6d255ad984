"""CPU-only speed for ssljax, opt-in: nothing else in ``ssljax`` imports it.

- :mod:`ssljax.cpu.startup`: the one start-up line of the entry points
  (``if __name__ == "__main__": import ssljax.cpu.startup``): the allocator
  re-exec and the XLA:CPU flags below, before JAX is imported;
- :mod:`ssljax.cpu.malloc`: re-execute with a caching allocator (tcmalloc);
- :mod:`ssljax.cpu.xla_flags`: XLA:CPU convolutions on XLA's own kernels;
- :mod:`ssljax.cpu.conv`: the convolutions ``"matmul"``, ``"cpu"`` and
  ``"onednn"`` for ``ResNet(conv_impl=...)``, which ``conv_impl="auto"``
  chooses from on the CPU platform;
- :mod:`ssljax.cpu.onednn` (+ ``onednn_conv.cc``): oneDNN convolutions as XLA
  custom calls (``pip install 'ssljax[cpu]'`` and a C++ compiler).

Importing this package registers the three convolutions in
:data:`ssljax.models.conv.CONV_IMPLS`. It does so without importing JAX
itself, so that ``import ssljax.cpu.startup`` can still re-execute the process
before JAX is loaded: if :mod:`ssljax.models.conv` is imported already, at
once; otherwise right after it is (:class:`_RegisterAfterImport`, an import
hook for that one module), that is before any ResNet can look a name up.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

#: The module whose registry :mod:`ssljax.cpu.conv` fills.
REGISTRY_MODULE = "ssljax.models.conv"


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
  """Finds :data:`REGISTRY_MODULE` as usual, and imports
  :mod:`ssljax.cpu.conv` (which registers the convolutions) right after the
  registry module has run. Removes itself once used."""

  def find_spec(self, fullname, path, target=None):
    if fullname != REGISTRY_MODULE:
      return None
    for finder in list(sys.meta_path):      # the finders that would find it
      find = getattr(finder, "find_spec", None)
      spec = None if finder is self or find is None else find(fullname, path, target)
      if spec is not None and spec.loader is not None:
        sys.meta_path.remove(self)
        spec.loader = _LoaderThenRegister(spec.loader)
        return spec
    return None


class _LoaderThenRegister(importlib.abc.Loader):
  """Wraps a module's loader: load it, then register the CPU convolutions."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    importlib.import_module("ssljax.cpu.conv")

  def __getattr__(self, name):          # get_source, get_filename, ...
    return getattr(self._loader, name)


if REGISTRY_MODULE in sys.modules:
  from ssljax.cpu import conv  # noqa: F401  (registers the convolutions)
elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
  sys.meta_path.insert(0, _RegisterAfterImport())
