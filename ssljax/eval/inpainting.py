"""Pictures of a trained context encoder (``ssljax.methods.inpainting``):
masked inputs, completions and originals of held-out images, as one PNG
grid::

    with ssljax.run.restore("workdirs/inpainting_fmnist") as run:
      write_samples(run.method, run.state, run.test.images[:10], "samples.png")

matplotlib is used through ``matplotlib.figure.Figure`` and its Agg canvas
(no pyplot global state) and imported only when a picture is drawn.
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["ROWS", "save_image_grid", "write_samples"]

#: ``(key of Inpainting.complete's output, row label)``, top to bottom.
ROWS = (("masked", "input"), ("completed", "completed"), ("original", "original"))


def save_image_grid(path: str, rows, *, title: str | None = None,
                    scale: float = 1.0) -> str:
  """Write a PNG of image rows.

  Args:
    path: the PNG file (folders are created).
    rows: a sequence of ``(label, images)``, ``images`` ``[N, H, W, C]``
      floats in [0, 1] (C = 1: gray), the same ``N`` in every row.
    title: optional figure title.
    scale: inches per image.

  Returns:
    ``path``.
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  rows = [(label, np.asarray(images, np.float32)) for label, images in rows]
  if not rows:
    raise ValueError("rows is empty.")
  n = rows[0][1].shape[0]
  for label, images in rows:
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) != n:
      raise ValueError(f"row {label!r}: images must be [N={n}, H, W, C] with C "
                       f"in {{1, 3}}; got {images.shape}.")
  fig = Figure(figsize=(scale * n + 1.0, scale * len(rows) + (0.4 if title else 0.1)))
  FigureCanvasAgg(fig)
  axes = fig.subplots(len(rows), n, squeeze=False)
  for r, (label, images) in enumerate(rows):
    for i in range(n):
      ax = axes[r, i]
      img = np.clip(images[i], 0.0, 1.0)
      if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0,
                  interpolation="nearest")
      else:
        ax.imshow(img, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_ylabel(label, fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, format="png", dpi=100)
  return path


def write_samples(method, state, images, path: str, *, seed: int = 0,
                  title: str | None = None) -> dict[str, np.ndarray]:
  """Inpaint ``images`` (uint8 ``[N, H, W, C]``, held out) with
  ``method.complete`` (masks from ``seed``) and write the grid of
  :data:`ROWS` to ``path``; returns ``method.complete``'s arrays (numpy).
  ``state``: a method state or its ``{"params", "batch_stats"}``."""
  if not isinstance(state, dict):
    state = {"params": state.params, "batch_stats": state.batch_stats}
  out = jax.device_get(jax.jit(method.complete)(
      state, np.asarray(images), jax.random.key(seed)))
  save_image_grid(path, [(label, out[key]) for key, label in ROWS],
                  title=title)
  return out
