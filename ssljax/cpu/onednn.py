"""oneDNN convolutions as XLA custom calls (``ResNet(conv_impl="onednn")``, the
CPU choice of ``conv_impl="auto"``).

Why. XLA:CPU's own convolution kernels (Eigen) and YNNPACK's are 1.5-3x
slower than oneDNN, the library behind PyTorch's CPU convolutions, on the
few-channel (16-64) convolutions of CPU-sized ResNets, above all in the
weight gradient (BENCHMARKS.md, "Convolutions per layer"). This module gives
JAX those kernels: ``onednn_conv.cc`` (next to this file) implements the
forward pass, the input gradient and the weight gradient of an NHWC / HWIO
float32 convolution as three XLA FFI handlers on oneDNN, and
:func:`conv` ties them together in a ``jax.custom_vjp``. Each call is one
custom call in the compiled step, so ``jax.jit``, donation and the rest of
the step are unchanged.

Build. The handlers are compiled on first use (a few seconds with ``g++``;
``CXX`` overrides the compiler) against the headers of ``jaxlib``
(``jax.ffi.include_dir()``) and of oneDNN from the pip packages
``onednn-cpu-gomp`` / ``onednn-devel-cpu-gomp`` (the ``ssljax[cpu]`` extra on
x86-64 Linux; oneDNN 3.2, GNU OpenMP threads), into ``_build/`` next to this
file, named by a hash of the source, the compiler flags and the jaxlib
version. ``python -m ssljax.cpu.onednn`` builds it ahead of time
(``scripts/setup.sh`` does) and prints where.

Availability. :func:`available` says whether the kernels could be built and
loaded; :func:`unavailable_reason` says why not. Where they are not
(another OS or CPU, no compiler) ``conv_impl="auto"`` picks ``"cpu"``, and an
explicit ``conv_impl="onednn"`` falls back to ``"cpu"`` with one warning; on
GPU/TPU backends it is XLA's own convolution. Only the plain case goes to
oneDNN (float32, NHWC/HWIO, no dilation, one feature group); everything else
takes the fallback.

Sharding. A custom call is opaque to XLA's SPMD partitioner, which
replicates its operands: under a batch-sharded ``jit`` on several CPU
devices the results stay correct but every device computes the whole
convolution. Use it for single-device CPU training (the CPU configs here).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = Path(__file__).with_name("onednn_conv.cc")
BUILD_DIR = Path(__file__).with_name("_build")
#: FFI handler symbols in ``onednn_conv.cc`` -> XLA custom-call targets.
TARGETS = {"SsljaxConvFwd": "ssljax_onednn_conv_fwd",
           "SsljaxConvBwdData": "ssljax_onednn_conv_bwd_data",
           "SsljaxConvBwdWeights": "ssljax_onednn_conv_bwd_weights"}
CXXFLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-w")
INSTALL_HINT = ("install oneDNN with `pip install 'ssljax[cpu]'` (the pip "
                "packages onednn-cpu-gomp and onednn-devel-cpu-gomp, x86-64 "
                "Linux; `bash scripts/setup.sh` does it) and a C++ compiler "
                "(`apt-get install g++`)")

_lock = threading.Lock()
_state: dict = {}


class OneDNNUnavailable(RuntimeError):
  """The oneDNN kernels cannot be built or loaded here (the message says why)."""


def _prefixes():
  seen = []
  for p in (sys.prefix, sys.base_prefix, sysconfig.get_config_var("prefix"),
            "/usr/local", "/usr"):
    if p and p not in seen:
      seen.append(p)
  return seen


def onednn_paths() -> tuple[Path, Path]:
  """(include dir with ``oneapi/dnnl/dnnl.hpp``, lib dir with ``libdnnl.so.3``)."""
  include = lib = None
  for p in _prefixes():
    if include is None and (Path(p) / "include/oneapi/dnnl/dnnl.hpp").is_file():
      include = Path(p) / "include"
    if lib is None:
      for sub in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        if (Path(p) / sub / "libdnnl.so.3").exists():
          lib = Path(p) / sub
          break
  if include is None or lib is None:
    missing = "headers (oneapi/dnnl/dnnl.hpp)" if include is None else "library (libdnnl.so.3)"
    raise OneDNNUnavailable(
        f"oneDNN {missing} not found under {', '.join(_prefixes())}: {INSTALL_HINT}.")
  return include, lib


def _compiler() -> str:
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not cxx:
    raise OneDNNUnavailable(f"no C++ compiler found (CXX, g++, c++): {INSTALL_HINT}.")
  return cxx


def library_path() -> Path:
  """Where the built kernels live for this source, jaxlib and flags."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  h = hashlib.sha256(SOURCE.read_bytes())
  h.update(" ".join(CXXFLAGS).encode())
  h.update(jaxlib.__version__.encode())
  return BUILD_DIR / f"libssljax_onednn_{h.hexdigest()[:16]}.so"


