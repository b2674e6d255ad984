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

``import ssljax.cpu.conv`` registers the three convolutions in
:data:`ssljax.models.conv.CONV_IMPLS` (the start-up line does it after the
re-exec). This ``__init__`` imports nothing, so that ``import
ssljax.cpu.startup`` re-executes the process before JAX is loaded.
"""

