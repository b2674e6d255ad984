"""Colorization quality (Zhang et al. 2016) of a colorization / split-brain
network on held-out images, beside constant-colour baselines, and pictures.

Per held-out image (uint8 RGB), with the true ``L`` and the predicted ab
(annealed mean at T = 0.38 and the mean at T = 1):

* ``ab_error``: the mean L2 distance to the true ab (ab units), the share of
  pixels within 10 / 25, and ``auc``: the area under the cumulative
  per-pixel ab-error curve over thresholds 0-150 (Zhang et al. 2016, Table
  1; 1 = every pixel exact), raw and class-rebalanced (``auc_rebalanced``:
  each pixel weighted by the inverse frequency of its true ab bin among the
  held-out pixels, so every colour counts alike: there, gray loses);
* ``psnr_db``: the PSNR (dm-pix) of the recoloured image (true L, predicted
  ab -> sRGB) against the original;
* ``bin_acc`` and the soft-target cross-entropy, unweighted and rebalanced
  (:func:`ssljax.losses.colorization_loss`), at the prediction resolution.

Baselines: gray (ab = 0), the training images' mean ab, the training
pixels' most frequent bin. :func:`evaluate_colorization` measures all of it
for each given state (e.g. trained and random init);
:func:`evaluate_splitbrain` gives split-brain's held-out losses beside the
training marginals. :func:`save_colorization_png` draws gray input,
colorizations and originals side by side (:func:`colorize_holdout_photos`:
the held-out photos whole; :func:`colorize_holdout_crops`: a few held-out
crops of each source, for colorization or split-brain's L -> ab half).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment import to_float
from ssljax.augment.lab import (lab_to_rgb, nearest_ab_bin, rgb_to_lab,
                                soft_encode_ab)
from ssljax.data.photos import find_photos, read_photo, split_photos
from ssljax.eval.features import map_in_batches
from ssljax.losses.colorization import colorization_loss

__all__ = [
    "AUC_MAX_ERROR",
    "ab_error_metrics",
    "colorize_holdout_crops",
    "colorize_holdout_photos",
    "evaluate_colorization",
    "evaluate_splitbrain",
    "holdout_photos",
    "recolor_psnr",
    "save_colorization_png",
    "training_colour_baselines",
]

#: The ab-error thresholds of the AuC run from 0 to this (Zhang et al.).
AUC_MAX_ERROR = 150.0


def ab_error_metrics(pred_ab, true_ab, *, pixel_weights=None) -> dict:
  """``ab_error`` (mean L2), ``within_10``, ``within_25`` and ``auc`` (the
  mean over thresholds 0, 1, ..., 150 of the share of pixels with an error
  at most the threshold) of ``pred_ab`` against ``true_ab`` (``[..., 2]``,
  broadcastable); with ``pixel_weights`` (``true_ab.shape[:-1]``) also
  ``auc_rebalanced``, the AuC of the weighted share."""
  d = np.linalg.norm(np.asarray(pred_ab, np.float32)
                     - np.asarray(true_ab, np.float32), axis=-1)
  thresholds = np.arange(0.0, AUC_MAX_ERROR + 1.0)
  counts = np.searchsorted(np.sort(d.ravel()), thresholds, side="right")
  out = {"ab_error": float(d.mean()), "within_10": float((d <= 10).mean()),
         "within_25": float((d <= 25).mean()),
         "auc": float(np.mean(counts / d.size))}
  if pixel_weights is not None:
    w = np.broadcast_to(np.asarray(pixel_weights, np.float64), d.shape).ravel()
    order = np.argsort(d.ravel())
    cum = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
    idx = np.searchsorted(d.ravel()[order], thresholds, side="right")
    out["auc_rebalanced"] = float(np.mean(cum[idx]))
  return out


@jax.jit
def _recolor_psnr(packed):
  """``packed`` = [predicted ab (2) | true Lab (3) | original RGB in 0-255 (3)]."""
  pred_ab, true_lab, rgb = packed[..., :2], packed[..., 2:5], packed[..., 5:]
  recolored = lab_to_rgb(jnp.concatenate([true_lab[..., :1], pred_ab], -1))
  return pix.psnr(recolored, rgb / 255.0)


def recolor_psnr(pred_ab, true_lab, images) -> np.ndarray:
  """Per-image PSNR ``[N]`` (dB, range 1) of sRGB(true L, ``pred_ab``)
  against the original uint8 ``images``."""
  pred_ab = np.broadcast_to(np.asarray(pred_ab, np.float32),
                            true_lab[..., 1:].shape)
  packed = np.concatenate([pred_ab, np.asarray(true_lab, np.float32),
                           np.asarray(images, np.float32)], -1)
  return map_in_batches(_recolor_psnr, packed, 256)


def _lab_of(images, batch=256) -> np.ndarray:
  return map_in_batches(jax.jit(rgb_to_lab), images, batch)


def _pool(x, hw) -> np.ndarray:
  """Average-pool ``[N, H, W, C]`` to ``[N, h, w, C]``."""
  n, big_h, big_w, c = x.shape
  h, w = hw
  return x.reshape(n, h, big_h // h, w, big_w // w, c).mean((2, 4))


def _quality(pred_ab, true_lab, images, weights) -> dict:
  out = ab_error_metrics(pred_ab, true_lab[..., 1:], pixel_weights=weights)
  out["psnr_db"] = float(np.mean(recolor_psnr(pred_ab, true_lab, images)))
  return out


def _inverse_bin_frequency(true_ab, bins) -> np.ndarray:
  """Per-pixel weights ``1 / count(its nearest bin)`` over ``true_ab``."""
  idx = np.asarray(jax.jit(lambda a: nearest_ab_bin(a, bins))(
      true_ab.reshape(-1, 2)))
  counts = np.bincount(idx, minlength=len(bins)).astype(np.float64)
  return (1.0 / counts[idx]).reshape(true_ab.shape[:-1])


def _colorization_scores(method, states, mean_ab, mode_bin, images, *,
                         temperatures, batch_size) -> dict:
  bins = method.bin_centers
  true_lab = _lab_of(images)
  true_ab = true_lab[..., 1:]
  weights = _inverse_bin_frequency(true_ab, bins)
  logits_fn = jax.jit(method.predict_logits)
  out = {}
  target_bin = None
  for name, st in states.items():
    logits = map_in_batches(lambda x, st=st: logits_fn(st, x), images,
                            batch_size)
    hw = logits.shape[1:3]
    res = {}
    for t in temperatures:
      decode = jax.jit(lambda lg, t=t: method.decode_ab(
          lg, images.shape[1:3], temperature=t))
      ab = map_in_batches(decode, logits, 512)
      res[f"T={t}"] = _quality(ab, true_lab, images, weights)
    pooled = _pool(true_ab, hw)                 # at the prediction resolution
    target_bin = np.asarray(jax.jit(lambda a: nearest_ab_bin(a, bins))(pooled))
    res["bin_acc"] = float((logits.argmax(-1) == target_bin).mean())
    z = jax.jit(lambda a: soft_encode_ab(a, bins))(pooled)
    res["loss_unweighted"] = float(colorization_loss(jnp.asarray(logits), z))
    res["loss_rebalanced"] = float(colorization_loss(
        jnp.asarray(logits), z, class_weights=method.class_weights))
    out[name] = res
  baselines = (("train_mean_ab", mean_ab), ("gray_ab0", np.zeros(2)),
               ("train_mode_bin", bins[mode_bin]))
  for name, ab in baselines:
    ab = np.asarray(ab, np.float32)
    r = _quality(np.broadcast_to(ab, true_ab.shape), true_lab, images, weights)
    b = int(np.asarray(nearest_ab_bin(jnp.asarray(ab), bins)))
    if target_bin is not None:
      r["bin_acc"] = float((target_bin == b).mean())
    r["value"] = [round(float(v), 2) for v in ab]
    out[name] = r
  return out


def training_colour_baselines(method, train_images) -> tuple:
  """``(mean_ab [2], mode_bin)``: the mean ab of the uint8 RGB training
  images' pixels and the most frequent of ``method.bin_centers`` among them
  (the constant baselines of :func:`evaluate_colorization`)."""
  bins = method.bin_centers
  train_lab = _lab_of(train_images)
  mean_ab = train_lab[..., 1:].reshape(-1, 2).mean(0)
  train_bins = np.bincount(np.asarray(jax.jit(
      lambda a: nearest_ab_bin(a, bins))(train_lab[..., 1:].reshape(-1, 2))),
      minlength=len(bins))
  return mean_ab, int(train_bins.argmax())


def evaluate_colorization(method, states: Mapping[str, Any], train_images,
                          test_images, *, temperatures=(0.38, 1.0),
                          batch_size: int = 128,
                          train_subset_every: int = 9,
                          baselines: tuple | None = None) -> dict:
  """Colorization quality (module docstring) of each of ``states`` (e.g.
  ``{"trained": state, "random_init": init_state}``) on uint8 RGB
  ``test_images``, beside the constant baselines fitted on
  ``train_images``; and, to show the generalization gap, the first state
  and gray on every ``train_subset_every``-th training image
  (``"<first>_on_train_crops"``, ``"gray_on_train_crops"``).

  ``method``: a :class:`~ssljax.methods.Colorization` (or anything with
  ``predict_logits``, ``decode_ab``, ``bin_centers``, ``class_weights``).
  ``baselines``: :func:`training_colour_baselines` of ``train_images``,
  if already computed.
  """
  mean_ab, mode_bin = baselines or training_colour_baselines(method,
                                                             train_images)
  kw = dict(temperatures=temperatures, batch_size=batch_size)
  out = _colorization_scores(method, states, mean_ab, mode_bin, test_images,
                             **kw)
  if train_subset_every:
    first = next(iter(states))
    sub = _colorization_scores(method, {first: states[first]}, mean_ab,
                               mode_bin, train_images[::train_subset_every],
                               **kw)
    out[f"{first}_on_train_crops"] = sub[first]
    out["gray_on_train_crops"] = sub["gray_ab0"]
  return out


def evaluate_splitbrain(method, states: Mapping[str, Any], train_images,
                        test_images, *, chunk: int = 128) -> dict:
  """Split-brain's held-out losses and accuracies (``method.evaluate``, in
  chunks of ``chunk`` images, equally weighted) for each of ``states``,
  beside ``train_marginal``: predicting the training pixels' bin
  frequencies (ab, and L) everywhere."""
  ev = jax.jit(method.evaluate)
  out = {}
  for name, st in states.items():
    per_chunk = [jax.device_get(ev(st, jnp.asarray(test_images[i:i + chunk])))
                 for i in range(0, len(test_images), chunk)]
    out[name] = {k: float(np.mean([c[k] for c in per_chunk]))
                 for k in per_chunk[0]}
  bins = method.bin_centers
  num_l = int(getattr(method, "num_l_bins", 50))
  s = jax.eval_shape(method.predict_logits, next(iter(states.values())),
                     jax.ShapeDtypeStruct((1, *test_images.shape[1:]),
                                          test_images.dtype)).shape[1:3]
  tr = _pool(_lab_of(train_images), s)
  te = _pool(_lab_of(test_images), s)
  nb = jax.jit(lambda a: nearest_ab_bin(a, bins))
  p_ab = np.bincount(np.asarray(nb(tr[..., 1:].reshape(-1, 2))),
                     minlength=len(bins)) + 1.0
  p_ab /= p_ab.sum()
  z = np.asarray(jax.jit(lambda a: soft_encode_ab(a, bins))(
      te[..., 1:].reshape(-1, 2)))
  width = 100.0 / num_l
  l_tr = np.clip(np.floor(tr[..., 0] / width), 0, num_l - 1).astype(int).ravel()
  l_te = np.clip(np.floor(te[..., 0] / width), 0, num_l - 1).astype(int).ravel()
  p_l = np.bincount(l_tr, minlength=num_l) + 1.0
  p_l /= p_l.sum()
  m = {"loss_ab": float(-(z * np.log(p_ab)).sum(-1).mean()),
       "loss_l": float(-np.log(p_l[l_te]).mean()),
       "ab_acc": float((z.argmax(-1) == p_ab.argmax()).mean()),
       "l_acc": float((l_te == p_l.argmax()).mean())}
  m["loss"] = m["loss_ab"] + m["loss_l"]
  out["train_marginal"] = m
  return out


# ---------------------------------------------------------------------------
# Pictures.


def holdout_photos(long_side: int = 128, multiple: int = 8, *,
                   data_dir: str | None = None
                   ) -> tuple[list[np.ndarray], list[str]]:
  """The held-out opencv-doc photos (``split_photos(...)["test"]``), resized
  (box filter) so the long side is about ``long_side`` and both sides are
  multiples of ``multiple``: ``(uint8 [H, W, 3] images, file names)``."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  paths = split_photos(find_photos(data_dir))["test"]
  images, names = [], []
  for p in paths:
    im = Image.fromarray(read_photo(p)[..., :3])
    w, h = im.size
    s = long_side / max(w, h)
    nw = max(int(round(w * s / multiple)), 1) * multiple
    nh = max(int(round(h * s / multiple)), 1) * multiple
    images.append(np.asarray(im.resize((nw, nh), Image.Resampling.BOX)))
    names.append(os.path.basename(p))
  return images, names


