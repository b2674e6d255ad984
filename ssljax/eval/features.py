"""Frozen-encoder features for a whole dataset, batch by batch, on the mesh."""

from __future__ import annotations

import functools

import jax
import numpy as np
from tqdm.auto import tqdm

from ssljax.parallel import data_sharding, make_data_mesh


@functools.lru_cache(maxsize=32)
def _jitted(encode_fn):
  # One jit per encode function (a bound method hashes by its object and
  # function), so repeated calls reuse the compiled code.
  return jax.jit(encode_fn)


def extract_features(encode_fn, variables, images: np.ndarray, *,
                     batch_size: int = 1000, mesh=None, desc: str = "features",
                     progress: bool = True) -> np.ndarray:
  """``encode_fn(variables, uint8 images [b,H,W,C]) -> [b, F]`` over ``images``.

  Batches are sharded over the mesh axis ``data``; the last partial batch is
  padded (with copies of its first image) to a full one and the padding
  dropped, so one compiled function serves the whole dataset.
  """
  mesh = mesh or make_data_mesh()
  batch_size = max(mesh.size, batch_size - batch_size % mesh.size)
  try:
    fn = _jitted(encode_fn)
  except TypeError:                      # an unhashable callable
    fn = jax.jit(encode_fn)
  out = []
  n = len(images)
  with jax.set_mesh(mesh):
    for i in tqdm(range(0, n, batch_size), desc=desc, disable=not progress,
                  leave=False):
      chunk = images[i:i + batch_size]
      real = len(chunk)
      if real < batch_size:
        pad = np.repeat(chunk[:1], batch_size - real, axis=0)
        chunk = np.concatenate([chunk, pad])
      x = jax.device_put(chunk, data_sharding(mesh, chunk.ndim))
      out.append(np.asarray(fn(variables, x))[:real])
  return np.concatenate(out)


def map_in_batches(fn, xs: np.ndarray, batch: int = 256):
  """``fn(jnp array [batch, ...]) -> pytree of [batch, ...]`` over ``xs`` in
  fixed-size batches (the last one padded with copies of its last row, the
  padding dropped), so a jitted ``fn`` compiles once; returns the pytree of
  concatenated numpy arrays."""
  outs = []
  for i in range(0, len(xs), batch):
    chunk = xs[i:i + batch]
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
    out = fn(jax.numpy.asarray(chunk))
    outs.append(jax.tree.map(lambda x, pad=pad: np.asarray(x)[:batch - pad], out))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)
