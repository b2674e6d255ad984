"""Clustering evaluation: k-means on frozen features, scored against labels.

k-means (scikit-learn, Lloyd with k-means++ seeding and ``n_init`` restarts)
groups the features into ``num_clusters`` clusters (by default, one per
class); the clusters are scored against the true labels with

- NMI, normalized mutual information (Strehl & Ghosh 2002; arithmetic-mean
  normalization, scikit-learn's default);
- ARI, the adjusted Rand index (Hubert & Arabie 1985);
- cluster accuracy: the accuracy of the best one-to-one map from clusters to
  classes, found by the Hungarian algorithm (Kuhn 1955), as in deep
  clustering papers (e.g. Xie et al. 2016, DEC; Van Gansbeke et al. 2020,
  SCAN).

All three are invariant to permuting the cluster ids.
"""

from __future__ import annotations

import numpy as np


def cluster_accuracy(labels, assignments) -> float:
  """Accuracy of the best one-to-one cluster -> class map (Hungarian matching).

  Args:
    labels: ``[N]`` int true classes.
    assignments: ``[N]`` int cluster ids (any ids; the number of clusters may
      differ from the number of classes: unmatched clusters count as wrong).

  Returns:
    ``max_perm sum_i [perm(assignments_i) == labels_i] / N``, a fraction.
  """
  from scipy.optimize import linear_sum_assignment

  labels = np.asarray(labels).reshape(-1)
  assignments = np.asarray(assignments).reshape(-1)
  if labels.shape != assignments.shape or labels.size == 0:
    raise ValueError(f"labels {labels.shape} and assignments "
                     f"{assignments.shape} must be equal, non-empty [N].")
  _, y = np.unique(labels, return_inverse=True)
  _, c = np.unique(assignments, return_inverse=True)
  counts = np.zeros((c.max() + 1, y.max() + 1), np.int64)   # [cluster, class]
  np.add.at(counts, (c, y), 1)
  rows, cols = linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / labels.size)


def cluster_scores(features, labels, *, num_clusters: int | None = None,
                   seed: int = 0, n_init: int = 10,
                   normalize: bool = False) -> dict[str, float]:
  """k-means on ``features`` scored against ``labels``.

  Args:
    features: ``[N, F]`` features (flattened if more dims).
    labels: ``[N]`` int classes.
    num_clusters: k; default the number of distinct labels.
    seed: k-means ``random_state``.
    n_init: k-means restarts (the run with the lowest inertia is kept).
    normalize: L2-normalize the features first (spherical-style k-means, for
      features trained with a cosine similarity).

  Returns:
    ``{"nmi", "ari", "cluster_acc"}`` as floats (fractions).
  """
  try:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
  except ImportError as e:
    raise ImportError("k-means clustering needs scikit-learn: "
                      "pip install 'ssljax[eval]'") from e

  x = np.asarray(features, np.float64).reshape(len(features), -1)
  labels = np.asarray(labels).reshape(-1)
  if len(x) != len(labels):
    raise ValueError(f"{len(labels)} labels for {len(x)} features "
                     f"(features shape {np.shape(features)}).")
  if normalize:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  k = int(num_clusters or len(np.unique(labels)))
  assignments = KMeans(n_clusters=k, n_init=n_init,
                       random_state=seed).fit_predict(x)
  return {"nmi": float(normalized_mutual_info_score(labels, assignments)),
          "ari": float(adjusted_rand_score(labels, assignments)),
          "cluster_acc": cluster_accuracy(labels, assignments)}