def colorize_holdout_photos(path: str, method, state, *,
                            long_side: int = 128, data_dir: str | None = None
                            ) -> str:
  """A PNG of the held-out photos colorized whole: gray input, annealed mean
  (T = the method's), mean (T = 1), original; photos padded with white to
  one size. Returns ``path``."""
  photos, names = holdout_photos(long_side, data_dir=data_dir)
  cols = [np.asarray(method.colorize(state, im[None]))[0] for im in photos]
  means = [np.asarray(method.colorize(state, im[None], temperature=1.0))[0]
           for im in photos]
  hmax = max(p.shape[0] for p in photos)
  wmax = max(p.shape[1] for p in photos)

  def pad(x):
    x = np.asarray(to_float(x), np.float32)
    out = np.ones((hmax, wmax, 3), np.float32)
    out[:x.shape[0], :x.shape[1]] = x
    return out

  return save_colorization_png(
      path, np.stack([pad(p) for p in photos]), np.stack([pad(c) for c in cols]),
      extra={"mean (T=1)": np.stack([pad(m) for m in means])}, titles=names)


def _recolored(method, state, images, temperature=None) -> np.ndarray:
  """sRGB ``[N, H, W, 3]``: the images' own ``L`` with ``method.predict_ab``
  (colorization, or split-brain's L -> ab half)."""
  lab = rgb_to_lab(to_float(jnp.asarray(images)))
  ab = method.predict_ab(state, jnp.asarray(images), temperature=temperature)
  return np.asarray(lab_to_rgb(jnp.concatenate([lab[..., :1], ab], -1)))


