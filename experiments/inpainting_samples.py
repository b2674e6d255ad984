"""Pictures of a trained context encoder: masked inputs, completions and
originals of held-out images, as one PNG grid.

    python experiments/inpainting_samples.py --workdir workdirs/inpainting_fmnist \
        [--num=10] [--out=workdirs/inpainting_fmnist/samples.png]

Rows: the generator's input (the hole filled with the dataset mean), its
output pasted into the hole, the original. Images are the first ``--num`` of
the test split; masks come from ``--seed``. From Python (e.g. right after
``pretrain``)::

    write_samples(method, state, test_images[:10], "samples.png")
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

import os

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
  ``method.complete`` and write the grid of :data:`ROWS` to ``path``;
  returns ``method.complete``'s arrays (numpy)."""
  out = jax.jit(method.complete)(
      {"params": state.params, "batch_stats": state.batch_stats},
      np.asarray(images), jax.random.key(seed))
  out = jax.device_get(out)
  save_image_grid(path, [(label, out[key]) for key, label in ROWS],
                  title=title)
  return out


def main(argv):
  del argv
  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import build_method
  from ssljax.train.checkpoint import Checkpointer
  from ssljax.train.loop import load_config, load_dataset
  config = load_config(_WORKDIR.value)
  train, test = load_dataset(config, "train"), load_dataset(config, "test")
  method, _ = build_method(config, len(train))
  state = method.init(jax.random.key(config.seed), train.image_shape)
  ckpt = Checkpointer(os.path.join(_WORKDIR.value, "checkpoints"))
  state = ckpt.restore(state)
  ckpt.close()
  path = _OUT.value or os.path.join(_WORKDIR.value, "inpainting_samples.png")
  write_samples(method, state, test.images[:_NUM.value], path,
                seed=_SEED.value,
                title=f"{config.method} {config.dataset}, step {int(state.step)}")
  print(f"wrote {path}")


if __name__ == "__main__":
  from absl import app, flags
  _WORKDIR = flags.DEFINE_string("workdir", None, "pretrain.py --workdir.",
                                 required=True)
  _NUM = flags.DEFINE_integer("num", 10, "held-out images to show.")
  _SEED = flags.DEFINE_integer("seed", 0, "mask seed (random masks).")
  _OUT = flags.DEFINE_string("out", "", "PNG path (default: in --workdir).")
  app.run(main)
