"""Native CPU kernels for JAX (XLA FFI custom calls): :mod:`ssljax.kernels.onednn`."""
