"""Weighted k-nearest-neighbour classification (Wu et al. 2018, InstDisc).

Each test feature votes with its k nearest training features by cosine
similarity s_i, weighted ``exp(s_i / t)``; the class with the largest summed
weight wins. The standard SSL monitor: k = 200, t = 0.1.

``metric="euclidean"`` takes the k nearest by Euclidean distance d_i on the
features as given, weighted ``exp(-d_i^2 / (2 t))`` (on L2-normalized features
this is the cosine rule, since d^2 = 2 - 2 s); weights are computed relative to
the nearest neighbour, which leaves the vote unchanged and avoids underflow.
Queries run in chunks against the whole bank on device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.losses import l2_normalize


@functools.partial(jax.jit, static_argnames=("k", "num_classes", "metric"))
def _knn_chunk(train_feats, train_labels, queries, *, k, num_classes, t,
               metric="cosine"):
  if metric == "cosine":
    sims = l2_normalize(queries) @ train_feats.T           # [q, N]
    top, top_idx = jax.lax.top_k(sims, k)                  # [q, k]
    logw = top / t
  else:
    d2 = (jnp.sum(queries ** 2, -1, keepdims=True) - 2 * queries @ train_feats.T
          + jnp.sum(train_feats ** 2, -1)[None])           # [q, N]
    neg, top_idx = jax.lax.top_k(-d2, k)
    logw = (neg - neg[:, :1]) / (2 * t)                     # relative to the nearest
  weights = jnp.exp(logw)
  onehot = jax.nn.one_hot(train_labels[top_idx], num_classes)   # [q, k, C]
  scores = jnp.einsum("qk,qkc->qc", weights, onehot)
  return jnp.argmax(scores, axis=-1)


def knn_predict(train_feats, train_labels, test_feats, *, num_classes: int,
                k: int = 200, t: float = 0.1, chunk: int = 1000,
                metric: str = "cosine") -> np.ndarray:
  """Predicted labels ``[M]`` for ``test_feats [M, F]`` from ``train_feats
  [N, F]`` with labels ``[N]`` (``metric`` "cosine" or "euclidean")."""
  if metric not in ("cosine", "euclidean"):
    raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}.")
  train_feats = np.asarray(train_feats)
  test_feats = np.asarray(test_feats)
  if train_feats.ndim != 2 or test_feats.ndim != 2 or \
      train_feats.shape[1] != test_feats.shape[1]:
    raise ValueError(f"features must be [N, F] and [M, F]; got "
                     f"{train_feats.shape} and {test_feats.shape}.")
  if len(train_labels) != len(train_feats):
    raise ValueError(f"{len(train_labels)} labels for {len(train_feats)} "
                     "training features.")
  k = min(k, len(train_feats))
  bank = jnp.asarray(train_feats, jnp.float32)
  if metric == "cosine":
    bank = l2_normalize(bank)
  labels = jnp.asarray(train_labels, jnp.int32)
  preds = []
  for i in range(0, len(test_feats), chunk):
    q = jnp.asarray(test_feats[i:i + chunk], jnp.float32)
    preds.append(np.asarray(_knn_chunk(bank, labels, q, k=k,
                                       num_classes=num_classes, t=t,
                                       metric=metric)))
  return np.concatenate(preds)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, *,
                 num_classes: int, k: int = 200, t: float = 0.1,
                 metric: str = "cosine") -> float:
  """Top-1 accuracy (a fraction) of :func:`knn_predict`."""
  preds = knn_predict(train_feats, train_labels, test_feats,
                      num_classes=num_classes, k=k, t=t, metric=metric)
  return float(np.mean(preds == np.asarray(test_labels)))