def colorize_holdout_crops(path: str, method, state, crops, *,
                           per_source: int = 2, random_state=None) -> str:
  """A PNG of held-out crops, ``per_source`` of each source (evenly spaced in
  its stored order; ``crops.source_ids``, else the labels, say the source):
  gray input, the colorization (annealed mean, T = the method's), the mean
  (T = 1), the same network at ``random_state`` when given, and the
  original. Rows are titled with the source's name. Returns ``path``."""
  images = np.asarray(crops.images)
  sids = getattr(crops, "source_ids", None)
  sids = np.asarray(crops.labels if sids is None else sids)
  names = (getattr(crops, "source_names", ()) or getattr(crops, "sources", ())
           or ())
  chosen = []
  for s in np.unique(sids):
    idx = np.flatnonzero(sids == s)
    k = min(per_source, len(idx))
    chosen += list(idx[((np.arange(k) + 0.5) * len(idx) / k).astype(int)])
  x = images[np.asarray(chosen, np.int64)]
  extra = {"mean (T=1)": _recolored(method, state, x, 1.0)}
  if random_state is not None:
    extra["random init"] = _recolored(method, random_state, x)
  titles = [str(names[sids[i]]).split(":", 1)[-1] if len(names) > sids[i]
            else f"source {sids[i]}" for i in chosen]
  return save_colorization_png(path, x, _recolored(method, state, x),
                               extra=extra, titles=titles)


