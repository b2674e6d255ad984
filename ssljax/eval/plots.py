"""Pictures of a representation: 2-D embeddings, nearest-neighbour retrieval
grids, training curves. Written as PNG files.

matplotlib is imported lazily and used through ``matplotlib.figure.Figure``
(its Agg canvas), so nothing here touches pyplot's global state or the
notebook backend. t-SNE comes from scikit-learn, UMAP from ``umap-learn``
(both imported only when used).

References:
  van der Maaten & Hinton 2008, "Visualizing Data using t-SNE".
  McInnes et al. 2018, "UMAP: Uniform Manifold Approximation and Projection
    for Dimension Reduction".
  Wu et al. 2018 (InstDisc) and Chen et al. 2020 (SimCLR) show retrieval
    grids: a query and its cosine nearest neighbours in feature space.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.losses import l2_normalize
from ssljax.train.logging import read_jsonl

#: The methods log the schedule's value as ``lr``; ``learning_rate`` is kept
#: for logs that spell it out; ``probe_acc`` is the online probe's
#: (ssljax.methods.online_probe). Keys no run has are skipped.
METRIC_KEYS = ("loss", "lr", "learning_rate", "mi_bound", "knn_acc", "probe_acc")


#: How to install what the pictures and embeddings need.
EVAL_EXTRA = "pip install 'ssljax[eval]'"
_PIP_NAMES = {"sklearn": "scikit-learn", "umap": "umap-learn"}


def _optional(module: str, what: str):
  """``module`` imported, or an ImportError naming the extra to install
  (matplotlib, scikit-learn and umap-learn are the ``[eval]`` extra, not
  needed to train)."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    top = module.split(".")[0]
    raise ImportError(f"{what} needs {_PIP_NAMES.get(top, top)}: "
                      f"{EVAL_EXTRA}") from e


def figure_class():
  """``matplotlib.figure.Figure`` (no pyplot state), or a clear ImportError."""
  return _optional("matplotlib.figure", "drawing pictures").Figure


def _figure(figsize, dpi):
  return figure_class()(figsize=figsize, dpi=dpi, layout="constrained")


def _save(fig, path, dpi):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi, format="png")


def embed_2d(features, *, method: str = "tsne", seed: int = 0,
             embed_kwargs: dict | None = None) -> np.ndarray:
  """2-D coordinates ``[N, 2]`` of ``features [N, F]`` by t-SNE or UMAP.

  ``embed_kwargs`` go to ``sklearn.manifold.TSNE`` (default perplexity
  ``min(30, (N - 1) / 3)``, PCA initialization) or ``umap.UMAP``.
  """
  x = np.asarray(features, np.float32).reshape(len(features), -1)
  kwargs = dict(embed_kwargs or {})
  if method == "tsne":
    TSNE = _optional("sklearn.manifold", "method='tsne'").TSNE
    kwargs.setdefault("perplexity", float(min(30.0, max(1.0, (len(x) - 1) / 3))))
    kwargs.setdefault("init", "pca")
    return TSNE(n_components=2, random_state=seed, **kwargs).fit_transform(x)
  if method == "umap":
    umap = _optional("umap", "method='umap'")
    return np.asarray(umap.UMAP(n_components=2, random_state=seed, **kwargs)
                      .fit_transform(x))
  raise ValueError(f"method must be 'tsne' or 'umap'; got {method!r}.")


