"""Evaluation of video colorization (Vondrick et al. 2018): colorization of
held-out frames against copying the reference, by the gap to the
references, and tracking by label propagation (J = region IoU) by motion
speed, for a trained network and the same network at random init.

* :func:`eval_colorization`: every ``clip_every``-th clip of each held-out
  video (3 references ``stride`` frames apart, then the target) at the test
  temperature 0.5: accuracy on the colour clusters (at the embedding
  resolution), the cross-entropy and the mean ab error at full resolution
  (decoded ab = the expectation over the cluster centres, upsampled
  bilinearly; ``argmax``: the most likely cluster's centre), beside
  :func:`colorization_baseline_scores`: copying the last reference frame's
  colours at the same pixel (its ab, and its clusters' centres), the
  training frames' mean colour, and the quantization floor.
* :func:`eval_colorization_by_gap`: the same target frames colorized from
  references ``gap`` frames back, for several gaps; per gap the networks'
  per-clip differences from copying the reference, and whether the issue's
  bar is met (``"verdict"``: beat copying at every gap >= 8, beat random
  init at every gap). :func:`copy_baseline_by_gap`: the baselines alone (no
  network; ``experiments/video_colorization.py --copy_baseline_only``).
* :func:`eval_tracking` on :func:`make_tracking_sequences`: a crop of a
  held-out photo, with an elliptical alpha, pasted onto consecutive
  held-out video frames and moved in a straight line at a set speed
  (``options.speeds``: 0, 1, 2 and 4 pixels per frame at 72x96, bouncing
  off the frame's edges; sub-pixel rendering, so the mask moves exactly
  that far each frame); the first frame's mask is propagated through the
  sequence; J per frame for each network, "copy the first mask" and the
  1/4-resolution ceiling, per speed bin and pooled over the moving bins
  (speed > 0), with the per-sequence difference from copying.
* :func:`make_real_motion_sequences`: the walking people of ``vtest.avi``
  (static camera): pseudo ground truth from background subtraction
  (:func:`background_masks`: median background, threshold, opening and
  closing; one person's component followed by overlap,
  :func:`follow_components`), 144x192 windows of the frames at four times
  the training scale. ``vtest.avi`` is a training video: the pretext saw
  its frames (at 96 wide), never its masks.
* :func:`evaluate_video_colorization`: all of the above and the pictures,
  as one JSON-ready dict (what ``experiments/video_colorization.py`` and
  ``experiments/evaluate.py`` write).

The caller passes the method, its states (``{"trained": ..., "random_init":
...}``) and the train / test :class:`ssljax.data.video.ClipDataset` s (a
restored run has all of them: ``ssljax.run.restore``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment.lab import lab_to_rgb, rgb_to_lab
from ssljax.data.photos import (find_photos, random_photo_crops, read_photo,
                                split_photos)
from ssljax.data.video import all_clips, clip_span, find_videos, load_video
from ssljax.eval.features import map_in_batches
from ssljax.losses.colorization import video_colorization_loss
from ssljax.methods.video_colorization import color_cluster_targets

__all__ = [
    "SPEED_BINS",
    "TrackingSequence",
    "VideoEvalOptions",
    "background_masks",
    "bounce_path",
    "colorization_baseline_scores",
    "copy_baseline_by_gap",
    "ellipse_alpha",
    "eval_colorization",
    "eval_colorization_by_gap",
    "eval_tracking",
    "evaluate_video_colorization",
    "follow_components",
    "j_by_speed",
    "make_real_motion_sequences",
    "make_tracking_sequences",
    "save_gap_png",
    "save_tracking_png",
    "save_video_colorization_png",
    "tracking_iou",
    "train_mean_ab",
]

#: The tracking benchmark's speed bins: name -> pixels per frame at 72x96
#: (1/4, 1/2 and 1 embedding cell per frame; "static" is the control,
#: where copying the first mask is exact). "Moving" = every bin with speed
#: > 0.
SPEED_BINS = (("static", 0.0), ("slow", 1.0), ("medium", 2.0), ("fast", 4.0))
#: The issue's bar: trained J - copy-the-first-mask J on moving sequences.
J_MARGIN = 0.1
#: Gaps at which the trained network must beat copying the reference.
HARD_GAP = 8


@dataclasses.dataclass(frozen=True)
class VideoEvalOptions:
  """What :func:`evaluate_video_colorization` measures (the defaults are the
  full evaluation; tests shrink them). Fixed before the run: no choice is
  made on the held-out video.

  Attributes:
    clip_every: colorize every ``clip_every``-th held-out target frame (at
      the training stride, gap = stride).
    batch_size: clips per evaluation batch.
    gaps: also colorize the same targets from references ``gap`` frames
      back, for each gap (``()``: not measured); every ``gap_every``-th
      target with all references at the largest gap.
    speeds: the tracking speed bins, ``((name, pixels per frame), ...)``.
    sequences_per_speed: tracking sequences per speed bin.
    length: frames per tracking sequence (consecutive held-out frames).
    object_size: ``(min, max)`` side of the pasted object, in pixels.
    topk, radius, num_prev: the propagation options (``propagate_labels``)
      of the main tracking variant (``"topk_radius_prev"``).
    colorization_radius: also colorize (by gap) attending only to the
      reference cells within this many cells of the target cell
      (``"trained_local"``; ``None``: not measured): the locality copying
      has, fixed before the run at the tracking radius.
    real_motion_sequences: sequences of vtest.avi's walking people with
      background-subtraction masks (0: not measured; skipped with the
      reason when vtest.avi or OpenCV is missing).
    real_motion_stride: take every ``real_motion_stride``-th frame.
    real_motion_width: decode vtest.avi at this width (384: 288x384, four
      times the training scale, where a person is about 8x20 pixels).
    real_motion_window: cut each sequence to this window (fixed, centred
      on the person's path).
    png_frames: frames shown per row in the tracking picture.
    seed: the tracking sequences' seed (the run's ``config.seed``).
  """
  clip_every: int = 2
  batch_size: int = 32
  gaps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
  gap_every: int = 1
  speeds: tuple[tuple[str, float], ...] = SPEED_BINS
  sequences_per_speed: int = 8
  length: int = 24
  object_size: tuple[int, int] = (20, 30)
  topk: int = 10
  radius: int = 4
  num_prev: int = 3
  colorization_radius: int | None = 4
  real_motion_sequences: int = 8
  real_motion_stride: int = 1
  real_motion_width: int = 384
  real_motion_window: tuple[int, int] = (144, 192)
  png_frames: int = 6
  seed: int = 0


# ---------------------------------------------------------------------------
# Colorization of held-out frames.


def _lab(images) -> jax.Array:
  x = jnp.asarray(images)
  x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
  return rgb_to_lab(x)


def colorization_baseline_scores(clips, centroids, mean_ab, *,
                                 grid_stride: int = 4
                                 ) -> dict[str, dict[str, jax.Array]]:
  """Per-clip scores of colorizing each clip's target (last frame) without a
  network, for uint8 / [0, 1] RGB clips ``[B, R + 1, H, W, 3]``:

  * ``copy_reference``: the last reference frame's ab at the same pixel
    (cluster accuracy: its clusters against the target's);
  * ``copy_reference_quantized``: the same through the clusters (the
    reference's cluster centres at ``1 / grid_stride``, nearest upsampling);
  * ``train_mean_color``: ab ``mean_ab`` everywhere (cluster: the centre
    nearest to it);
  * ``quantization_floor``: the target's own cluster centres (accuracy 1).

  Returns ``{name: {"cluster_acc": [B], "ab_error": [B]}}``: the fraction of
  ``H / grid_stride x W / grid_stride`` cells whose cluster is the target's
  (:func:`~ssljax.methods.video_colorization.color_cluster_targets`), and
  the mean L2 ab error at ``H x W``. Jittable (``centroids [K, 2]``,
  ``mean_ab [2]``: arrays)."""
  lab = _lab(clips)
  if lab.ndim != 5 or lab.shape[1] < 2:
    raise ValueError(f"clips must be [B, R + 1 >= 2, H, W, 3]; got "
                     f"{lab.shape}.")
  b, _, big_h, big_w, _ = lab.shape
  c = jnp.asarray(centroids, jnp.float32)
  mean_ab = jnp.asarray(mean_ab, jnp.float32)
  cl = color_cluster_targets(lab[:, -2:], c, (big_h // grid_stride,
                                              big_w // grid_stride))
  ref_cl, tgt_cl = cl[:, 0], cl[:, 1]                       # [B, h, w]
  true_ab, ref_ab = lab[:, -1, ..., 1:], lab[:, -2, ..., 1:]

  def up(ab):
    return jax.image.resize(ab, (b, big_h, big_w, 2), "nearest")

  def err(ab):
    return jnp.linalg.norm(ab - true_ab, axis=-1).mean((1, 2))

  def acc(pred):
    return (pred == tgt_cl).astype(jnp.float32).mean((1, 2))

  mean_cluster = jnp.argmin(((c - mean_ab) ** 2).sum(-1))
  copy_acc = acc(ref_cl)
  return {
      "copy_reference": {"cluster_acc": copy_acc, "ab_error": err(ref_ab)},
      "copy_reference_quantized": {"cluster_acc": copy_acc,
                                   "ab_error": err(up(c[ref_cl]))},
      "train_mean_color": {"cluster_acc": acc(mean_cluster),
                           "ab_error": err(mean_ab)},
      "quantization_floor": {"cluster_acc": jnp.ones((b,), jnp.float32),
                             "ab_error": err(up(c[tgt_cl]))},
  }


def train_mean_ab(videos: Sequence[np.ndarray]) -> np.ndarray:
  """The mean ab of all pixels of ``videos`` (uint8 ``[T, H, W, 3]`` each;
  videos weighted by frame count): float32 ``[2]``."""
  mean_fn = jax.jit(lambda x: rgb_to_lab(x)[..., 1:].mean((0, 1, 2)))
  counts = np.array([len(v) for v in videos], np.float64)
  means = np.stack([np.asarray(mean_fn(np.asarray(v))) for v in videos])
  return ((means * counts[:, None]).sum(0) / counts.sum()).astype(np.float32)


def eval_colorization(method, states: Mapping, test_videos: Mapping, *,
                      mean_ab, num_refs: int = 3, stride: int = 2,
                      every: int = 2, batch_size: int = 32) -> dict:
  """Per held-out video and pooled over all: cluster accuracy, CE loss and ab
  error of each network (``states``: name -> state) and of the baselines
  (:func:`colorization_baseline_scores`), on every ``every``-th clip of
  each of ``test_videos`` (``{name: uint8 [T, H, W, 3]}``)."""
  c = jnp.asarray(method.centers)
  mean_ab = np.asarray(mean_ab, np.float32)
  mean_cluster = int(np.argmin(((method.centers - mean_ab) ** 2).sum(-1)))

  @jax.jit
  def truth(clips):
    lab = _lab(clips)                                        # [B, R+1, H, W, 3]
    h, w = lab.shape[2] // 4, lab.shape[3] // 4
    cl = color_cluster_targets(lab, c, (h, w))              # [B, R+1, h, w]
    shape = (lab.shape[0], *lab.shape[2:4], 2)
    return {"ab": lab[:, -1, ..., 1:], "ref_ab": lab[:, -2, ..., 1:],
            "clusters": cl[:, -1], "ref_clusters": cl[:, -2],
            "quant_ab": jax.image.resize(c[cl[:, -1]], shape, "nearest"),
            "ref_quant_ab": jax.image.resize(c[cl[:, -2]], shape, "nearest")}

  predict = jax.jit(lambda st, x: method.predict(st, x))
  decode = {mode: jax.jit(lambda p, hw, mode=mode: method.decode_ab(
      p, hw, mode=mode), static_argnums=1) for mode in ("mean", "argmax")}
  totals, per_video = {}, {}

  def add(name, key, value, count):
    d = totals.setdefault(name, {})
    s, n = d.get(key, (0.0, 0))
    d[key] = (s + float(value) * count, n + count)

  def error(ab, true_ab):
    return float(np.linalg.norm(ab - true_ab, axis=-1).mean())

  for vname, frames in test_videos.items():
    clips = all_clips(frames, num_refs=num_refs, stride=stride, every=every)
    if not len(clips):
      continue
    tr = map_in_batches(truth, clips, batch_size)
    true_ab = tr["ab"]
    hw = true_ab.shape[1:3]
    npix, ncell = true_ab[..., 0].size, tr["clusters"].size
    results = {}
    for name, st in states.items():
      out = map_in_batches(lambda x, st=st: predict(st, x), clips, batch_size)
      ab_mean = map_in_batches(lambda p: decode["mean"](p, hw), out["probs"],
                               batch_size)
      ab_max = map_in_batches(lambda p: decode["argmax"](p, hw), out["probs"],
                              batch_size)
      results[name] = {
          "cluster_acc": float((out["probs"].argmax(-1) == tr["clusters"]
                                ).mean()),
          "loss": float(video_colorization_loss(
              jnp.asarray(out["probs"]), jnp.asarray(tr["clusters"]))),
          "ab_error": error(ab_mean, true_ab),
          "ab_error_argmax": error(ab_max, true_ab),
      }
    copy_acc = float((tr["ref_clusters"] == tr["clusters"]).mean())
    results["copy_reference"] = {"cluster_acc": copy_acc,
                                 "ab_error": error(tr["ref_ab"], true_ab)}
    results["copy_reference_quantized"] = {
        "cluster_acc": copy_acc, "ab_error": error(tr["ref_quant_ab"], true_ab)}
    results["train_mean_color"] = {
        "cluster_acc": float((tr["clusters"] == mean_cluster).mean()),
        "ab_error": error(mean_ab, true_ab)}
    results["quantization_floor"] = {
        "cluster_acc": 1.0, "ab_error": error(tr["quant_ab"], true_ab)}
    for name, r in results.items():
      for k, v in r.items():
        add(name, k, v, ncell if k in ("cluster_acc", "loss") else npix)
    results["num_clips"] = int(len(clips))
    per_video[vname] = results
  pooled = {name: {k: s / n for k, (s, n) in d.items()}
            for name, d in totals.items()}
  return {"all_held_out": pooled, "per_video": per_video,
          "train_mean_ab": [round(float(x), 2) for x in mean_ab],
          "decoding": "ab_error: expectation of the cluster centres under the "
                      "predicted distribution (T=0.5), upsampled bilinearly; "
                      "ab_error_argmax: centre of the most likely cluster"}


def _paired(diff) -> dict:
  """Mean, standard error and share > 0 of per-clip differences ``[N]``."""
  d = np.asarray(diff, np.float64)
  se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
  return {"mean": float(d.mean()), "standard_error": se,
          "share_of_clips_above_zero": float((d > 0).mean())}


def eval_colorization_by_gap(method, states: Mapping, test_videos: Mapping,
                             gaps: Sequence[int], *, mean_ab,
                             centroids=None, num_refs: int = 3,
                             stride: int = 2, every: int = 1,
                             batch_size: int = 32, grid_stride: int = 4,
                             radius: int | None = None) -> dict:
  """Colorization of held-out target frames from references ``gap`` frames
  back (the last reference at ``t - gap``, the others ``stride`` apart
  before it), for each gap, on the same target frames at every gap (those
  with all references at the largest gap, every ``every``-th): cluster
  accuracy, CE loss and ab error of each network and baseline, pooled over
  the held-out videos and per video.

  Each network is scored with the attention over all reference cells (as
  trained; ``"<name>"``) and, with ``radius``, over the reference cells
  within ``radius`` cells of the target cell only (``"<name>_local"``).
  For each, ``"<name>_minus_copy_reference"`` per gap: the per-clip
  difference in cluster accuracy from copying the last reference (mean,
  standard error over clips, share of clips where the network is ahead;
  neighbouring clips share frames, so the error is optimistic). With a
  ``"trained"`` network, ``"verdict"`` (and ``"verdict_local"``): does it
  beat copying at every gap >= :data:`HARD_GAP` and random init (the same
  attention) at every gap, by pooled cluster accuracy.

  ``method=None`` with ``states={}`` and ``centroids [K, 2]``: the
  baselines alone (:func:`copy_baseline_by_gap`)."""
  gaps = sorted({int(g) for g in gaps})
  if not gaps or gaps[0] < 1:
    raise ValueError(f"gaps must be >= 1; got {gaps}.")
  if centroids is None:
    centroids = method.centers
  centroids = np.asarray(centroids, np.float32)
  first = clip_span(num_refs, stride, max(gaps))
  nets = {name: jax.jit(lambda x, st=st: method.clip_scores(st, x))
          for name, st in states.items()}
  if radius is not None:
    nets.update({f"{name}_local": jax.jit(
        lambda x, st=st: method.clip_scores(st, x, radius=radius))
                 for name, st in states.items()})
  base = jax.jit(lambda x: colorization_baseline_scores(
      x, centroids, mean_ab, grid_stride=grid_stride))
  table, per_video, targets, paired = {}, {}, {}, {}
  for gap in gaps:
    scores = {}                                   # name/metric -> [clips]
    for vname, frames in test_videos.items():
      clips = all_clips(frames, num_refs=num_refs, stride=stride, every=every,
                        gap=gap, first_target=first)
      if not len(clips):
        continue
      targets[vname] = len(clips)
      out = {name: map_in_batches(fn, clips, batch_size)
             for name, fn in nets.items()}
      out.update(map_in_batches(base, clips, batch_size))
      pv = per_video.setdefault(vname, {}).setdefault(str(gap), {})
      for name, r in out.items():
        pv[name] = {k: float(np.mean(v)) for k, v in r.items()}
        for k, v in r.items():
          scores.setdefault(name, {}).setdefault(k, []).append(np.asarray(v))
    if not scores:
      raise ValueError(f"no held-out video has more than {first} frames "
                       f"(references at gap {max(gaps)}).")
    flat = {name: {k: np.concatenate(v) for k, v in r.items()}
            for name, r in scores.items()}
    table[str(gap)] = {name: {k: float(v.mean()) for k, v in r.items()}
                       for name, r in flat.items()}
    table[str(gap)]["num_clips"] = int(sum(targets.values()))
    for name in nets:
      paired.setdefault(f"{name}_minus_copy_reference", {})[str(gap)] = (
          _paired(flat[name]["cluster_acc"]
                  - flat["copy_reference"]["cluster_acc"]))
  out = {"gaps": gaps, "all_held_out": table, "per_video": per_video,
         "paired_cluster_acc": paired, "clips_per_video": targets,
         "local_radius_cells": radius,
         "targets": f"every {every} frame(s) of each video, from frame "
                    f"{first} of it (the first with all references at gap "
                    f"{max(gaps)}); the same targets at every gap",
         "references": f"{num_refs} frames: t - gap - {stride} k, k = "
                       f"{num_refs - 1}..0; copy_reference copies t - gap",
         "decoding": "as in 'colorization': T = 0.5, ab_error = expectation "
                     "over the cluster centres, upsampled bilinearly"}
  acc = lambda g, n: table[str(g)][n]["cluster_acc"]
  hard = [g for g in gaps if g >= HARD_GAP]
  for suffix in ("", "_local"):
    trained, rand = f"trained{suffix}", f"random_init{suffix}"
    if trained not in nets:
      continue
    out[f"verdict{suffix}"] = {
        "network": trained,
        "beats_copy_reference_at_every_gap_from_8": bool(hard) and all(
            acc(g, trained) > acc(g, "copy_reference") for g in hard),
        "beats_copy_reference_by_gap": {
            str(g): acc(g, trained) > acc(g, "copy_reference")
            for g in gaps},
        "beats_random_init_at_every_gap": rand in nets and all(
            acc(g, trained) > acc(g, rand) for g in gaps),
        "criterion": f"pooled held-out cluster accuracy: {trained} > copy "
                     f"reference at every gap >= {HARD_GAP}, {trained} > "
                     f"{rand} at every gap"}
  return out


def copy_baseline_by_gap(videos: Mapping, gaps: Sequence[int], *, centroids,
                         mean_ab, num_refs: int = 3, stride: int = 2,
                         every: int = 1, batch_size: int = 32,
                         grid_stride: int = 4) -> dict:
  """The baselines of :func:`eval_colorization_by_gap` (copying the last
  reference's colours at the same pixel, its clusters' centres, the
  training mean colour, the quantization floor) on ``videos`` (``{name:
  uint8 [T, H, W, 3]}``), with no network: cluster accuracy at the
  ``1 / grid_stride`` grid against ``centroids [K, 2]`` and ab error,
  ``"pooled"`` over the videos (per clip) and ``"per_video"``, by gap."""
  out = eval_colorization_by_gap(
      None, {}, videos, gaps, mean_ab=mean_ab, centroids=centroids,
      num_refs=num_refs, stride=stride, every=every, batch_size=batch_size,
      grid_stride=grid_stride)
  out["pooled"] = out.pop("all_held_out")
  for key in ("paired_cluster_acc", "local_radius_cells", "decoding"):
    del out[key]
  return out


# ---------------------------------------------------------------------------
# Tracking with known masks: photo crops moving over held-out frames.


@dataclasses.dataclass(frozen=True)
class TrackingSequence:
  """One tracking sequence with its true masks.

  Attributes:
    frames: uint8 ``[L, H, W, 3]``.
    alpha: float32 ``[L, H, W]`` in [0, 1]: the object's (soft) support;
      the true mask is ``alpha > 0.5``; ``alpha[0]`` is what is propagated.
    name: where it comes from (video and start frame, object).
    bin: its speed bin (:data:`SPEED_BINS`), or ``"real_motion"``.
    speed: pixels per frame (``nan`` when not set).
  """
  frames: np.ndarray
  alpha: np.ndarray
  name: str
  bin: str = ""
  speed: float = float("nan")


def bounce_path(start, velocity, length: int, lo, hi) -> np.ndarray:
  """Positions ``[length, 2]`` (float64) of a point starting at ``start``
  and moving ``velocity`` (``[2]``, pixels per frame) in a straight line,
  reflected off the box ``[lo, hi]`` (per axis). Between frames the point
  moves ``|velocity|`` exactly, except across a bounce (less)."""
  start, velocity = np.asarray(start, np.float64), np.asarray(velocity,
                                                              np.float64)
  lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
  if np.any(hi < lo) or np.any(start < lo) or np.any(start > hi):
    raise ValueError(f"need lo <= start <= hi; got {lo}, {start}, {hi}.")
  t = np.arange(length, dtype=np.float64)[:, None]
  span = np.maximum(hi - lo, 1e-12)
  u = np.mod(start - lo + velocity[None] * t, 2 * span)
  return lo + np.where(u > span, 2 * span - u, u)


def ellipse_alpha(hw: tuple[int, int], center, axes) -> np.ndarray:
  """float32 ``[H, W]``: a filled ellipse of semi-axes ``axes = (ay, ax)``
  centred at ``center = (cy, cx)`` (continuous pixel coordinates: pixel
  ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``), with a one-pixel linear
  edge (alpha 0.5 on the ellipse itself)."""
  h, w = hw
  cy, cx = center
  ay, ax = axes
  yy = (np.arange(h, dtype=np.float64) + 0.5 - cy)[:, None] / ay
  xx = (np.arange(w, dtype=np.float64) + 0.5 - cx)[None, :] / ax
  r = np.sqrt(yy ** 2 + xx ** 2)
  return np.clip((1.0 - r) * min(ay, ax) + 0.5, 0.0, 1.0).astype(np.float32)


def _paste(frame, crop, center):
  """``(frame with crop over an ellipse centred at center, alpha)``: the
  crop ``[oh, ow, 3]`` sampled bilinearly at sub-pixel offsets."""
  from scipy import ndimage  # pylint: disable=import-outside-toplevel
  oh, ow = crop.shape[:2]
  alpha = ellipse_alpha(frame.shape[:2], center, (oh / 2, ow / 2))
  ys, xs = np.nonzero(alpha > 0)
  if not len(ys):
    return frame, alpha
  y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
  gy, gx = np.meshgrid(np.arange(y0, y1) + 0.5 - (center[0] - oh / 2) - 0.5,
                       np.arange(x0, x1) + 0.5 - (center[1] - ow / 2) - 0.5,
                       indexing="ij")
  obj = np.stack([ndimage.map_coordinates(crop[..., c].astype(np.float64),
                                          [gy, gx], order=1, mode="nearest")
                  for c in range(3)], -1)
  out = frame.astype(np.float64)
  a = alpha[y0:y1, x0:x1, None]
  out[y0:y1, x0:x1] = a * obj + (1 - a) * out[y0:y1, x0:x1]
  return out, alpha


def make_tracking_sequences(test_videos: Mapping, options: VideoEvalOptions,
                            *, photos: Sequence[str] | None = None
                            ) -> list[TrackingSequence]:
  """``options.sequences_per_speed`` sequences per speed bin
  (``options.speeds``): ``options.length`` consecutive frames of a held-out
  video (start at random), with a random crop of a photo (from ``photos``,
  default the held-out opencv-doc photos: the pretext never saw them)
  under an elliptical alpha, ``object_size`` pixels, pasted at a random
  point and moved in a random direction at the bin's speed, bouncing off
  the frame's edges (:func:`bounce_path`). Seeded by ``options.seed``
  (sequence ``i`` of bin ``b`` from ``default_rng([seed, 1000 b + i])``)."""
  o = options
  if photos is None:
    photos = split_photos(find_photos())["test"]
  videos = [(k, v) for k, v in test_videos.items() if len(v) >= o.length]
  if not videos:
    raise ValueError(f"no held-out video has {o.length} frames for tracking "
                     "sequences.")
  weights = np.array([len(v) - o.length + 1 for _, v in videos], np.float64)
  seqs = []
  for b, (bin_name, speed) in enumerate(o.speeds):
    for i in range(o.sequences_per_speed):
      rng = np.random.default_rng([o.seed, 1000 * b + i])
      vi = int(rng.choice(len(videos), p=weights / weights.sum()))
      vname, video = videos[vi]
      t0 = int(rng.integers(0, len(video) - o.length + 1))
      clip = video[t0:t0 + o.length]
      big_h, big_w = clip.shape[1:3]
      oh, ow = (int(rng.integers(o.object_size[0], o.object_size[1] + 1))
                for _ in range(2))
      photo_path = photos[int(rng.integers(len(photos)))]
      photo = read_photo(photo_path)
      photo = (np.repeat(photo[..., :1], 3, -1) if photo.shape[-1] < 3
               else photo[..., :3])
      crop = random_photo_crops(photo, 1, size=max(oh, ow),
                                scale=(0.15, 0.4), rng=rng)[0]
      crop = np.asarray(jax.image.resize(crop.astype(np.float32),
                                         (oh, ow, 3), "linear"))
      lo, hi = (oh / 2, ow / 2), (big_h - oh / 2, big_w - ow / 2)
      start = rng.uniform(lo, hi)
      angle = rng.uniform(0, 2 * np.pi)
      path = bounce_path(start, speed * np.array([np.sin(angle),
                                                  np.cos(angle)]),
                         o.length, lo, hi)
      frames, alphas = [], []
      for t in range(o.length):
        f, a = _paste(clip[t], crop, path[t])
        frames.append(np.clip(np.round(f), 0, 255).astype(np.uint8))
        alphas.append(a)
      seqs.append(TrackingSequence(
          np.stack(frames), np.stack(alphas),
          f"{vname}@{t0}+{os.path.basename(photo_path)}", bin_name,
          float(speed)))
  return seqs


def background_masks(frames, *, threshold: int = 35, open_size: int = 3,
                     close_size: int = 5, background_every: int = 4
                     ) -> np.ndarray:
  """Foreground masks (bool ``[T, H, W]``) of a static-camera video
  (uint8 ``[T, H, W, 3]``): pixels whose largest channel difference from
  the median of every ``background_every``-th frame exceeds ``threshold``,
  then a morphological opening (``open_size``, drops specks) and closing
  (``close_size``, fills bodies) with OpenCV's elliptical kernels. Pseudo
  ground truth: shadows and reflections can count as foreground."""
  import cv2  # pylint: disable=import-outside-toplevel
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be [T, H, W, 3]; got {frames.shape}.")
  bg = np.median(frames[::max(int(background_every), 1)], axis=0).astype(
      np.int16)
  k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_size,) * 2)
  k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_size,) * 2)
  out = np.empty(frames.shape[:3], bool)
  for t, f in enumerate(frames):
    m = (np.abs(f.astype(np.int16) - bg).max(-1) > threshold).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k_open)
    out[t] = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k_close) > 0
  return out


def follow_components(masks, first, *, reach: int = 5) -> np.ndarray:
  """The foreground that continues ``first``: bool ``[L, H, W]`` whose frame
  0 is ``first`` (bool ``[H, W]``) and frame ``t`` the connected components
  (8-connected) of ``masks[t]`` that touch frame ``t - 1``'s result grown
  by ``reach`` pixels (OpenCV dilation, square kernel). Follows the people
  of frame 0 and drops those who enter later (pseudo identities: people
  who touch merge)."""
  import cv2  # pylint: disable=import-outside-toplevel
  masks = np.asarray(masks, bool)
  out = np.zeros(masks.shape, bool)
  out[0] = np.asarray(first, bool)
  kernel = np.ones((2 * reach + 1,) * 2, np.uint8)
  for t in range(1, len(masks)):
    grown = cv2.dilate(out[t - 1].astype(np.uint8), kernel) > 0
    _, labels = cv2.connectedComponents(masks[t].astype(np.uint8),
                                        connectivity=8)
    keep = np.unique(labels[grown & masks[t]])
    out[t] = np.isin(labels, keep[keep > 0])
  return out


def _speed(mask) -> float:
  """Median displacement (pixels per frame) of the centroid of ``mask``
  (bool ``[L, H, W]``) between consecutive frames where it is non-empty
  (``nan`` if never)."""
  area = mask.sum((1, 2))
  yy, xx = np.mgrid[:mask.shape[1], :mask.shape[2]]
  c = np.stack([(mask * yy).sum((1, 2)), (mask * xx).sum((1, 2))], -1) / (
      np.maximum(area, 1)[:, None])
  ok = (area[1:] > 0) & (area[:-1] > 0)
  d = np.linalg.norm(np.diff(c, axis=0), axis=1)[ok]
  return float(np.median(d)) if len(d) else float("nan")


def make_real_motion_sequences(frames, masks, *, num: int, length: int,
                               frame_stride: int = 1,
                               window: tuple[int, int] | None = None,
                               min_area: int = 40, max_tries: int = 10,
                               seed: int = 0) -> list[TrackingSequence]:
  """``num`` sequences of ``length`` frames (every ``frame_stride``-th) of
  ``frames`` (uint8 ``[T, H, W, 3]``) with foreground ``masks`` (bool
  ``[T, H, W]``, e.g. :func:`background_masks`). Start frames are evenly
  spaced over the video, moved on (by less than one sequence span) to the
  first frame with at least ``min_area`` foreground pixels; the object is
  the connected component of a random foreground pixel of that frame,
  followed through the sequence by :func:`follow_components` (the first of
  ``max_tries`` random pixels whose object stays in view in every frame;
  no sequence from that start if none does). With
  ``window = (h, w)`` the frames are cut to that size, one fixed window per
  sequence centred on the object's path (``None``: whole frames).
  ``speed``: the median motion of the object's centroid, pixels per
  (sequence) frame."""
  import cv2  # pylint: disable=import-outside-toplevel
  frames, masks = np.asarray(frames), np.asarray(masks, bool)
  span = (length - 1) * frame_stride + 1
  if len(frames) < span or frames.shape[:3] != masks.shape:
    raise ValueError(f"need frames [T >= {span}, H, W, 3] and masks [T, H, "
                     f"W]; got {frames.shape} and {masks.shape}.")
  rng = np.random.default_rng([seed, 7])
  seqs = []
  for t0 in np.linspace(0, len(frames) - span, num).astype(int):
    area = masks[t0:len(frames) - span + 1].sum((1, 2))
    ok = np.nonzero(area >= min_area)[0]
    ok = ok[ok < span]
    if not len(ok):
      continue
    t0 = int(t0 + ok[0])
    _, labels = cv2.connectedComponents(masks[t0].astype(np.uint8),
                                        connectivity=8)
    ys, xs = np.nonzero(masks[t0])
    idx = slice(t0, t0 + span, frame_stride)
    for k in rng.permutation(len(ys))[:max_tries]:
      first = labels == labels[ys[k], xs[k]]
      followed = follow_components(masks[idx], first)
      if followed.any((1, 2)).all():               # stays in view
        break
    else:
      continue
    clip = frames[idx]
    if window is not None:
      clip, followed, _ = _crop_around(clip, followed, followed, window)
    seqs.append(TrackingSequence(
        clip, followed.astype(np.float32),
        f"t={t0}:{t0 + span}:{frame_stride},y={ys[k]},x={xs[k]}",
        "real_motion", _speed(followed)))
  return seqs


def tracking_iou(pred, gt) -> np.ndarray:
  """J: IoU of boolean masks ``[..., H, W]`` per leading index (1 where both
  are empty)."""
  inter = np.logical_and(pred, gt).sum((-2, -1))
  union = np.logical_or(pred, gt).sum((-2, -1))
  return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _summary(j) -> dict:
  """Mean J over frames 1..L-1 and sequences, at the last frame, over
  time, of ``j [S, L]``."""
  j = np.asarray(j, np.float64)
  return {"J_mean_frames_1_to_end": float(j[:, 1:].mean()),
          "J_last_frame": float(j[:, -1].mean()),
          "J_over_time": [round(float(x), 4) for x in j.mean(0)]}


def j_by_speed(j: Mapping[str, np.ndarray], bins: Sequence[str],
               speeds: Sequence[float], *, main: str | None = None) -> dict:
  """J per speed bin and pooled over the moving sequences (speed > 0).

  Args:
    j: ``{method: J [S, L]}`` per sequence and frame (frame 0 is the given
      mask); must hold ``"copy_first_mask"``.
    bins, speeds: each sequence's bin name and speed (``[S]``).
    main: the method the issue's bar is checked for (``None``: no check).

  Returns:
    ``{"by_speed": {bin: {"speed_px_per_frame", "num_sequences", method:
    summary, "<method>_minus_copy_first_mask": {"mean", "standard_error",
    "share_of_clips_above_zero"} per sequence of the mean J over frames
    1..L-1}}, "moving": the same pooled over speed > 0, "verdict": ...}``.
  """
  bins, speeds = np.asarray(bins), np.asarray(speeds, np.float64)
  groups = {b: bins == b for b in dict.fromkeys(bins.tolist())}
  if np.any(speeds > 0):
    groups["moving"] = speeds > 0
  out = {"by_speed": {}}
  for g, sel in groups.items():
    part = {"num_sequences": int(sel.sum())}
    if g != "moving":
      part["speed_px_per_frame"] = float(speeds[sel][0])
    for name, v in j.items():
      part[name] = _summary(np.asarray(v)[sel])
    copy = np.asarray(j["copy_first_mask"])[sel][:, 1:].mean(1)
    for name, v in j.items():
      if name not in ("copy_first_mask", "oracle_quarter_resolution"):
        part[f"{name}_minus_copy_first_mask"] = _paired(
            np.asarray(v)[sel][:, 1:].mean(1) - copy)
    (out if g == "moving" else out["by_speed"])[g] = part
  if main is not None and "moving" in out:
    margin = lambda part: (part[main]["J_mean_frames_1_to_end"]
                           - part["copy_first_mask"]["J_mean_frames_1_to_end"])
    out["verdict"] = {
        "method": main,
        "J_minus_copy_on_moving": margin(out["moving"]),
        "beats_copy_by_0.1_on_moving": margin(out["moving"]) >= J_MARGIN,
        "J_minus_copy_by_speed": {b: margin(p) for b, p in
                                  out["by_speed"].items()},
        "criterion": f"mean J over frames 1..L-1 of the moving sequences "
                     f"(speed > 0): {main} - copy the first mask >= "
                     f"{J_MARGIN}"}
  return out


def _variants(o: VideoEvalOptions) -> dict:
  return {"topk_radius_prev": dict(topk=o.topk, radius=o.radius,
                                   num_prev=o.num_prev),
          "plain_first_and_prev1": dict(topk=None, radius=None, num_prev=1)}


def eval_tracking(method, states: Mapping, seqs: Sequence[TrackingSequence],
                  options: VideoEvalOptions, *, main_state: str = "trained"
                  ) -> tuple[dict, dict]:
  """``(results, predictions)``: J of the thresholded (> 0.5) propagated
  masks, per frame, for each network with the ``topk``/``radius``/
  ``num_prev`` options (``"<state>/topk_radius_prev"``) and with plain
  propagation (first frame and the previous one), and for "copy the first
  mask" and the 1/4-resolution ceiling (the true masks through the
  embedding grid and back); per speed bin and pooled over moving sequences
  (:func:`j_by_speed`). ``predictions``: ``{state: [S, L, H, W]}`` of the
  main variant (soft masks)."""
  variants = _variants(options)
  fns = {vname: jax.jit(lambda st, f, l, opts=opts: method.propagate(
      st, f, l, **opts)[..., 1]) for vname, opts in variants.items()}
  j, preds = {}, {}
  for seq in seqs:
    gt = seq.alpha > 0.5
    first = np.stack([1 - seq.alpha[0], seq.alpha[0]], -1)
    for name, st in states.items():
      for vname, fn in fns.items():
        p = np.asarray(fn(st, jnp.asarray(seq.frames), jnp.asarray(first)))
        j.setdefault(f"{name}/{vname}", []).append(tracking_iou(p > 0.5, gt))
        if vname == "topk_radius_prev":
          preds.setdefault(name, []).append(p)
    j.setdefault("copy_first_mask", []).append(
        tracking_iou(gt[:1].repeat(len(gt), 0), gt))
    length, h, w = seq.alpha.shape
    small = seq.alpha.reshape(length, h // 4, 4, w // 4, 4).mean((2, 4))
    back = np.asarray(jax.image.resize(small, seq.alpha.shape, "bilinear"))
    j.setdefault("oracle_quarter_resolution", []).append(
        tracking_iou(back > 0.5, gt))
  j = {k: np.stack(v) for k, v in j.items()}                  # [S, L]
  main = (f"{main_state}/topk_radius_prev"
          if f"{main_state}/topk_radius_prev" in j else None)
  out = {"all": {k: _summary(v) for k, v in j.items()},
         **j_by_speed(j, [s.bin for s in seqs], [s.speed for s in seqs],
                      main=main),
         "per_sequence": [
             {"name": s.name, "bin": s.bin,
              **({"speed_px_per_frame": s.speed} if np.isfinite(s.speed)
                 else {}),
              **{k: round(float(v[i, 1:].mean()), 4) for k, v in j.items()}}
             for i, s in enumerate(seqs)],
         "num_sequences": len(seqs),
         "length": int(seqs[0].alpha.shape[0]) if seqs else 0,
         "options": {k: {kk: (None if vv is None else int(vv))
                         for kk, vv in opts.items()}
                     for k, opts in variants.items()},
         "J": "IoU of propagated > 0.5 with alpha > 0.5 at full resolution, "
              "mean over frames 1..L-1 (frame 0's mask is given)"}
  return out, {k: np.stack(v) for k, v in preds.items()}


# ---------------------------------------------------------------------------
# Pictures (Matplotlib ``Figure`` with the Agg canvas: no pyplot state).


def _save_small(fig, path, dpi):
  """Save ``fig`` as a PNG with a 256-colour palette (photographic
  pictures: about a third of the bytes)."""
  import io  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  buf.seek(0)
  with Image.open(buf) as im:
    im.convert("RGB").quantize(256).save(path, optimize=True)
  return path


def _figure(figsize):
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def save_tracking_png(path, rows, num: int):
  """Propagated masks (red fill) against the true masks (green outline) and
  frame 0's mask, i.e. what copying the first mask predicts (yellow
  outline), on ``num`` frames of each row: ``rows = [(label, frames [L, H,
  W, 3], alpha [L, H, W], pred [L, H, W])]``. Frames are shown at about
  their own resolution."""
  rows = list(rows)
  h, w = (max(r[1].shape[k] for r in rows) for k in (1, 2))
  cw, ch = w / 80 + 0.1, h / 80 + 0.25             # inches per cell at 80 dpi
  fig = _figure((cw * num + 0.5, ch * len(rows) + 0.35))
  axes = fig.subplots(len(rows), num, squeeze=False)
  for r, (label, frames, alpha, pred) in enumerate(rows):
    idx = np.linspace(0, len(frames) - 1, num).round().astype(int)
    for c, t in enumerate(idx):
      ax = axes[r, c]
      img = frames[t].astype(np.float32) / 255
      m = pred[t] > 0.5
      img[m] = 0.45 * img[m] + 0.55 * np.array([1.0, 0.1, 0.1])
      ax.imshow(img, interpolation="nearest")
      ax.contour(alpha[0], levels=[0.5], colors="yellow", linewidths=0.7)
      ax.contour(alpha[t], levels=[0.5], colors="lime", linewidths=0.7)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(f"t={t}", fontsize=6, pad=1)
      if c == 0:
        ax.set_ylabel(label, fontsize=6)
  fig.suptitle("red: propagated mask; green: true mask; yellow: frame 0's "
               "mask (= copy the first mask)", fontsize=7)
  fig.tight_layout(pad=0.3)
  return _save_small(fig, path, 80)


_GAP_LINES = (("trained", "trained (T=0.5)", "C0", "o-"),
              ("trained_local", "trained, local window", "C4", "D-"),
              ("random_init", "random init", "C7", "s--"),
              ("random_init_local", "random init, local window", "C8",
               "s:"),
              ("copy_reference", "copy reference ab, same pixel", "C3", "^-"),
              ("copy_reference_quantized", "copy reference, quantized", "C1",
               "v:"),
              ("train_mean_color", "training mean colour", "C2", "x-."),
              ("quantization_floor", "floor: own cluster centres", "k", ":"))


def save_gap_png(path, by_gap, *, trained_gaps: str = ""):
  """Cluster accuracy (all methods; zoomed on the trained network and the
  copy) and ab error (log scale) against the gap, one line per method
  (``trained_gaps``: what the title says the network was trained at)."""
  gaps = by_gap["gaps"]
  table = by_gap["all_held_out"]
  fig = _figure((11.5, 3.4))
  axes = fig.subplots(1, 3)
  panels = ((axes[0], "cluster_acc", "cluster accuracy (18x24 cells)", None),
            (axes[1], "cluster_acc", "cluster accuracy, zoom",
             ("trained", "trained_local", "copy_reference")),
            (axes[2], "ab_error", "ab error (mean L2 at 72x96; log scale)",
             None))
  for ax, key, title, only in panels:
    for name, label, color, style in _GAP_LINES:
      if name == "quantization_floor" and key == "cluster_acc":
        continue
      if name not in table[str(gaps[0])] or (only and name not in only):
        continue
      if only and name == "copy_reference":
        label = "copy reference (own or quantized)"
      ax.plot(gaps, [table[str(g)][name][key] for g in gaps], style,
              color=color, label=label, ms=4, lw=1.2)
    ax.set_xscale("log", base=2)
    if key == "ab_error":
      ax.set_yscale("log")
      ax.set_yticks([1, 2, 5, 10, 20])
      ax.set_yticklabels(["1", "2", "5", "10", "20"])
    ax.set_xticks(gaps)
    ax.set_xticklabels([str(g) for g in gaps])
    ax.set_xlabel("gap: frames from the last reference to the target",
                  fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7)
  # every method's line, in the empty middle band of the first panel
  axes[0].legend(*axes[2].get_legend_handles_labels(), fontsize=7,
                 loc="center right")
  n = table[str(gaps[0])]["num_clips"]
  fig.suptitle(f"held-out colorization vs reference gap ({n} target frames, "
               f"the same at every gap{'; trained at ' + trained_gaps if trained_gaps else ''})",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  return path


def save_video_colorization_png(path, method, states, clips):
  """One row per clip: the gray target, each network's colorization, the
  last reference's colours copied, and the true target."""
  lab = np.asarray(_lab(clips))
  tgt = lab[:, -1]
  cols = [("gray target", np.concatenate([tgt[..., :1], 0 * tgt[..., 1:]], -1))]
  for name, st in states.items():
    probs = method.predict(st, jnp.asarray(clips))["probs"]
    ab = np.asarray(method.decode_ab(probs, tgt.shape[1:3]))
    cols.append((name, np.concatenate([tgt[..., :1], ab], -1)))
  cols.append(("copy reference ab", np.concatenate(
      [tgt[..., :1], lab[:, -2, ..., 1:]], -1)))
  cols.append(("true", tgt))
  fig = _figure((1.7 * len(cols), 1.35 * len(clips) + 0.2))
  axes = fig.subplots(len(clips), len(cols), squeeze=False)
  for i in range(len(clips)):
    for j, (name, x) in enumerate(cols):
      ax = axes[i, j]
      ax.imshow(np.asarray(lab_to_rgb(x[i])), interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_title(name, fontsize=7)
  fig.tight_layout()
  return _save_small(fig, path, 90)


# ---------------------------------------------------------------------------
# Everything.


def _real_motion(train, options: VideoEvalOptions, data_dir: str | None,
                 video: str = "vtest.avi"):
  """``(sequences, note)`` of :func:`make_real_motion_sequences` on
  ``video`` (skipped, with the reason, when it or OpenCV is missing)."""
  o = options
  try:
    import cv2  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    path = find_videos(data_dir, (video,))[0]
    frames = load_video(path, width=o.real_motion_width)
  except (ImportError, OSError) as e:
    return [], {"skipped": f"{type(e).__name__}: {e}"}
  masks = background_masks(frames)
  seqs = make_real_motion_sequences(
      frames, masks, num=o.real_motion_sequences, length=o.length,
      frame_stride=o.real_motion_stride,
      window=tuple(o.real_motion_window), seed=o.seed)
  seen = any(k.split("[")[0] == video for k in train.videos)
  train_w = next(iter(train.videos.values())).shape[2]
  return seqs, {
      "video": video, "decoded_frame_size": list(frames.shape[1:3]),
      "window": list(o.real_motion_window),
      "frame_stride": int(o.real_motion_stride),
      "scale": f"frames decoded {o.real_motion_width} wide: "
               f"{o.real_motion_width / train_w:g}x the training scale; one "
               "fixed window per sequence, centred on the person's path",
      "ground_truth": "pseudo: background subtraction (median of every 4th "
                      "frame, max channel difference > 35, opening 3, "
                      "closing 5); the object is the connected component "
                      "of a random foreground pixel of frame 0, followed by "
                      "overlap (people who touch merge)",
      "speed_px_per_frame": [round(q.speed, 2) for q in seqs],
      "seen_in_pretext_training": bool(seen)}


def _crop_around(frames, alpha, pred, hw):
  """``(frames, alpha, pred)`` cut to a window of ``hw`` (at most the
  frame) centred on the true masks' union, for the picture."""
  h, w = min(hw[0], frames.shape[1]), min(hw[1], frames.shape[2])
  ys, xs = np.nonzero((alpha > 0.5).any(0))
  cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (0, 0)
  y = int(np.clip(cy - h // 2, 0, frames.shape[1] - h))
  x = int(np.clip(cx - w // 2, 0, frames.shape[2] - w))
  cut = lambda a: a[:, y:y + h, x:x + w]
  return cut(frames), cut(alpha), cut(pred)


def evaluate_video_colorization(method, states: Mapping, train, test,
                                options: VideoEvalOptions = VideoEvalOptions(),
                                *, out_dir: str | None = None,
                                photos: Sequence[str] | None = None,
                                data_dir: str | None = None) -> dict:
  """Held-out colorization (and, with ``options.gaps``, by gap) and
  tracking (by speed; and on vtest.avi's walking people when
  ``options.real_motion_sequences``) of each of ``states`` (e.g.
  ``{"trained": run.state, "random_init": run.random_state}``), with
  ``train`` / ``test`` clip datasets (their ``videos``, ``num_refs``,
  ``stride``). With ``out_dir``, also the PNGs (listed under ``"pngs"``);
  ``photos``: the files whose crops move in the tracking sequences
  (default: the held-out opencv-doc photos); ``data_dir``: where vtest.avi
  is (default opencv-doc's). Returns a JSON-ready dict; ``"verdict"``
  says whether each of the issue's bars is met."""
  o = options
  mean_ab = train_mean_ab(list(train.videos.values()))
  common = dict(mean_ab=mean_ab, num_refs=test.num_refs, stride=test.stride,
                batch_size=o.batch_size)
  frame_shape = next(iter(test.videos.values())).shape[1:3]
  gaps = np.asarray(getattr(train, "gaps", np.zeros(0)))
  result = {
      "frames": {"train": {k: int(len(v)) for k, v in train.videos.items()},
                 "test": {k: int(len(v)) for k, v in test.videos.items()}},
      "training_clips": {"num": int(len(train)),
                         "gap_min": int(gaps.min()) if len(gaps) else None,
                         "gap_max": int(gaps.max()) if len(gaps) else None},
      "frame_size": list(frame_shape),
      "centroids_ab": np.round(method.centers, 2).tolist(),
      "colorization": eval_colorization(method, states, test.videos,
                                        every=o.clip_every, **common),
  }
  by_gap = None
  if o.gaps:
    by_gap = eval_colorization_by_gap(method, states, test.videos, o.gaps,
                                      every=o.gap_every,
                                      radius=o.colorization_radius, **common)
    result["colorization_by_gap"] = by_gap
  seqs = make_tracking_sequences(test.videos, o, photos=photos)
  result["tracking"], preds = eval_tracking(method, states, seqs, o)
  real, real_preds = [], {}
  if o.real_motion_sequences:
    real, note = _real_motion(train, o, data_dir)
    if real:
      result["tracking_real_motion"], real_preds = eval_tracking(
          method, states, real, o)
      result["tracking_real_motion"]["about"] = note
    else:
      result["tracking_real_motion"] = note
  verdict = {}
  for suffix in ("", "_local"):
    if by_gap is not None and f"verdict{suffix}" in by_gap:
      verdict[f"colorization{suffix}"] = by_gap[f"verdict{suffix}"]
  if "verdict" in result["tracking"]:
    verdict["tracking"] = result["tracking"]["verdict"]
  if verdict:
    result["verdict"] = verdict
  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    shown = "trained" if "trained" in preds else next(iter(preds))
    rows = []
    for bin_name, _ in o.speeds:
      i = next((k for k, sq in enumerate(seqs) if sq.bin == bin_name), None)
      if i is not None:
        sq = seqs[i]
        rows.append((f"{bin_name}, {sq.speed:g} px/frame\n{shown}",
                     sq.frames, sq.alpha, preds[shown][i]))
    if real:
      rows.append((f"vtest.avi (pseudo GT)\n{shown}",
                   *_crop_around(real[0].frames, real[0].alpha,
                                 real_preds[shown][0], (96, 128))))
    pngs = {"tracking": save_tracking_png(
        os.path.join(out_dir, "video_colorization_tracking.png"), rows,
        o.png_frames)}
    sample = []
    for frames_v in test.videos.values():
      for gap in (test.stride, max(o.gaps or (test.stride,))):
        cl = all_clips(frames_v, num_refs=test.num_refs, stride=test.stride,
                       gap=gap)
        if len(cl):
          sample.append(cl[len(cl) // 2])
    pngs["colorization"] = save_video_colorization_png(
        os.path.join(out_dir, "video_colorization_samples.png"), method,
        states, np.stack(sample))
    if by_gap is not None:
      tg = result["training_clips"]
      pngs["gaps"] = save_gap_png(
          os.path.join(out_dir, "video_colorization_gaps.png"), by_gap,
          trained_gaps=(f"gaps {tg['gap_min']}-{tg['gap_max']}"
                        if tg["gap_min"] is not None else ""))
    result["pngs"] = pngs
  return result
