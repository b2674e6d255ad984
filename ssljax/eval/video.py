"""Evaluation of video colorization (Vondrick et al. 2018): colorization of
held-out frames against copying the reference, and tracking by label
propagation (J = IoU), for a trained network and the same network at random
init.

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
  references ``gap`` frames back, for several gaps.
* :func:`eval_tracking`: a crop of a held-out photo, with an elliptical
  alpha, pasted onto held-out video frames along a smooth random path
  (:func:`make_tracking_sequences`, seeded); the first frame's mask is
  propagated through the sequence; J per frame for each network, "copy the
  first mask" and the 1/4-resolution ceiling.
* :func:`evaluate_video_colorization`: all of the above and the pictures,
  as one JSON-ready dict (what ``experiments/video_colorization.py`` writes).

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
from ssljax.data.video import all_clips, clip_span
from ssljax.eval.features import map_in_batches
from ssljax.losses.colorization import video_colorization_loss
from ssljax.methods.video_colorization import color_cluster_targets

__all__ = [
    "VideoEvalOptions",
    "colorization_baseline_scores",
    "eval_colorization",
    "eval_colorization_by_gap",
    "eval_tracking",
    "evaluate_video_colorization",
    "make_tracking_sequences",
    "save_gap_png",
    "save_tracking_png",
    "save_video_colorization_png",
    "tracking_iou",
    "train_mean_ab",
]


@dataclasses.dataclass(frozen=True)
class VideoEvalOptions:
  """What :func:`evaluate_video_colorization` measures.

  Attributes:
    clip_every: colorize every ``clip_every``-th held-out target frame.
    batch_size: clips per evaluation batch.
    gaps: also colorize the same targets from references ``gap`` frames
      back, for each gap (``()``: not measured), e.g. ``(1, 2, 4, 8, 16,
      32)``; every ``gap_every``-th target with all references at the
      largest gap.
    num_sequences, length, frame_stride: tracking sequences: how many, of
      how many frames, taken every ``frame_stride`` frames of a held-out
      video.
    object_size: ``(min, max)`` side of the pasted object, in pixels.
    max_speed: its speed per axis, pixels per frame, at most.
    topk, radius, num_prev: the propagation options (``propagate_labels``).
    png_frames: frames shown in the tracking picture.
    seed: the tracking sequences' seed (the run's ``config.seed``).
  """
  clip_every: int = 2
  batch_size: int = 32
  gaps: tuple[int, ...] = ()
  gap_every: int = 1
  num_sequences: int = 16
  length: int = 24
  frame_stride: int = 1
  object_size: tuple[int, int] = (20, 30)
  max_speed: float = 3.0
  topk: int = 10
  radius: int = 4
  num_prev: int = 3
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


def eval_colorization_by_gap(method, states: Mapping, test_videos: Mapping,
                             gaps: Sequence[int], *, mean_ab,
                             num_refs: int = 3, stride: int = 2,
                             every: int = 1, batch_size: int = 32) -> dict:
  """Colorization of held-out target frames from references ``gap`` frames
  back (the last reference at ``t - gap``, the others ``stride`` apart
  before it), for each gap, on the same target frames at every gap (those
  with all references at the largest gap, every ``every``-th): cluster
  accuracy, CE loss and ab error of each network and baseline, pooled over
  the held-out videos and per video."""
  gaps = sorted({int(g) for g in gaps})
  first = clip_span(num_refs, stride, max(gaps))
  nets = {name: jax.jit(lambda x, st=st: method.clip_scores(st, x))
          for name, st in states.items()}
  base = jax.jit(lambda x: colorization_baseline_scores(
      x, method.centers, mean_ab))
  table, per_video, targets = {}, {}, {}
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
          scores.setdefault(name, {}).setdefault(k, []).append(v)
    table[str(gap)] = {name: {k: float(np.concatenate(v).mean())
                              for k, v in r.items()}
                       for name, r in scores.items()}
    table[str(gap)]["num_clips"] = int(sum(targets.values()))
  return {"gaps": gaps, "all_held_out": table, "per_video": per_video,
          "clips_per_video": targets,
          "targets": f"every {every} frame(s) of each held-out part, from "
                     f"frame {first} of it (the first with all references at "
                     f"gap {max(gaps)}); the same targets at every gap",
          "references": f"{num_refs} frames: t - gap - {stride} k, k = "
                        f"{num_refs - 1}..0 (the model was trained at gap "
                        f"{stride})",
          "decoding": "as in 'colorization': T = 0.5, ab_error = expectation "
                      "over the cluster centres, upsampled bilinearly"}


# ---------------------------------------------------------------------------
# Tracking with known masks: photo crops moving over held-out frames.


def _smooth_path(rng, length, lo, hi, max_speed):
  """Positions ``[length, 2]`` (float) inside ``[lo, hi]``: a start point
  plus two random sinusoids per axis (periods 1-3 sequence lengths), speed
  per axis at most ``max_speed`` pixels per frame."""
  t = np.arange(length, dtype=np.float64)
  pos = np.empty((length, 2))
  for ax in range(2):
    start = rng.uniform(lo[ax], hi[ax])
    path = np.zeros(length)
    for _ in range(2):
      period = rng.uniform(1.0, 3.0) * length
      omega = 2 * np.pi / period
      amp = rng.uniform(0.5, 1.0) * max_speed / omega / 2
      phase = rng.uniform(0, 2 * np.pi)
      path += amp * (np.sin(omega * t + phase) - np.sin(phase))
    pos[:, ax] = np.clip(start + path, lo[ax], hi[ax])
  return pos


def _ellipse_alpha(h, w):
  yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
  r = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
  # a one-pixel soft edge
  return np.clip((1.0 - r) * min(h, w) / 2 + 0.5, 0.0, 1.0).astype(np.float32)


def make_tracking_sequences(test_videos: Mapping, options: VideoEvalOptions,
                            *, photos: Sequence[str] | None = None):
  """``[(frames uint8 [L, H, W, 3], alpha float [L, H, W], name)]``: photo
  crops (from ``photos``, default the held-out opencv-doc photos) pasted
  along smooth random paths over held-out video frames (seeded by
  ``options.seed``)."""
  o = options
  if photos is None:
    photos = split_photos(find_photos())["test"]
  span = (o.length - 1) * o.frame_stride
  videos = [(k, v) for k, v in test_videos.items() if len(v) > span]
  if not videos:
    raise ValueError(f"no held-out video has more than {span} frames for "
                     f"tracking sequences of length {o.length}.")
  weights = np.array([len(v) - span for _, v in videos], np.float64)
  seqs = []
  for i in range(o.num_sequences):
    rng = np.random.default_rng([o.seed, 1000 + i])
    vi = int(rng.choice(len(videos), p=weights / weights.sum()))
    vname, frames = videos[vi]
    t0 = int(rng.integers(0, len(frames) - span))
    clip = frames[t0:t0 + span + 1:o.frame_stride].astype(np.float32)
    big_h, big_w = clip.shape[1:3]
    oh = int(rng.integers(o.object_size[0], o.object_size[1] + 1))
    ow = int(rng.integers(o.object_size[0], o.object_size[1] + 1))
    photo_path = photos[int(rng.integers(len(photos)))]
    photo = read_photo(photo_path)[..., :3]
    crop = random_photo_crops(photo, 1, size=max(oh, ow), scale=(0.15, 0.4),
                              rng=rng)[0]
    crop = np.asarray(jax.image.resize(crop.astype(np.float32), (oh, ow, 3),
                                       "linear"))
    a = _ellipse_alpha(oh, ow)
    path = _smooth_path(rng, o.length, (0, 0), (big_h - oh, big_w - ow),
                        o.max_speed)
    alphas = np.zeros(clip.shape[:3], np.float32)
    for t in range(o.length):
      y, x = np.round(path[t]).astype(int)
      alphas[t, y:y + oh, x:x + ow] = a
      region = clip[t, y:y + oh, x:x + ow]
      clip[t, y:y + oh, x:x + ow] = (a[..., None] * crop
                                     + (1 - a[..., None]) * region)
    seqs.append((np.clip(np.round(clip), 0, 255).astype(np.uint8), alphas,
                 f"{vname}@{t0}+{os.path.basename(photo_path)}"))
  return seqs


def tracking_iou(pred, gt) -> np.ndarray:
  """J: IoU of boolean masks ``[..., H, W]`` per leading index (1 where both
  are empty)."""
  inter = np.logical_and(pred, gt).sum((-2, -1))
  union = np.logical_or(pred, gt).sum((-2, -1))
  return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def eval_tracking(method, states: Mapping, seqs, options: VideoEvalOptions):
  """``(results, predictions of the first sequence)``: J of the thresholded
  (> 0.5) propagated masks, per frame, for each network with the
  ``topk``/``radius``/``num_prev`` options and with plain propagation
  (first frame and the previous one), and for "copy the first mask" and
  the 1/4-resolution ceiling."""
  o = options
  variants = {
      "topk_radius_prev": dict(topk=o.topk, radius=o.radius,
                               num_prev=o.num_prev),
      "plain_first_and_prev1": dict(topk=None, radius=None, num_prev=1),
  }
  fns = {vname: jax.jit(lambda st, f, l, opts=opts: method.propagate(
      st, f, l, **opts)[..., 1]) for vname, opts in variants.items()}
  j, preds = {}, {}
  for s_i, (frames, alpha, _) in enumerate(seqs):
    gt = alpha > 0.5
    first = np.stack([1 - alpha[0], alpha[0]], -1)
    for name, st in states.items():
      for vname, fn in fns.items():
        p = np.asarray(fn(st, jnp.asarray(frames), jnp.asarray(first)))
        j.setdefault(f"{name}/{vname}", []).append(tracking_iou(p > 0.5, gt))
        if s_i == 0 and vname == "topk_radius_prev":
          preds[name] = p
    j.setdefault("copy_first_mask", []).append(
        tracking_iou(gt[:1].repeat(len(gt), 0), gt))
    # the resolution ceiling: the first mask through the 1/4 grid and back
    h, w = alpha.shape[1:]
    small = alpha.reshape(len(alpha), h // 4, 4, w // 4, 4).mean((2, 4))
    back = np.asarray(jax.image.resize(small, alpha.shape, "bilinear"))
    j.setdefault("oracle_quarter_resolution", []).append(
        tracking_iou(back > 0.5, gt))
  out = {}
  for k, v in j.items():
    v = np.stack(v)                                       # [S, L]
    out[k] = {"J_mean_frames_1_to_end": float(v[:, 1:].mean()),
              "J_last_frame": float(v[:, -1].mean()),
              "J_over_time": [round(float(x), 4) for x in v.mean(0)]}
  out["num_sequences"] = len(seqs)
  out["length"] = int(o.length)
  out["options"] = {k: {kk: (None if vv is None else int(vv))
                        for kk, vv in opts.items()}
                    for k, opts in variants.items()}
  return out, preds


# ---------------------------------------------------------------------------
# Pictures (Matplotlib ``Figure`` with the Agg canvas: no pyplot state).


def _figure(figsize):
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def save_tracking_png(path, frames, alpha, preds, num):
  """The propagated masks (red) of each network against the true support
  (green) on ``num`` frames of one sequence."""
  idx = np.linspace(0, len(frames) - 1, num).round().astype(int)
  rows = list(preds.items())
  fig = _figure((1.6 * num, 1.3 * len(rows) + 0.3))
  axes = fig.subplots(len(rows), num, squeeze=False)
  for r, (name, p) in enumerate(rows):
    for c, t in enumerate(idx):
      ax = axes[r, c]
      img = frames[t].astype(np.float32) / 255
      m = p[t] > 0.5
      img[m] = 0.5 * img[m] + 0.5 * np.array([1.0, 0.1, 0.1])
      ax.imshow(img, interpolation="nearest")
      ax.contour(alpha[t], levels=[0.5], colors="lime", linewidths=0.8)
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(f"t={t}", fontsize=8)
      if c == 0:
        ax.set_ylabel(name, fontsize=7)
  fig.suptitle("propagated mask (red) vs true support (green); held-out frames",
               fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return path


_GAP_LINES = (("trained", "trained (T=0.5)", "C0", "o-"),
              ("random_init", "random init", "C7", "s--"),
              ("copy_reference", "copy reference ab, same pixel", "C3", "^-"),
              ("copy_reference_quantized", "copy reference, quantized", "C1",
               "v:"),
              ("train_mean_color", "training mean colour", "C2", "x-."),
              ("quantization_floor", "floor: own cluster centres", "k", ":"))


def save_gap_png(path, by_gap):
  """Cluster accuracy (all methods; zoomed on the trained network and the
  copy) and ab error (log scale) against the gap, one line per method."""
  gaps = by_gap["gaps"]
  table = by_gap["all_held_out"]
  fig = _figure((11.5, 3.4))
  axes = fig.subplots(1, 3)
  panels = ((axes[0], "cluster_acc", "cluster accuracy (18x24 cells)", None),
            (axes[1], "cluster_acc", "cluster accuracy, zoom",
             ("trained", "copy_reference")),
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
               "the same at every gap; trained at gap 2)", fontsize=9)
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
  fig.savefig(path, dpi=90)
  return path


# ---------------------------------------------------------------------------
# Everything.


def evaluate_video_colorization(method, states: Mapping, train, test,
                                options: VideoEvalOptions = VideoEvalOptions(),
                                *, out_dir: str | None = None,
                                photos: Sequence[str] | None = None) -> dict:
  """Held-out colorization (and, with ``options.gaps``, by gap) and
  tracking of each of ``states`` (e.g. ``{"trained": run.state,
  "random_init": run.random_state}``), with ``train`` / ``test`` clip
  datasets (their ``videos``, ``num_refs``, ``stride``). With ``out_dir``,
  also the PNGs (listed under ``"pngs"``); ``photos``: the files whose
  crops move in the tracking sequences (default: the held-out opencv-doc
  photos). Returns a JSON-ready dict."""
  o = options
  mean_ab = train_mean_ab(list(train.videos.values()))
  common = dict(mean_ab=mean_ab, num_refs=test.num_refs, stride=test.stride,
                batch_size=o.batch_size)
  frame_shape = next(iter(test.videos.values())).shape[1:3]
  result = {
      "frames": {"train": {k: int(len(v)) for k, v in train.videos.items()},
                 "test": {k: int(len(v)) for k, v in test.videos.items()}},
      "frame_size": list(frame_shape),
      "centroids_ab": np.round(method.centers, 2).tolist(),
      "colorization": eval_colorization(method, states, test.videos,
                                        every=o.clip_every, **common),
  }
  seqs = make_tracking_sequences(test.videos, o, photos=photos)
  result["tracking"], preds = eval_tracking(method, states, seqs, o)
  by_gap = None
  if o.gaps:
    by_gap = eval_colorization_by_gap(method, states, test.videos, o.gaps,
                                      every=o.gap_every, **common)
    result["colorization_by_gap"] = by_gap
  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    frames, alpha, _ = seqs[0]
    pngs = {"tracking": save_tracking_png(
        os.path.join(out_dir, "video_colorization_tracking.png"), frames,
        alpha, preds, o.png_frames)}
    sample = []
    for frames_v in test.videos.values():
      cl = all_clips(frames_v, num_refs=test.num_refs, stride=test.stride)
      if len(cl):
        sample.append(cl[len(cl) // 2])
    pngs["colorization"] = save_video_colorization_png(
        os.path.join(out_dir, "video_colorization_samples.png"), method,
        states, np.stack(sample))
    if by_gap is not None:
      pngs["gaps"] = save_gap_png(
          os.path.join(out_dir, "video_colorization_gaps.png"), by_gap)
    result["pngs"] = pngs
  return result