def embedding_plot(features, labels, path: str, *, method: str = "tsne",
                   max_points: int = 5000, seed: int = 0,
                   class_names: Sequence[str] | None = None,
                   title: str | None = None, figsize=(7.0, 6.0),
                   dpi: int = 100, embed_kwargs: dict | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Scatter plot of a 2-D t-SNE / UMAP embedding, colored by class.

  Args:
    features: ``[N, F]``.
    labels: ``[N]`` int classes.
    path: the PNG file to write.
    method: ``"tsne"`` or ``"umap"``.
    max_points: a random subset (``default_rng(seed)``) of at most this many
      points is embedded (t-SNE is quadratic in N).
    seed: subset and embedding seed.
    class_names: legend names indexed by label.
    figsize, dpi: the PNG is ``figsize * dpi`` pixels.
    embed_kwargs: passed to the t-SNE / UMAP constructor (e.g.
      ``{"max_iter": 500}`` or ``{"n_neighbors": 30}``).

  Returns:
    ``(indices [n], coords [n, 2])``: the embedded points and where they went.
  """
  features = np.asarray(features)
  labels = np.asarray(labels).reshape(-1)
  if len(features) != len(labels):
    raise ValueError(f"{len(labels)} labels for {len(features)} features.")
  idx = np.arange(len(labels))
  if len(idx) > max_points:
    idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_points,
                                                     replace=False))
  coords = embed_2d(features[idx], method=method, seed=seed,
                    embed_kwargs=embed_kwargs)
  y = labels[idx]
  fig = _figure(figsize, dpi)
  ax = fig.add_subplot()
  classes = np.unique(y)
  colormaps = _optional("matplotlib", "drawing pictures").colormaps
  cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
  for i, c in enumerate(classes):
    m = y == c
    name = class_names[int(c)] if class_names is not None else str(c)
    ax.scatter(coords[m, 0], coords[m, 1], s=4, color=cmap(i % cmap.N),
               label=name, alpha=0.8, linewidths=0)
  if len(classes) <= 20:
    ax.legend(markerscale=3, fontsize="small", loc="best")
  ax.set_xticks([])
  ax.set_yticks([])
  shown = {"tsne": "t-SNE", "umap": "UMAP"}[method]
  ax.set_title(title or f"{shown} of {len(idx)} features")
  _save(fig, path, dpi)
  return idx, coords


@jax.jit
def _cosine_sims(queries, bank):
  return l2_normalize(queries) @ l2_normalize(bank).T


def retrieve(query_feats, bank_feats, k: int) -> np.ndarray:
  """Indices ``[Q, k]`` of each query's ``k`` most cosine-similar bank rows,
  most similar first (ties: lower index first)."""
  q = jnp.asarray(query_feats, jnp.float32)
  b = jnp.asarray(bank_feats, jnp.float32)
  if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
    raise ValueError(f"features must be [Q, F] and [N, F]; got {q.shape} and "
                     f"{b.shape}.")
  if not 1 <= k <= b.shape[0]:
    raise ValueError(f"k must be in 1..{b.shape[0]}; got {k}.")
  return np.asarray(jax.lax.top_k(_cosine_sims(q, b), k)[1])


def _show(ax, image, color=None):
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  ax.imshow(image, cmap="gray" if image.ndim == 2 else None,
            vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(color is not None)
    if color is not None:
      spine.set_color(color)
      spine.set_linewidth(3)


def retrieval_grid(query_images, bank_images, query_feats, bank_feats,
                   path: str, *, k: int = 8, query_labels=None,
                   bank_labels=None, class_names: Sequence[str] | None = None,
                   cell: float = 1.0, dpi: int = 100) -> np.ndarray:
  """A grid: one row per query, the query in the first column, then its
  ``k`` cosine nearest neighbours in the bank (:func:`retrieve`).

  With labels, neighbours get a green (same class) or red border; with
  ``class_names`` too, each image is captioned with its class name.

  Args:
    query_images, bank_images: ``[Q, H, W, C]`` / ``[N, H, W, C]``, uint8 or
      float in [0, 1] (C = 1 or 3).
    query_feats, bank_feats: ``[Q, F]`` / ``[N, F]``.
    path: the PNG file to write (``(k + 1) * cell`` by ``Q * cell`` inches).

  Returns:
    the neighbour indices ``[Q, k]``.
  """
  idx = retrieve(query_feats, bank_feats, k)
  nq = len(idx)
  fig = _figure(((k + 1) * cell, nq * cell), dpi)
  axes = fig.subplots(nq, k + 1, squeeze=False)
  named = (class_names is not None and query_labels is not None
           and bank_labels is not None)
  for r in range(nq):
    _show(axes[r, 0], query_images[r], "black")
    if named:
      axes[r, 0].set_xlabel(class_names[int(query_labels[r])], fontsize=6)
    for j, b in enumerate(idx[r]):
      color = None
      if query_labels is not None and bank_labels is not None:
        same = np.asarray(bank_labels)[b] == np.asarray(query_labels)[r]
        color = "tab:green" if same else "tab:red"
      _show(axes[r, j + 1], bank_images[b], color)
      if named:
        axes[r, j + 1].set_xlabel(class_names[int(np.asarray(bank_labels)[b])],
                                  fontsize=6)
  axes[0, 0].set_title("query", fontsize="small")
  _save(fig, path, dpi)
  return idx


def curves_plot(metrics_jsonl_paths, path: str, *, keys=METRIC_KEYS,
                run_names: Sequence[str] | None = None, figsize_per_key=(4.5, 3.2),
                dpi: int = 100) -> list[str]:
  """Training curves from ``metrics.jsonl`` files: one panel per key, one
  line per run, value vs step.

  Args:
    metrics_jsonl_paths: a path or a list of paths, each a ``metrics.jsonl``
      (:class:`ssljax.train.logging.MetricWriter`'s, one JSON object per line
      with ``"step"`` and scalar metrics) or a run folder holding one.
    path: the PNG file to write (``figsize_per_key`` per panel, side by side).
    keys: the metrics to plot; those in no run are left out.
    run_names: legend names (default: each file's folder name).

  Returns:
    the keys plotted.
  """
  if isinstance(metrics_jsonl_paths, (str, os.PathLike)):
    metrics_jsonl_paths = [metrics_jsonl_paths]
  files = [os.path.join(p, "metrics.jsonl") if os.path.isdir(p) else str(p)
           for p in metrics_jsonl_paths]
  runs = [read_jsonl(f) for f in files]
  names = list(run_names or [os.path.basename(os.path.dirname(
      os.path.abspath(f))) for f in files])
  present = [k for k in keys if any(k in row for rows in runs for row in rows)]
  if not present:
    raise ValueError(f"none of {tuple(keys)} is in {files}.")
  w, h = figsize_per_key
  fig = _figure((w * len(present), h), dpi)
  axes = fig.subplots(1, len(present), squeeze=False)[0]
  for ax, key in zip(axes, present):
    for rows, name in zip(runs, names):
      pts = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
      if pts:
        steps, values = zip(*sorted(pts))
        ax.plot(steps, values, label=name, marker="." if len(pts) < 30 else None)
    ax.set_xlabel("step")
    ax.set_title(key)
    ax.grid(alpha=0.3)
  if len(runs) > 1:
    axes[0].legend(fontsize="small")
  _save(fig, path, dpi)
  return present
