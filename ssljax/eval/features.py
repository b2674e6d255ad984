"""Frozen-encoder features for a whole dataset, batch by batch, on the mesh."""

from __future__ import annotations

import jax
import numpy as np

from ssljax.parallel.batched import map_batches


def extract_features(encode_fn, variables, images: np.ndarray, *,
                     batch_size: int = 1000, mesh=None, desc: str = "features",
                     progress: bool = True) -> np.ndarray:
  """``encode_fn(variables, uint8 images [b,H,W,C]) -> [b, F]`` over ``images``.

  Batches are sharded over the mesh axis ``data``; the last partial batch is
  padded (with copies of its first image) to a full one and the padding
  dropped, so one compiled function serves the whole dataset
  (:func:`ssljax.parallel.map_batches`).
  """
  return map_batches(encode_fn, variables, images, batch_size=batch_size,
                     mesh=mesh, desc=desc, progress=progress)


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