def save_colorization_png(path: str, originals, colorized, *,
                          titles: Sequence[str] | None = None,
                          extra: Mapping[str, Any] | None = None,
                          dpi: int = 100) -> str:
  """Write a PNG with one row per image: the gray input (its ``L``), each
  colorization (``colorized``, then any ``extra`` columns ``{name:
  images}``) and the original.

  Images are uint8 or [0, 1] float ``[N, H, W, 3]``. Uses a Matplotlib
  ``Figure`` with the Agg canvas (no pyplot state). Returns ``path``.
  """
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  originals = np.asarray(to_float(originals))
  gray = np.asarray(lab_to_rgb(jnp.concatenate(
      [rgb_to_lab(originals)[..., :1], jnp.zeros(originals.shape[:-1] + (2,))],
      -1)))
  columns = [("gray input (L)", gray), ("colorized", colorized)]
  columns += list((extra or {}).items())
  columns.append(("original", originals))
  columns = [(name, np.clip(np.asarray(to_float(x)), 0, 1))
             for name, x in columns]
  n = originals.shape[0]
  h, w = originals.shape[1:3]
  cell = 2.2
  fig = Figure(figsize=(cell * len(columns) * w / max(h, w) + 0.4,
                        cell * n * h / max(h, w) + 0.4))
  FigureCanvasAgg(fig)
  axes = fig.subplots(n, len(columns), squeeze=False)
  for i in range(n):
    for j, (name, x) in enumerate(columns):
      ax = axes[i, j]
      ax.imshow(x[i], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(name, fontsize=9)
      if j == 0 and titles is not None:
        ax.set_ylabel(titles[i], fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  return path
