"""Train video colorization (Vondrick et al. 2018) on the opencv-doc videos,
then evaluate colorization of held-out frames and tracking by label
propagation, writing JSON and PNGs to the workdir.

    python experiments/video_colorization.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization \
        --out benchmarks/results/video_colorization_eval.json

What is measured (same run, same held-out frames):

* Colorization of held-out target frames (all of tree.avi, the last 20% of
  vtest.avi and Megamind.avi) from their 3 reference frames at T = 0.5:
  accuracy on the 16 colour clusters (at 1/4 resolution) and the mean ab
  error (L2 in ab units, at full resolution; decoded ab = the expectation
  over the cluster centres, upsampled bilinearly; ``argmax``: the most likely
  cluster's centre) for the trained network, the same network at random
  init, copying the last reference frame's colours at the same pixel (its
  ab, and its clusters' centres: ``copy_reference_quantized``), and the
  training frames' mean colour.
* Tracking with ground truth: a crop of a held-out opencv-doc photo, with
  an elliptical alpha, pasted onto held-out video frames along a smooth
  random path (seeded); the first frame's mask is propagated through the
  sequence; J = IoU of the thresholded (> 0.5) propagated mask with the true
  support, per frame, for the trained network, random init and "copy the
  first mask".
* With ``--eval_gaps=1,2,4,8,16,32``: colorization of the same held-out
  target frames from references ``gap`` frames back (the last reference at
  ``t - gap``, the others ``stride`` apart before it), for the same
  networks and baselines; ``--eval_only`` loads ``params.msgpack`` from
  ``--workdir`` instead of training and adds the table
  (``colorization_by_gap``) to the existing JSONs::

    python experiments/video_colorization.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization \
        --out benchmarks/results/video_colorization_eval.json \
        --png_dir benchmarks/results --eval_only --eval_gaps=1,2,4,8,16,32
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

import datetime
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from ssljax.eval.features import map_in_batches
from ssljax.augment.lab import lab_to_rgb, rgb_to_lab
from ssljax.data.photos import find_photos, random_photo_crops, read_photo, split_photos
from ssljax.data.video import (all_clips, clip_batches, clip_span,
                               load_opencv_videos)
from ssljax.parallel import (check_batch_divides, data_sharding, make_data_mesh,
                             replicated_sharding)
from ssljax.methods.video_colorization import (EmbeddingNet, VideoColorization,
                                               color_cluster_targets,
                                               colorization_baseline_scores,
                                               fit_color_clusters,
                                               video_colorization_loss)
from ssljax.train.optim import warmup_cosine_schedule

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_OUT = flags.DEFINE_string("out", "", "Also write the JSON here.")
_PNG_DIR = flags.DEFINE_string(
    "png_dir", "", "Also copy the PNGs here when each is < 300 KB.")
_EVAL_GAPS = flags.DEFINE_list(
    "eval_gaps", [], "Also evaluate colorization of the held-out videos with "
    "the last reference frame this many frames before the target, e.g. "
    "1,2,4,8,16,32 (the same target frames at every gap); writes the table "
    "under 'colorization_by_gap' and video_colorization_gaps.png.")
_EVAL_ONLY = flags.DEFINE_bool(
    "eval_only", False, "Do not train: load params.msgpack from --workdir "
    "(written by a training run with the same config), run the --eval_gaps "
    "evaluation and add it to the existing eval.json (and --out), leaving "
    "the rest of the JSON as it is.")


def _cpu() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


# ---------------------------------------------------------------------------
# Training.


def build(config, centroids, num_steps):
  o = config.optimizer
  schedule = warmup_cosine_schedule(o.base_lr, num_steps,
                                    min(o.warmup_steps, num_steps))
  tx = optax.adamw(schedule, weight_decay=o.weight_decay)
  v = config.video
  model = EmbeddingNet(widths=tuple(config.model.widths),
                       dilations=tuple(config.model.dilations),
                       embed_dim=config.model.embed_dim,
                       groups=config.model.groups)
  return VideoColorization(
      model=model, tx=tx, centroids=centroids, temperature=v.temperature,
      test_temperature=v.test_temperature, block_size=v.block_size,
      crop_size=tuple(v.crop) if v.crop else None, flip=v.flip,
      schedule=schedule)


def initial_state(config, method, splits):
  """``(state at init, data key)``, both from ``config.seed``: the random
  init network that training starts from."""
  init_key, data_key = jax.random.split(jax.random.key(config.seed))
  frames0 = next(iter(splits.train.values()))
  clip_shape = (config.clips.num_refs + 1, *frames0.shape[1:])
  return method.init(init_key, clip_shape), data_key


def load_trained(config, method, splits, workdir):
  """``(trained state, random-init state)`` without training: the params
  that a training run saved as ``workdir/params.msgpack`` (flax
  serialization) in the random-init state (its optimizer state is not
  saved, and evaluation does not use it). The saved ``config.json`` must
  agree with ``config`` outside ``eval``."""
  from flax import serialization  # pylint: disable=import-outside-toplevel
  saved_path = os.path.join(workdir, "config.json")
  if os.path.isfile(saved_path):
    with open(saved_path) as f:
      saved = json.load(f)
    now = json.loads(config.to_json())
    diff = sorted(k for k in set(saved) | set(now)
                  if k != "eval" and saved.get(k) != now.get(k))
    if diff:
      raise ValueError(f"--config differs from the trained run's {saved_path} "
                       f"in {diff}.")
  init_state, _ = initial_state(config, method, splits)
  with open(os.path.join(workdir, "params.msgpack"), "rb") as f:
    params = serialization.from_bytes(init_state.params, f.read())
  return init_state.replace(params=params), init_state


def train(config, method, splits, workdir):
  state, data_key = initial_state(config, method, splits)
  init_state = jax.tree.map(jnp.copy, state)
  # batch sharded over all devices (axis "data"), state replicated
  mesh = make_data_mesh()
  check_batch_divides(config.batch_size, mesh)
  state = jax.device_put(state, replicated_sharding(mesh))
  batch_sharding = data_sharding(mesh, 5)
  step = jax.jit(method.train_step, donate_argnums=0)
  it = clip_batches(list(splits.train.values()), batch_size=config.batch_size,
                    num_refs=config.clips.num_refs, stride=config.clips.stride,
                    seed=config.seed)
  log, t_compiled = [], None
  t0 = time.perf_counter()
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f, \
      jax.set_mesh(mesh):
    for n in range(1, config.num_steps + 1):
      state, metrics = step(state, jax.device_put(next(it), batch_sharding),
                            data_key)
      if n == 1:
        jax.block_until_ready(metrics)
        t_compiled = time.perf_counter()
        print(f"compile + first step {t_compiled - t0:.1f}s", flush=True)
      if n % config.log_every == 0 or n == config.num_steps:
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        m.update(step=n, seconds=round(time.perf_counter() - t_compiled, 1))
        log.append(m)
        f.write(json.dumps(m) + "\n")
        f.flush()
        print(json.dumps(m), flush=True)
  jax.block_until_ready(state)
  return state, init_state, log, time.perf_counter() - t_compiled


# ---------------------------------------------------------------------------
# Colorization of held-out frames.


def _batched(fn, xs, batch):
  return map_in_batches(fn, xs, batch)


def eval_colorization(config, method, states, splits, centroids, train_mean_ab):
  """Per held-out video and pooled over all: cluster accuracy, CE loss and ab
  error of each network and of the two baselines."""
  ec = config.eval
  stride = config.clips.stride
  bs = ec.batch_size
  c = jnp.asarray(centroids)
  mean_cluster = int(np.argmin(((centroids - train_mean_ab) ** 2).sum(-1)))

  @jax.jit
  def truth(clips):
    lab = rgb_to_lab(clips)                                  # [B, R+1, H, W, 3]
    h, w = lab.shape[2] // 4, lab.shape[3] // 4
    cl = color_cluster_targets(lab, c, (h, w))              # [B, R+1, h, w]
    quant_ab = jax.image.resize(c[cl[:, -1]], (lab.shape[0], *lab.shape[2:4], 2),
                                "nearest")
    ref_quant_ab = jax.image.resize(
        c[cl[:, -2]], (lab.shape[0], *lab.shape[2:4], 2), "nearest")
    return {"ab": lab[:, -1, ..., 1:], "ref_ab": lab[:, -2, ..., 1:],
            "clusters": cl[:, -1], "ref_clusters": cl[:, -2],
            "quant_ab": quant_ab, "ref_quant_ab": ref_quant_ab}

  predictors = {
      name: jax.jit(lambda st, x: method.predict(st, x)) for name in states}
  totals, per_video = {}, {}

  def add(store, name, key, value, count):
    d = store.setdefault(name, {})
    s, n = d.get(key, (0.0, 0))
    d[key] = (s + float(value) * count, n + count)

  for vname, frames in splits.test.items():
    clips = all_clips(frames, num_refs=config.clips.num_refs, stride=stride,
                      every=ec.clip_every)
    tr = _batched(truth, clips, bs)
    true_ab = tr["ab"]
    npix, ncell = true_ab[..., 0].size, tr["clusters"].size
    results = {}
    for name, st in states.items():
      out = _batched(lambda x, st=st: predictors[name](st, x), clips, bs)
      probs = jnp.asarray(out["probs"])
      ab_mean = np.asarray(_batched(
          lambda p: method.decode_ab(p, true_ab.shape[1:3]), out["probs"], bs))
      ab_max = np.asarray(_batched(
          lambda p: method.decode_ab(p, true_ab.shape[1:3], mode="argmax"),
          out["probs"], bs))
      results[name] = {
          "cluster_acc": float((out["probs"].argmax(-1) == tr["clusters"]).mean()),
          "loss": float(video_colorization_loss(probs, jnp.asarray(tr["clusters"]))),
          "ab_error": float(np.linalg.norm(ab_mean - true_ab, axis=-1).mean()),
          "ab_error_argmax": float(np.linalg.norm(ab_max - true_ab, axis=-1).mean()),
      }
    results["copy_reference"] = {
        "cluster_acc": float((tr["ref_clusters"] == tr["clusters"]).mean()),
        "ab_error": float(np.linalg.norm(tr["ref_ab"] - true_ab, axis=-1).mean())}
    # the same, through the clusters: the reference's cluster centres at 1/4
    results["copy_reference_quantized"] = {
        "cluster_acc": float((tr["ref_clusters"] == tr["clusters"]).mean()),
        "ab_error": float(np.linalg.norm(tr["ref_quant_ab"] - true_ab,
                                         axis=-1).mean())}
    results["train_mean_color"] = {
        "cluster_acc": float((tr["clusters"] == mean_cluster).mean()),
        "ab_error": float(np.linalg.norm(train_mean_ab - true_ab, axis=-1).mean())}
    results["quantization_floor"] = {
        "cluster_acc": 1.0,
        "ab_error": float(np.linalg.norm(tr["quant_ab"] - true_ab, axis=-1).mean())}
    results["num_clips"] = int(len(clips))
    per_video[vname] = results
    for name, r in results.items():
      if name == "num_clips":
        continue
      for k, v in r.items():
        add(totals, name, k, v, ncell if k in ("cluster_acc", "loss") else npix)
  pooled = {name: {k: s / n for k, (s, n) in d.items()}
            for name, d in totals.items()}
  return {"all_held_out": pooled, "per_video": per_video,
          "train_mean_ab": [round(float(x), 2) for x in train_mean_ab],
          "decoding": "ab_error: expectation of the cluster centres under the "
                      "predicted distribution (T=0.5), upsampled bilinearly; "
                      "ab_error_argmax: centre of the most likely cluster"}


def eval_colorization_by_gap(config, method, states, splits, centroids,
                             train_mean_ab, gaps):
  """Colorization of held-out target frames from references ``gap`` frames
  back (the last reference at ``t - gap``, the others ``stride`` apart
  before it), for each gap, on the same target frames at every gap (those
  with all references at the largest gap, every ``eval.gap_every``-th):
  cluster accuracy, CE loss and ab error of each network and baseline,
  pooled over the held-out videos and per video."""
  ec = config.eval
  num_refs, stride = config.clips.num_refs, config.clips.stride
  gaps = sorted({int(g) for g in gaps})
  first = clip_span(num_refs, stride, max(gaps))
  every = int(ec.get("gap_every", 1))
  nets = {name: jax.jit(lambda x, st=st: method.clip_scores(st, x))
          for name, st in states.items()}
  base = jax.jit(lambda x: colorization_baseline_scores(
      x, centroids, train_mean_ab))
  table, per_video, targets = {}, {}, {}
  for gap in gaps:
    scores = {}                                   # name/metric -> [clips]
    for vname, frames in splits.test.items():
      clips = all_clips(frames, num_refs=num_refs, stride=stride, every=every,
                        gap=gap, first_target=first)
      if not len(clips):
        continue
      targets[vname] = len(clips)
      out = {name: _batched(fn, clips, ec.batch_size) for name, fn in nets.items()}
      out.update(_batched(base, clips, ec.batch_size))
      pv = per_video.setdefault(vname, {}).setdefault(str(gap), {})
      for name, r in out.items():
        pv[name] = {k: float(np.mean(v)) for k, v in r.items()}
        for k, v in r.items():
          scores.setdefault(name, {}).setdefault(k, []).append(v)
    table[str(gap)] = {name: {k: float(np.concatenate(v).mean())
                              for k, v in r.items()}
                       for name, r in scores.items()}
    table[str(gap)]["num_clips"] = int(sum(targets.values()))
    print(f"gap {gap}: " + json.dumps(
        {n: [round(r["cluster_acc"], 3), round(r["ab_error"], 2)]
         for n, r in table[str(gap)].items() if isinstance(r, dict)}),
          flush=True)
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


def make_tracking_sequences(config, splits):
  """``[(frames uint8 [L, H, W, 3], alpha float [L, H, W], name)]``: photo
  crops from the held-out opencv-doc photos pasted along smooth random
  paths over held-out video frames (seeded)."""
  ec = config.eval
  photos = split_photos(find_photos())["test"]
  videos = [(k, v) for k, v in splits.test.items()
            if len(v) > (ec.length - 1) * ec.frame_stride]
  span = (ec.length - 1) * ec.frame_stride
  weights = np.array([len(v) - span for _, v in videos], np.float64)
  seqs = []
  for i in range(ec.num_sequences):
    rng = np.random.default_rng([config.seed, 1000 + i])
    vi = int(rng.choice(len(videos), p=weights / weights.sum()))
    vname, frames = videos[vi]
    t0 = int(rng.integers(0, len(frames) - span))
    clip = frames[t0:t0 + span + 1:ec.frame_stride].astype(np.float32)
    big_h, big_w = clip.shape[1:3]
    oh = int(rng.integers(ec.object_size[0], ec.object_size[1] + 1))
    ow = int(rng.integers(ec.object_size[0], ec.object_size[1] + 1))
    photo_path = photos[int(rng.integers(len(photos)))]
    photo = read_photo(photo_path)[..., :3]
    crop = random_photo_crops(photo, 1, size=max(oh, ow), scale=(0.15, 0.4),
                              rng=rng)[0]
    crop = np.asarray(jax.image.resize(crop.astype(np.float32), (oh, ow, 3),
                                       "linear"))
    a = _ellipse_alpha(oh, ow)
    path = _smooth_path(rng, ec.length, (0, 0), (big_h - oh, big_w - ow),
                        ec.max_speed)
    alphas = np.zeros(clip.shape[:3], np.float32)
    for t in range(ec.length):
      y, x = np.round(path[t]).astype(int)
      alphas[t, y:y + oh, x:x + ow] = a
      region = clip[t, y:y + oh, x:x + ow]
      clip[t, y:y + oh, x:x + ow] = a[..., None] * crop + (1 - a[..., None]) * region
    seqs.append((np.clip(np.round(clip), 0, 255).astype(np.uint8), alphas,
                 f"{vname}@{t0}+{os.path.basename(photo_path)}"))
  return seqs


def _iou(pred, gt):
  inter = np.logical_and(pred, gt).sum((-2, -1))
  union = np.logical_or(pred, gt).sum((-2, -1))
  return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def eval_tracking(config, method, states, seqs):
  ec = config.eval
  variants = {
      "topk_radius_prev": dict(topk=ec.topk, radius=ec.radius,
                               num_prev=ec.num_prev),
      "plain_first_and_prev1": dict(topk=None, radius=None, num_prev=1),
  }
  fns = {}
  for vname, opts in variants.items():
    fns[vname] = jax.jit(lambda st, f, l, opts=opts: method.propagate(
        st, f, l, **opts)[..., 1])
  j = {}
  preds = {}
  for s_i, (frames, alpha, _) in enumerate(seqs):
    gt = alpha > 0.5
    first = np.stack([1 - alpha[0], alpha[0]], -1)
    for name, st in states.items():
      for vname, fn in fns.items():
        p = np.asarray(fn(st, jnp.asarray(frames), jnp.asarray(first)))
        j.setdefault(f"{name}/{vname}", []).append(_iou(p > 0.5, gt))
        if s_i == 0 and vname == "topk_radius_prev":
          preds[name] = p
    j.setdefault("copy_first_mask", []).append(_iou(gt[:1].repeat(len(gt), 0), gt))
    # the resolution ceiling: the first mask through the 1/4 grid and back
    h, w = alpha.shape[1:]
    small = alpha.reshape(len(alpha), h // 4, 4, w // 4, 4).mean((2, 4))
    back = np.asarray(jax.image.resize(small, alpha.shape, "bilinear"))
    j.setdefault("oracle_quarter_resolution", []).append(_iou(back > 0.5, gt))
  out = {}
  for k, v in j.items():
    v = np.stack(v)                                       # [S, L]
    out[k] = {"J_mean_frames_1_to_end": float(v[:, 1:].mean()),
              "J_last_frame": float(v[:, -1].mean()),
              "J_over_time": [round(float(x), 4) for x in v.mean(0)]}
  out["num_sequences"] = len(seqs)
  out["length"] = int(ec.length)
  out["options"] = {k: {kk: (None if vv is None else int(vv))
                        for kk, vv in o.items()} for k, o in variants.items()}
  return out, preds


# ---------------------------------------------------------------------------
# Pictures.


def save_tracking_png(path, frames, alpha, preds, num):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  idx = np.linspace(0, len(frames) - 1, num).round().astype(int)
  rows = list(preds.items())
  fig = Figure(figsize=(1.6 * num, 1.3 * len(rows) + 0.3))
  FigureCanvasAgg(fig)
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
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  gaps = by_gap["gaps"]
  table = by_gap["all_held_out"]
  fig = Figure(figsize=(11.5, 3.4))
  FigureCanvasAgg(fig)
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


def save_colorization_png(path, method, states, clips):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  lab = np.asarray(rgb_to_lab(clips))
  tgt = lab[:, -1]
  cols = [("gray target", np.concatenate([tgt[..., :1], 0 * tgt[..., 1:]], -1))]
  for name, st in states.items():
    probs = method.predict(st, jnp.asarray(clips))["probs"]
    ab = np.asarray(method.decode_ab(probs, tgt.shape[1:3]))
    cols.append((name, np.concatenate([tgt[..., :1], ab], -1)))
  cols.append(("copy reference ab", np.concatenate(
      [tgt[..., :1], lab[:, -2, ..., 1:]], -1)))
  cols.append(("true", tgt))
  fig = Figure(figsize=(1.7 * len(cols), 1.35 * len(clips) + 0.2))
  FigureCanvasAgg(fig)
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


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = _WORKDIR.value
  gaps = [int(g) for g in _EVAL_GAPS.value]
  if _EVAL_ONLY.value and not gaps:
    raise app.UsageError("--eval_only needs --eval_gaps.")
  os.makedirs(workdir, exist_ok=True)
  if not _EVAL_ONLY.value:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json(indent=1))
  t_all = time.perf_counter()
  d = config.data
  splits = load_opencv_videos(
      data_dir=d.data_dir or None, names=tuple(d.names), width=d.width,
      multiple=d.multiple, holdout=tuple(d.holdout),
      test_fraction=d.test_fraction, gap=d.gap, cache_dir=d.cache_dir or None)
  print("frames", splits.describe(), flush=True)
  train_videos = list(splits.train.values())
  centroids = fit_color_clusters(train_videos,
                                 num_clusters=config.video.num_clusters,
                                 stride=4, seed=config.seed)
  # the mean ab of all training pixels (videos weighted by frame count)
  counts = np.array([len(v) for v in train_videos], np.float64)
  train_mean_ab = (np.stack([np.asarray(jax.jit(
      lambda x: rgb_to_lab(x)[..., 1:].mean((0, 1, 2)))(v)) for v in train_videos])
                   * counts[:, None]).sum(0) / counts.sum()
  method = build(config, centroids, config.num_steps)
  if _EVAL_ONLY.value:
    state, init_state = load_trained(config, method, splits, workdir)
    _eval_gaps_only(config, method, {"trained": state, "random_init": init_state},
                    splits, centroids, train_mean_ab.astype(np.float32), gaps,
                    workdir, t_all)
    return
  state, init_state, log, train_seconds = train(config, method, splits, workdir)
  print(f"trained {config.num_steps} steps in {train_seconds:.1f}s", flush=True)
  from flax import serialization  # pylint: disable=import-outside-toplevel
  with open(os.path.join(workdir, "params.msgpack"), "wb") as f:
    f.write(serialization.to_bytes(jax.device_get(state.params)))
  states = {"trained": state, "random_init": init_state}

  t = time.perf_counter()
  color = eval_colorization(config, method, states, splits, centroids,
                            train_mean_ab.astype(np.float32))
  print(json.dumps(color["all_held_out"], indent=1), flush=True)
  seqs = make_tracking_sequences(config, splits)
  track, preds = eval_tracking(config, method, states, seqs)
  print(json.dumps({k: v["J_mean_frames_1_to_end"] for k, v in track.items()
                    if isinstance(v, dict) and "J_mean_frames_1_to_end" in v},
                   indent=1), flush=True)
  by_gap = None
  if gaps:
    by_gap = eval_colorization_by_gap(config, method, states, splits, centroids,
                                      train_mean_ab.astype(np.float32), gaps)
  eval_seconds = time.perf_counter() - t

  pngs = {}
  frames, alpha, _ = seqs[0]
  pngs["tracking"] = save_tracking_png(
      os.path.join(workdir, "video_colorization_tracking.png"), frames, alpha,
      preds, config.eval.png_frames)
  sample = []
  for frames_v in splits.test.values():
    cl = all_clips(frames_v, num_refs=config.clips.num_refs,
                   stride=config.clips.stride, every=1)
    sample.append(cl[len(cl) // 2])
  pngs["colorization"] = save_colorization_png(
      os.path.join(workdir, "video_colorization_samples.png"), method, states,
      np.stack(sample))
  if by_gap is not None:
    pngs["gaps"] = save_gap_png(
        os.path.join(workdir, "video_colorization_gaps.png"), by_gap)
  copied = {}
  if _PNG_DIR.value:
    import shutil  # pylint: disable=import-outside-toplevel
    os.makedirs(_PNG_DIR.value, exist_ok=True)
    for k, p in pngs.items():
      if os.path.getsize(p) < 300_000:
        copied[k] = shutil.copy(p, os.path.join(_PNG_DIR.value, os.path.basename(p)))

  result = {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"cpu": _cpu(), "cores": os.cpu_count(),
                  "jax": jax.__version__, "backend": jax.default_backend()},
      "frames": splits.describe(),
      "frame_size": list(train_videos[0].shape[1:3]),
      "embedding_grid": [train_videos[0].shape[1] // 4,
                         train_videos[0].shape[2] // 4],
      "centroids_ab": np.round(centroids, 2).tolist(),
      "train": {"steps": int(config.num_steps), "batch_size": int(config.batch_size),
                "seconds_after_compile": round(train_seconds, 1),
                "first_log": log[0] if log else None,
                "last_log": log[-1] if log else None},
      "colorization": color,
      "tracking": track,
      **({"colorization_by_gap": by_gap} if by_gap is not None else {}),
      "eval_seconds": round(eval_seconds, 1),
      "total_seconds": round(time.perf_counter() - t_all, 1),
      "pngs": pngs, "pngs_copied": copied,
      "config": json.loads(config.to_json()),
  }
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(result, f, indent=1)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, "w") as f:
      json.dump(result, f, indent=1)
  print(f"wrote {os.path.join(workdir, 'eval.json')}", flush=True)


def _eval_gaps_only(config, method, states, splits, centroids, train_mean_ab,
                    gaps, workdir, t_all):
  """``--eval_only``: the by-gap table and its PNG, added under
  ``colorization_by_gap`` to the JSONs that exist (``workdir/eval.json``,
  ``--out``); their other keys stay as the training run wrote them."""
  t = time.perf_counter()
  by_gap = eval_colorization_by_gap(config, method, states, splits, centroids,
                                    train_mean_ab, gaps)
  by_gap["seconds"] = round(time.perf_counter() - t, 1)
  png = save_gap_png(os.path.join(workdir, "video_colorization_gaps.png"),
                     by_gap)
  copied = None
  if _PNG_DIR.value and os.path.getsize(png) < 300_000:
    import shutil  # pylint: disable=import-outside-toplevel
    os.makedirs(_PNG_DIR.value, exist_ok=True)
    copied = shutil.copy(png, os.path.join(_PNG_DIR.value,
                                           os.path.basename(png)))
  by_gap.update({
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"cpu": _cpu(), "cores": os.cpu_count(),
                  "jax": jax.__version__, "backend": jax.default_backend()},
      "params": os.path.join(workdir, "params.msgpack"),
      "total_seconds": round(time.perf_counter() - t_all, 1),
      "png": png, "png_copied": copied})
  for path in dict.fromkeys([os.path.join(workdir, "eval.json"),
                             _OUT.value or None]):
    if path is None:
      continue
    result = {}
    if os.path.isfile(path):
      with open(path) as f:
        result = json.load(f)
    result["colorization_by_gap"] = by_gap
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
    print(f"wrote colorization_by_gap to {path}", flush=True)


if __name__ == "__main__":
  app.run(main)