def build(force: bool = False, verbose: bool = False) -> Path:
  """Compile ``onednn_conv.cc`` (if needed) and return the library path.

  Raises :class:`OneDNNUnavailable` with the reason and the fix."""
  out = library_path()
  if out.exists() and not force:
    return out
  if sys.platform != "linux":
    raise OneDNNUnavailable(f"the oneDNN kernels are built for Linux only (this is "
                            f"{sys.platform}); conv_impl='cpu' is the fallback.")
  include, lib = onednn_paths()
  cxx = _compiler()
  out.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
  os.close(fd)
  cmd = [cxx, *CXXFLAGS, "-I", jax.ffi.include_dir(), "-I", str(include),
         str(SOURCE), "-o", tmp, "-L", str(lib), "-l:libdnnl.so.3",
         f"-Wl,-rpath,{lib}"]
  if verbose:
    print("[ssljax.cpu.onednn] " + " ".join(cmd), flush=True)
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  except OSError as e:
    os.unlink(tmp)
    raise OneDNNUnavailable(f"running the C++ compiler {cxx!r} failed ({e}): "
                            f"{INSTALL_HINT}.") from e
  if proc.returncode != 0:
    os.unlink(tmp)
    raise OneDNNUnavailable(
        f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n"
        f"{proc.stderr[-3000:]}\n{INSTALL_HINT}.")
  os.replace(tmp, out)          # atomic: parallel builds cannot tear it
  return out


def _load() -> ctypes.CDLL:
  with _lock:
    if "lib" in _state:
      return _state["lib"]
    if "error" in _state:
      raise OneDNNUnavailable(_state["error"])
    try:
      lib = ctypes.CDLL(str(build()))
      for symbol, target in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")
    except OneDNNUnavailable as e:
      _state["error"] = str(e)
      raise
    except OSError as e:
      _state["error"] = f"loading the oneDNN kernels failed: {e}; {INSTALL_HINT}."
      raise OneDNNUnavailable(_state["error"]) from e
    _state["lib"] = lib
    return lib


def available() -> bool:
  """Whether the oneDNN kernels are built (or buildable) and loaded."""
  try:
    _load()
    return True
  except OneDNNUnavailable:
    return False


def unavailable_reason() -> Optional[str]:
  """None when :func:`available`, else why not (with the fix)."""
  return None if available() else _state.get("error")


def onednn_version() -> tuple[int, int, int]:
  v = _load().ssljax_onednn_version()
  return v // 10000, v // 100 % 100, v % 100


def _attrs(strides, padding):
  (pt, pb), (pl, pr) = padding
  return dict(strides=np.asarray(strides, np.int64),
              padding=np.asarray([pt, pb, pl, pr], np.int64))


