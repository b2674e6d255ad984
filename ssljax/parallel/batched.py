"""Apply a function to a large host array in fixed-size batches on the mesh.

The frozen-encoder feature pass of evaluation (:func:`ssljax.eval.extract_features`,
:meth:`ssljax.run.RestoredRun.encode`) is this one move: shard each batch over
the mesh axis ``data``, call one jitted function, bring the result back to the
host.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from tqdm.auto import tqdm

from ssljax.parallel.mesh import data_sharding, make_data_mesh

__all__ = ["map_batches"]


@functools.lru_cache(maxsize=32)
def _jitted(fn):
  # One jit per function (a bound method hashes by its object and function),
  # so repeated calls reuse the compiled code.
  return jax.jit(fn)


def map_batches(fn, variables, inputs: np.ndarray, *, batch_size: int = 1000,
                mesh=None, desc: str = "features",
                progress: bool = True) -> np.ndarray:
  """``fn(variables, inputs[i:i + b]) -> [b, ...]`` over all of ``inputs``.

  Batches are sharded over the mesh axis ``data`` (``batch_size`` is rounded
  down to a multiple of the device count, at least one per device); the last
  partial batch is padded (with copies of its first row) to a full one and the
  padding dropped, so one compiled function serves the whole array.
  """
  mesh = mesh or make_data_mesh()
  batch_size = max(mesh.size, batch_size - batch_size % mesh.size)
  try:
    jitted = _jitted(fn)
  except TypeError:                      # an unhashable callable
    jitted = jax.jit(fn)
  out = []
  n = len(inputs)
  with jax.set_mesh(mesh):
    for i in tqdm(range(0, n, batch_size), desc=desc, disable=not progress,
                  leave=False):
      chunk = inputs[i:i + batch_size]
      real = len(chunk)
      if real < batch_size:
        pad = np.repeat(chunk[:1], batch_size - real, axis=0)
        chunk = np.concatenate([chunk, pad])
      x = jax.device_put(chunk, data_sharding(mesh, chunk.ndim))
      out.append(np.asarray(jitted(variables, x))[:real])
  return np.concatenate(out)