def _out_hw(x_shape, w_shape, strides, padding):
  return tuple((x_shape[1 + i] + padding[i][0] + padding[i][1] - w_shape[i])
               // strides[i] + 1 for i in range(2))


def _check(x, w):
  if x.ndim != 4 or w.ndim != 4:
    raise ValueError(f"oneDNN convolution: expected x [N, H, W, C] and w [KH, KW, "
                     f"C, O]; got shapes {x.shape} and {w.shape}.")
  if x.shape[3] != w.shape[2]:
    raise ValueError(f"oneDNN convolution: x has {x.shape[3]} input channels but "
                     f"the kernel {w.shape} expects {w.shape[2]} (HWIO layout).")
  if x.dtype != jnp.float32 or w.dtype != jnp.float32:
    raise ValueError(f"oneDNN convolution: float32 only (got {x.dtype} and "
                     f"{w.dtype}); ResNet(conv_impl='onednn') sends other dtypes "
                     f"to conv_impl='cpu'.")


def _merge_leading(a):
  return a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


def _batching(call, merge_first: bool):
  """``call(a, b)`` with a vmap rule (``jax.custom_batching.custom_vmap``):
  when only the first operand is batched and ``merge_first`` (images or
  output cotangents: the vmapped axis is more batch), the axis is folded
  into N and the call runs once; otherwise (batched kernels, or the weight
  gradient, which sums over N) it runs once per vmapped index (``lax.map``)."""
  f = jax.custom_batching.custom_vmap(call)

  @f.def_vmap
  def _rule(axis_size, in_batched, a, b):
    a_b, b_b = in_batched
    if merge_first and a_b and not b_b:
      out = f(_merge_leading(a), b)
      return out.reshape((axis_size, a.shape[1]) + out.shape[1:]), True
    a = a if a_b else jnp.broadcast_to(a, (axis_size,) + a.shape)
    b = b if b_b else jnp.broadcast_to(b, (axis_size,) + b.shape)
    return jax.lax.map(lambda ab: f(*ab), (a, b)), True

  return f


def _pass(symbol, out_shape, strides, padding, merge_first: bool):
  """One pass as a vmappable function ``(a, b) -> float32[out_shape(a)]``:
  the custom call ``TARGETS[symbol]`` with the strides and padding."""
  _load()
  attrs = _attrs(strides, padding)

  def call(a, b):
    out = jax.ShapeDtypeStruct(tuple(out_shape(a)), jnp.float32)
    return jax.ffi.ffi_call(TARGETS[symbol], out)(a, b, **attrs)

  return _batching(call, merge_first)


def conv_forward(x, w, strides, padding):
  """``lax.conv_general_dilated(x, w, strides, padding, NHWC/HWIO)`` on oneDNN."""
  _check(x, w)
  out_shape = lambda x: (x.shape[0], *_out_hw(x.shape, w.shape, strides, padding),
                         w.shape[3])
  return _pass("SsljaxConvFwd", out_shape, strides, padding, True)(x, w)


def conv_backward_data(g, w, x_shape, strides, padding):
  """The input gradient of :func:`conv_forward` for output cotangent ``g``."""
  out_shape = lambda g: (g.shape[0], *x_shape[1:])
  return _pass("SsljaxConvBwdData", out_shape, strides, padding, True)(g, w)


def conv_backward_weights(x, g, w_shape, strides, padding):
  """The weight gradient of :func:`conv_forward` for output cotangent ``g``
  (a sum over the batch: never folded, see :func:`_batching`)."""
  return _pass("SsljaxConvBwdWeights", lambda _: w_shape, strides, padding,
               False)(x, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, w, strides, padding):
  """An NHWC/HWIO float32 convolution whose three passes run on oneDNN.

  ``strides``: ``(sh, sw)``; ``padding``: ``((top, bottom), (left, right))``
  (both static). Same values as ``lax.conv_general_dilated`` up to float
  summation order."""
  return conv_forward(x, w, strides, padding)


def _conv_fwd(x, w, strides, padding):
  return conv_forward(x, w, strides, padding), (x, w)


def _conv_bwd(strides, padding, res, g):
  x, w = res
  return (conv_backward_data(g, w, x.shape, strides, padding),
          conv_backward_weights(x, g, w.shape, strides, padding))


conv.defvjp(_conv_fwd, _conv_bwd)


def main(argv=None) -> int:
  import argparse  # pylint: disable=import-outside-toplevel
  p = argparse.ArgumentParser(description="Build ssljax's oneDNN convolution "
                              "kernels and print where they are.")
  p.add_argument("--force", action="store_true", help="rebuild")
  p.add_argument("--check", action="store_true",
                 help="exit 1 when the kernels cannot be built (default: report and exit 0)")
  args = p.parse_args(argv)
  try:
    path = build(force=args.force, verbose=True)
    _load()
  except OneDNNUnavailable as e:
    print(f"[ssljax.cpu.onednn] not available: {e}", flush=True)
    return 1 if args.check else 0
  print(f"[ssljax.cpu.onednn] oneDNN {'.'.join(map(str, onednn_version()))} "
        f"kernels: {path}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
