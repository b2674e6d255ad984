"""Video colorization as a pretext task, and tracking that emerges from it
(Vondrick, Shrivastava, Fathi, Guadarrama & Murphy 2018, "Tracking emerges by
colorizing videos", ECCV 2018, arXiv:1806.09594).

A clip is ``R`` reference frames (1 to 3) and a target frame. Each frame's
lightness ``L`` goes through one shared CNN (:class:`ssljax.models.
EmbeddingNet`) to per-pixel embeddings ``f`` at ``1 / stride`` of the
resolution (4 by default). The target's colour is predicted by pointing into
the references:

    A_ij = exp(f_i . f_j / T) / sum_k exp(f_k . f_j / T)     (i, k: all
                                                               reference pixels)
    y_j  = sum_i A_ij c_i

with ``c_i`` the one-hot colour cluster of reference pixel ``i`` (ab
average-pooled to the embedding resolution, nearest of ``K = 16`` k-means
centres fitted on training frames, :func:`fit_color_clusters`) and ``y_j`` a
distribution over the clusters; the loss is the cross-entropy ``-log
y_j[c*_j]`` against the target's own cluster ``c*_j``, averaged over target
pixels (:func:`ssljax.losses.video_colorization_loss`). ``T = 1`` in
training and ``0.5`` at test time.

Memory: the dense attention is ``[B, M, N]`` (``M`` target and ``N = R M``
reference pixels). :func:`attend_blocked` computes it for blocks of
``block_size`` target pixels at a time (``lax.map`` of a rematerialized
block: the backward pass recomputes each block's attention instead of
storing it), so memory grows as ``block_size x N`` and not ``M x N``;
:func:`attend_dense` is the same function in one piece.

Tracking: :func:`propagate_labels` carries a label map (soft ``[H, W, C]``:
a segmentation mask's one-hot channels, keypoint heat maps) from frame 0
through a video with the same attention over the first frame and the
previous ``num_prev`` frames (their propagated labels), optionally keeping
only the ``topk`` most similar reference pixels and those within a
``radius`` (in embedding cells) of the target pixel.

Training goes through the one loop (``experiments/pretrain.py --config
experiments/configs/video_colorization.py``) on a clip dataset
(:func:`ssljax.data.video.load_clips`: uint8 clips ``[N, R + 1, H, W, 3]``);
from a config: sections ``encoder`` (:class:`~ssljax.models.EmbeddingNet`
fields) and ``video_colorization`` (this class's fields); the colour
clusters are fitted on ``data.dataset``'s training frames (a fixed stand-in
when only checking a config). The evaluation (held-out colorization,
tracking J) is :mod:`ssljax.eval.video`.

Usage::

    centroids = fit_color_clusters(list(train.videos.values()), stride=4)
    method = VideoColorization(model=EmbeddingNet(), tx=optax.adam(1e-3),
                               centroids=centroids, block_size=128)
    state = method.init(jax.random.key(0), clips.shape[1:])  # (R+1, H, W, 3)
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, clips_uint8, key)   # loss, acc, lr
    probs = method.predict(state, clips)["probs"]    # [B, h, w, K], T = 0.5
    local = method.predict(state, clips, radius=4)   # a local window, dense
    masks = method.propagate(state, frames, first_mask_onehot, topk=20,
                             radius=4, num_prev=3)   # [T, H, W, C]
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import to_float
from ssljax.augment.lab import nearest_ab_bin, rgb_to_lab
from ssljax.config import build, check
from ssljax.config import replace as replace_checked
from ssljax.losses.colorization import PROB_FLOOR, video_colorization_loss
from ssljax.methods.base import (Method, TrainState, build_encoder,
                                 encoder_variables, loss_step, register,
                                 step_key, train_state)
from ssljax.models.colorization import EmbeddingNet

__all__ = [
    "EMBEDDING_NETS",
    "VideoColorization",
    "attend",
    "attend_blocked",
    "attend_dense",
    "attention_weights",
    "color_cluster_targets",
    "fit_color_clusters",
    "pool_ab",
    "propagate_labels",
    "standin_centroids",
    "training_frames",
    "window_mask",
]

#: The per-frame networks by ``config.encoder.name``.
EMBEDDING_NETS = {"embedding_net": EmbeddingNet}

#: Scale of the network's input: ``(L - 50) / 50``.
L_CENTER, L_SCALE = 50.0, 50.0


# ---------------------------------------------------------------------------
# Attention (pure jnp).


def _check_attention_args(f_ref, labels_ref, f_tgt, temperature):
  if (f_ref.ndim != 3 or f_tgt.ndim != 3 or labels_ref.ndim != 3
      or f_ref.shape[0] != f_tgt.shape[0] != labels_ref.shape[0]
      or f_ref.shape[2] != f_tgt.shape[2]
      or labels_ref.shape[:2] != f_ref.shape[:2]):
    raise ValueError(f"need f_ref [B, N, D], labels_ref [B, N, K] and f_tgt "
                     f"[B, M, D]; got {f_ref.shape}, {labels_ref.shape} and "
                     f"{f_tgt.shape}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0; got {temperature}.")


def attention_weights(f_ref, f_tgt, *, temperature: float = 1.0,
                      mask=None) -> jax.Array:
  """``A [B, M, N]``: for each target pixel ``j`` a softmax over the reference
  pixels ``i`` of ``f_i . f_j / T`` (so ``A[b, j, :]`` sums to 1; the
  paper's ``A_ij`` is ``A[b, j, i]``).

  Args:
    f_ref: ``[B, N, D]`` reference-pixel embeddings (all reference frames'
      pixels, flattened).
    f_tgt: ``[B, M, D]`` target-pixel embeddings.
    temperature: ``T`` (1 in training, 0.5 at test time).
    mask: optional bool ``[M, N]``: which reference pixels each target
      pixel may attend to (e.g. :func:`window_mask`; each row needs one).
  """
  if f_ref.ndim != 3 or f_tgt.ndim != 3 or f_ref.shape[2] != f_tgt.shape[2]:
    raise ValueError(f"need f_ref [B, N, D] and f_tgt [B, M, D]; got "
                     f"{f_ref.shape} and {f_tgt.shape}.")
  s = jnp.einsum("bmd,bnd->bmn", f_tgt.astype(jnp.float32),
                 f_ref.astype(jnp.float32)) / temperature
  if mask is not None:
    if tuple(mask.shape) != (f_tgt.shape[1], f_ref.shape[1]):
      raise ValueError(f"mask must be [M, N] = {(f_tgt.shape[1], f_ref.shape[1])}"
                       f"; got {tuple(mask.shape)}.")
    s = jnp.where(jnp.asarray(mask)[None], s, -jnp.inf)
  return jax.nn.softmax(s, axis=-1)


def attend_dense(f_ref, labels_ref, f_tgt, *, temperature: float = 1.0,
                 mask=None) -> jax.Array:
  """``y [B, M, K]``, ``y_j = sum_i A_ij c_i`` with the whole ``[B, M, N]``
  attention in memory.

  Args:
    f_ref: ``[B, N, D]`` reference embeddings.
    labels_ref: ``[B, N, K]`` what each reference pixel carries (one-hot
      colour clusters in training; soft labels when tracking).
    f_tgt: ``[B, M, D]`` target embeddings.
    temperature: ``T > 0``.
    mask: optional bool ``[M, N]`` (:func:`attention_weights`).
  """
  _check_attention_args(f_ref, labels_ref, f_tgt, temperature)
  a = attention_weights(f_ref, f_tgt, temperature=temperature, mask=mask)
  return jnp.einsum("bmn,bnk->bmk", a, labels_ref.astype(jnp.float32))


def attend_blocked(f_ref, labels_ref, f_tgt, *, temperature: float = 1.0,
                   block_size: int = 128) -> jax.Array:
  """:func:`attend_dense` computed ``block_size`` target pixels at a time.

  A ``lax.map`` over blocks of target pixels (the last block padded); each
  block is ``jax.checkpoint``-ed, so the backward pass recomputes its
  ``[B, block_size, N]`` attention rather than storing all of them. Peak
  memory ~ ``B x block_size x N`` instead of ``B x M x N``; values and
  gradients equal the dense computation's up to float rounding.
  """
  _check_attention_args(f_ref, labels_ref, f_tgt, temperature)
  if block_size < 1:
    raise ValueError(f"block_size must be >= 1; got {block_size}.")
  b, m, d = f_tgt.shape
  k = labels_ref.shape[-1]
  blk = min(block_size, m)
  nb = -(-m // blk)
  pad = nb * blk - m
  ft = jnp.pad(f_tgt.astype(jnp.float32), ((0, 0), (0, pad), (0, 0)))
  ft = ft.reshape(b, nb, blk, d).swapaxes(0, 1)               # [nb, B, blk, D]
  f_ref = f_ref.astype(jnp.float32)
  labels_ref = labels_ref.astype(jnp.float32)

  @jax.checkpoint
  def block(fb):
    s = jnp.einsum("bmd,bnd->bmn", fb, f_ref) / temperature
    return jnp.einsum("bmn,bnk->bmk", jax.nn.softmax(s, axis=-1), labels_ref)

  y = jax.lax.map(block, ft)                                   # [nb, B, blk, K]
  return y.swapaxes(0, 1).reshape(b, nb * blk, k)[:, :m]


def attend(f_ref, labels_ref, f_tgt, *, temperature: float = 1.0,
           block_size: int | None = None) -> jax.Array:
  """:func:`attend_blocked` when ``block_size`` is given (and smaller than
  the number of target pixels), else :func:`attend_dense`."""
  if block_size is None or block_size >= f_tgt.shape[1]:
    return attend_dense(f_ref, labels_ref, f_tgt, temperature=temperature)
  return attend_blocked(f_ref, labels_ref, f_tgt, temperature=temperature,
                        block_size=block_size)


# ---------------------------------------------------------------------------
# Colour targets.


def pool_ab(lab, hw: tuple[int, int]) -> jax.Array:
  """The ab channels of Lab ``[..., H, W, 3]`` average-pooled to ``hw``
  (``h | H``, ``w | W``): ``[..., h, w, 2]``."""
  big_h, big_w = lab.shape[-3:-1]
  h, w = hw
  if big_h % h or big_w % w:
    raise ValueError(f"cannot pool {big_h}x{big_w} to {h}x{w}.")
  ab = lab[..., 1:]
  sh, sw = big_h // h, big_w // w
  total = sum(ab[..., i::sh, j::sw, :] for i in range(sh) for j in range(sw))
  return total / (sh * sw)


def color_cluster_targets(lab, centroids, hw) -> jax.Array:
  """Cluster index (int32 ``[..., h, w]``) of each ``stride x stride`` block's
  mean ab: the nearest of ``centroids [K, 2]``."""
  return nearest_ab_bin(pool_ab(lab, hw), jnp.asarray(centroids, jnp.float32))


def fit_color_clusters(train_videos: Sequence[np.ndarray], *,
                       num_clusters: int = 16, stride: int = 4,
                       max_pixels: int = 200_000, seed: int = 0
                       ) -> np.ndarray:
  """k-means (scikit-learn, k-means++ init) of the ab colours of training
  frames, at the embedding resolution (ab average-pooled over ``stride x
  stride`` blocks, as the targets are); at most ``max_pixels`` evenly
  spaced pooled pixels. Returns float32 ``[num_clusters, 2]`` sorted by
  ``(a, b)``. Pass only training frames: the held-out ones must not shape
  the targets."""
  from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel
  ab_all = []
  lab_fn = jax.jit(lambda x: pool_ab(rgb_to_lab(x), (x.shape[1] // stride,
                                                     x.shape[2] // stride)))
  for frames in train_videos:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
      raise ValueError(f"videos must be uint8 [T, H, W, 3]; got "
                       f"{frames.shape}.")
    for i in range(0, len(frames), 64):
      ab_all.append(np.asarray(lab_fn(frames[i:i + 64])).reshape(-1, 2))
  ab = np.concatenate(ab_all)
  if len(ab) > max_pixels:
    ab = ab[np.linspace(0, len(ab) - 1, max_pixels).astype(np.int64)]
  km = KMeans(n_clusters=num_clusters, n_init=4, random_state=seed).fit(
      ab.astype(np.float64))
  c = km.cluster_centers_.astype(np.float32)
  return c[np.lexsort((c[:, 1], c[:, 0]))]


def standin_centroids(num_clusters: int = 16) -> np.ndarray:
  """``num_clusters`` fixed ab centres (gray and a ring of radius 30): the
  cheap stand-in for fitted clusters when a config is only checked (no
  data). float32 ``[K, 2]``."""
  k = max(int(num_clusters), 2)
  angle = 2 * np.pi * np.arange(k - 1) / (k - 1)
  ring = 30.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
  return np.concatenate([np.zeros((1, 2)), ring]).astype(np.float32)


def training_frames(dataset) -> list[np.ndarray]:
  """The training frames of a clip dataset, as a list of uint8 ``[T, H, W,
  3]``: its ``videos`` (each frame once) when it has them, else every frame
  of its clips ``images [N, R + 1, H, W, 3]``."""
  videos = getattr(dataset, "videos", None)
  if isinstance(videos, Mapping) and videos:
    return [np.asarray(v) for v in videos.values()]
  images = np.asarray(dataset.images)
  return [images.reshape(-1, *images.shape[-3:])]


# The clusters of a loaded training set, per (images array, options): the
# loop builds the method more than once on the same data (checking, then
# training; restoring for evaluation).
_CLUSTERS: "weakref.WeakKeyDictionary[np.ndarray, dict]" = (
    weakref.WeakKeyDictionary())


def _clusters_of(dataset, *, num_clusters: int, stride: int, seed: int
                 ) -> np.ndarray:
  key = (int(num_clusters), int(stride), int(seed))
  try:
    cache = _CLUSTERS.setdefault(dataset.images, {})
  except TypeError:                         # not weak-referenceable
    cache = {}
  if key not in cache:
    cache[key] = fit_color_clusters(training_frames(dataset),
                                    num_clusters=num_clusters, stride=stride,
                                    seed=seed)
  return cache[key]


# ---------------------------------------------------------------------------
# Label propagation (tracking).


def window_mask(h: int, w: int, radius: int, *, num_refs: int = 1
                ) -> jax.Array:
  """bool ``[h w, num_refs h w]``: target cell ``j`` of an ``h x w`` grid
  may attend to cell ``i`` of each of ``num_refs`` reference frames when
  their Chebyshev distance is at most ``radius`` cells (a local window;
  the same place in every reference)."""
  if radius < 0 or num_refs < 1:
    raise ValueError(f"need radius >= 0 and num_refs >= 1; got {radius} and "
                     f"{num_refs}.")
  return jnp.tile(_window_mask(h, w, radius), (1, num_refs))


def _window_mask(h: int, w: int, radius: int | None):
  """``[h w, h w]`` bool: target cell ``j`` may look at reference cell ``i``
  (Chebyshev distance <= radius)."""
  if radius is None:
    return None
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  pos = np.stack([yy.ravel(), xx.ravel()], -1)
  d = np.abs(pos[:, None, :] - pos[None, :, :]).max(-1)
  return jnp.asarray(d <= radius)


def propagate_labels(embeddings, first_labels, *, temperature: float = 0.5,
                     topk: int | None = None, radius: int | None = None,
                     num_prev: int = 1, use_first: bool = True) -> jax.Array:
  """Carry ``first_labels`` from frame 0 through a video.

  For each frame ``t >= 1``: references = frame 0 (if ``use_first``, with
  the given labels) and the previous ``num_prev`` frames (with their
  propagated labels; fewer at the start); scores ``f_i . f_j / T``, masked
  to reference cells within ``radius`` (Chebyshev, in cells) of ``j`` and
  then to the ``topk`` best (ties at the k-th score are kept); softmax over
  the remaining references; ``labels_t[j] = sum_i A_ij labels[i]``.

  Args:
    embeddings: ``[T, h, w, D]`` per-frame embeddings.
    first_labels: ``[h, w, C]`` soft labels of frame 0 (at the embedding
      resolution).
    temperature: ``T`` (0.5 at test time).
    topk: keep the ``k`` largest scores per target pixel (``None``: all).
    radius: local window in cells (``None``: the whole frame).
    num_prev: previous frames used as references (>= 1 unless ``use_first``).
    use_first: always attend to frame 0 and its given labels too.

  Returns:
    float32 ``[T, h, w, C]``; frame 0 is ``first_labels``. Pure (scan over
    time); jit it with the options static.
  """
  emb = jnp.asarray(embeddings, jnp.float32)
  lab0 = jnp.asarray(first_labels, jnp.float32)
  if emb.ndim != 4 or lab0.ndim != 3 or lab0.shape[:2] != emb.shape[1:3]:
    raise ValueError(f"need embeddings [T, h, w, D] and first_labels [h, w, "
                     f"C] on the same grid; got {emb.shape} and {lab0.shape}.")
  if num_prev < 0 or (num_prev == 0 and not use_first):
    raise ValueError("need num_prev >= 1, or use_first with num_prev >= 0.")
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0; got {temperature}.")
  t_len, h, w, d = emb.shape
  c = lab0.shape[-1]
  m = h * w
  f = emb.reshape(t_len, m, d)
  l0 = lab0.reshape(m, c)
  window = _window_mask(h, w, radius)                 # [m, m] or None
  n_refs = num_prev + int(use_first)
  if topk is not None and not 1 <= topk:
    raise ValueError(f"topk must be >= 1; got {topk}.")

  def step(carry, f_t):
    buf_f, buf_l, buf_valid = carry                   # [P, m, D], [P, m, C], [P]
    refs_f, refs_l, refs_valid = buf_f, buf_l, buf_valid
    if use_first:
      refs_f = jnp.concatenate([f[:1], buf_f])
      refs_l = jnp.concatenate([l0[None], buf_l])
      refs_valid = jnp.concatenate([jnp.ones((1,), bool), buf_valid])
    s = jnp.einsum("md,rnd->mrn", f_t, refs_f) / temperature  # [m, R, m]
    ok = jnp.broadcast_to(refs_valid[None, :, None], s.shape)
    if window is not None:
      ok = ok & window[:, None, :]
    s = jnp.where(ok, s, -jnp.inf).reshape(m, n_refs * m)
    if topk is not None and topk < n_refs * m:
      kth = jax.lax.top_k(s, topk)[0][:, -1:]
      s = jnp.where(s >= kth, s, -jnp.inf)
    a = jax.nn.softmax(s, axis=-1)
    lab_t = a @ refs_l.reshape(n_refs * m, c)
    if num_prev:
      buf_f = jnp.concatenate([buf_f[1:], f_t[None]])
      buf_l = jnp.concatenate([buf_l[1:], lab_t[None]])
      buf_valid = jnp.concatenate([buf_valid[1:], jnp.ones((1,), bool)])
    return (buf_f, buf_l, buf_valid), lab_t

  p = max(num_prev, 0)
  init = (jnp.broadcast_to(f[0], (p, m, d)), jnp.broadcast_to(l0, (p, m, c)),
          # frame 0 is in the buffer only when it is not a reference already
          jnp.arange(p) == p - 1 if not use_first else jnp.zeros((p,), bool))
  _, labels = jax.lax.scan(step, init, f[1:])
  return jnp.concatenate([l0[None], labels]).reshape(t_len, h, w, c)


# ---------------------------------------------------------------------------
# The method.


def _lab(images) -> jax.Array:
  x = to_float(images)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return rgb_to_lab(x)


def _gray_input(lab):
  return (lab[..., :1] - L_CENTER) / L_SCALE


def _variables(variables_or_state) -> dict:
  """Flax variables of a State, of a variables dict, or of bare params."""
  if isinstance(variables_or_state, Mapping) and (
      "params" not in variables_or_state):
    return {"params": variables_or_state}
  v = dict(encoder_variables(variables_or_state))
  if not v.get("batch_stats"):
    v.pop("batch_stats", None)
  return v


def _as_tuple(x):
  a = np.asarray(x, np.float64)
  if a.ndim != 2 or a.shape[1] != 2 or len(a) < 2:
    raise ValueError(f"centroids must be [K >= 2, 2]; got shape {a.shape}.")
  return tuple(map(tuple, a.tolist()))


def _crop_ok(c) -> bool:
  return c is None or (len(c) == 2 and all(
      isinstance(v, int) and v >= 1 for v in c))


@register("video_colorization")
@dataclasses.dataclass(frozen=True)
class VideoColorization(Method):
  """Colorize a target frame by pointing into reference frames (Vondrick et
  al. 2018); see the module docstring. The fields after ``tx`` but
  ``centroids`` are the keys of the config section ``video_colorization``.

  Attributes:
    model: a per-frame embedding network (:class:`~ssljax.models.
      EmbeddingNet`): ``apply(vars, gray [N, H, W, 1]) -> [N, H / s, W / s,
      D]``.
    tx: the optax optimizer.
    centroids: ``[K, 2]`` ab cluster centres (:func:`fit_color_clusters`;
      ``None``: :func:`standin_centroids` of ``num_clusters``); stored as
      nested tuples (static under jit).
    num_clusters: ``K`` (16); set from ``centroids`` when they are given.
    temperature: training softmax temperature (1).
    test_temperature: temperature of :meth:`predict` / :meth:`propagate`
      (0.5).
    block_size: target pixels per attention block (``None`` or 0: dense).
    crop_size: ``(h, w)``: train on one random crop of this size per clip
      (the same window in every frame of the clip); ``None``: whole frames.
    flip: flip whole clips left-right at random in training.
    schedule: the learning-rate schedule, only to report ``lr``.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  centroids: Any = None
  num_clusters: int = 16
  temperature: float = 1.0
  test_temperature: float = 0.5
  block_size: int | None = None
  crop_size: tuple[int, int] | None = None
  flip: bool = True
  schedule: Callable[[jax.Array], jax.Array] | None = None

  metric_name = "acc"

  def __post_init__(self):
    if self.centroids is not None:
      object.__setattr__(self, "centroids", _as_tuple(self.centroids))
      object.__setattr__(self, "num_clusters", len(self.centroids))
    if self.crop_size is not None and _crop_ok(tuple(self.crop_size)):
      object.__setattr__(self, "crop_size", tuple(self.crop_size))
    if self.block_size == 0:
      object.__setattr__(self, "block_size", None)
    check(self,
          ("num_clusters", lambda k: isinstance(k, int) and k >= 2,
           "colour clusters: an integer >= 2, e.g. 16 (the paper's)"),
          ("temperature", lambda t: t > 0,
           "the training softmax temperature must be > 0, e.g. 1.0"),
          ("test_temperature", lambda t: t > 0,
           "the test softmax temperature must be > 0, e.g. 0.5"),
          ("block_size", lambda b: b is None or (isinstance(b, int) and b >= 1),
           "target pixels per attention block: an integer >= 1, or 0 / None "
           "for the dense attention"),
          ("crop_size", _crop_ok,
           "(height, width) of the training crops, e.g. (48, 64), or None "
           "for whole frames"))
    if self.centroids is None:
      object.__setattr__(self, "centroids",
                         _as_tuple(standin_centroids(self.num_clusters)))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Sections ``encoder`` (``name``: ``"embedding_net"``, and
    :class:`~ssljax.models.EmbeddingNet`'s fields) and
    ``video_colorization`` (this class's fields). The ``num_clusters``
    colour clusters are k-means of ``data.dataset``'s training frames
    (:func:`training_frames`, seeded with ``config.seed``); a fixed
    stand-in when ``data.dataset`` is None (checking a config)."""
    model = build_encoder(config, registry=EMBEDDING_NETS)
    method = build(cls, config.get("video_colorization"), model=model, tx=tx,
                   schedule=schedule)
    if data.dataset is None or not isinstance(method.num_clusters, int):
      return method
    images = getattr(data.dataset, "images", None)
    if images is None or images.ndim != 5 or images.shape[-1] != 3:
      return method                 # not RGB clips: init / train_step say so
    centroids = _clusters_of(data.dataset, num_clusters=method.num_clusters,
                             stride=getattr(model, "stride", 4),
                             seed=int(config.get("seed", 0) or 0))
    return replace_checked(method, centroids=centroids)

  @property
  def centers(self) -> np.ndarray:
    return np.asarray(self.centroids, np.float32)

  # -- shapes -----------------------------------------------------------------

  @staticmethod
  def _check_clips(clips):
    if clips.ndim != 5 or clips.shape[1] < 2 or clips.shape[-1] != 3:
      raise ValueError(f"clips must be RGB [B, R + 1 >= 2, H, W, 3] (R "
                       f"reference frames, then the target); got "
                       f"{clips.shape}.")

  def init(self, key: jax.Array, clip_shape: Sequence[int]) -> TrainState:
    """Parameters and optimizer state for clips of shape ``(R + 1, H, W,
    3)`` (the crops must fit in the frames)."""
    if len(clip_shape) != 4 or clip_shape[0] < 2 or clip_shape[-1] != 3:
      raise ValueError(f"clip_shape must be (R + 1 >= 2, H, W, 3): clips of "
                       f"R reference frames and a target (a clip dataset, "
                       f"e.g. dataset='opencv_videos'); got "
                       f"{tuple(clip_shape)}.")
    h, w = clip_shape[1:3]
    if self.crop_size is not None:
      ch, cw = self.crop_size
      if not (ch <= h and cw <= w):
        raise ValueError(f"crop_size {self.crop_size} must fit in the frames "
                         f"{h}x{w}.")
      h, w = ch, cw
    variables = self.model.init(key, jnp.zeros((1, h, w, 1), jnp.float32),
                                train=True)
    return train_state(variables, self.tx)

  # -- forward ---------------------------------------------------------------

  def _embed(self, variables, lab):
    """Embeddings ``[N, h, w, D]`` of Lab frames ``[N, H, W, 3]``."""
    return self.model.apply(variables, _gray_input(lab), train=False)

  def embed(self, variables_or_state, frames) -> jax.Array:
    """Embeddings ``[N, h, w, D]`` of uint8 / [0, 1] RGB (or gray) frames
    ``[N, H, W, C]``."""
    return self._embed(_variables(variables_or_state), _lab(frames))

  def encode(self, variables_or_state, images) -> jax.Array:
    """Frozen features ``[N, D]``: the embeddings averaged over the frame,
    of frames ``[N, H, W, C]`` or of the target (last) frames of clips
    ``[N, R + 1, H, W, C]``."""
    if images.ndim == 5:
      images = images[:, -1]
    return self.embed(variables_or_state, images).mean((1, 2))

  def _forward(self, variables, lab, temperature, radius=None):
    """``(probs [B, M, K], targets [B, M], hw)`` of a Lab clip batch
    (``radius``: attend only to reference cells within that many cells of
    the target cell, dense)."""
    b, r1, big_h, big_w, _ = lab.shape
    f = self._embed(variables, lab.reshape(b * r1, big_h, big_w, 3))
    h, w, d = f.shape[1:]
    f = f.reshape(b, r1, h * w, d)
    clusters = color_cluster_targets(lab, self.centers, (h, w))  # [B, R+1, h, w]
    clusters = clusters.reshape(b, r1, h * w)
    onehot = jax.nn.one_hot(clusters[:, :-1], self.num_clusters,
                            dtype=jnp.float32)
    args = (f[:, :-1].reshape(b, (r1 - 1) * h * w, d),             # refs
            onehot.reshape(b, (r1 - 1) * h * w, self.num_clusters),
            f[:, -1])                                              # target
    if radius is None:
      probs = attend(*args, temperature=temperature,
                     block_size=self.block_size)
    else:
      probs = attend_dense(*args, temperature=temperature,
                           mask=window_mask(h, w, radius, num_refs=r1 - 1))
    return probs, clusters[:, -1], (h, w)

  def loss(self, params, batch_stats, lab):
    """``(loss, (batch_stats, accuracy))`` of a Lab clip batch ``[B, R + 1,
    H, W, 3]`` at the training temperature."""
    probs, targets, _ = self._forward(
        {"params": params, **({"batch_stats": batch_stats} if batch_stats
                              else {})}, lab, self.temperature)
    acc = jnp.mean((jnp.argmax(probs, -1) == targets).astype(jnp.float32))
    return video_colorization_loss(probs, targets), (batch_stats, acc)

  def _augment(self, clips, key):
    crop_key, flip_key = jax.random.split(key)
    b, r1, big_h, big_w, _ = clips.shape
    if self.crop_size is not None:
      ch, cw = self.crop_size
      if not (0 < ch <= big_h and 0 < cw <= big_w):
        raise ValueError(f"crop_size {self.crop_size} must fit in the frames "
                         f"{big_h}x{big_w}.")
      ky, kx = jax.random.split(crop_key)
      top = jax.random.randint(ky, (b,), 0, big_h - ch + 1)
      left = jax.random.randint(kx, (b,), 0, big_w - cw + 1)
      clips = jax.vmap(lambda c, y, x: jax.lax.dynamic_slice(
          c, (0, y, x, 0), (r1, ch, cw, 3)))(clips, top, left)
    lab = _lab(clips)
    if self.flip:
      flip = jax.random.bernoulli(flip_key, 0.5, (b,))
      lab = jnp.where(flip[:, None, None, None, None], lab[:, :, :, ::-1], lab)
    return lab

  def train_step(self, state: TrainState, clips: jax.Array,
                 key: jax.Array) -> tuple[TrainState, dict]:
    """One step on uint8 RGB clips ``[B, R + 1, H, W, 3]`` (target last);
    pure: jit it with ``donate_argnums=0``. Crops and flips come from
    ``fold_in(key, state.step)``. Metrics: ``loss``, ``acc`` (target pixels
    whose most likely cluster is their own), ``lr`` (with a schedule)."""
    self._check_clips(clips)
    lab = self._augment(clips, step_key(key, state))
    return loss_step(self, state, lab,
                     metrics=lambda loss, acc: {"loss": loss, "acc": acc})

  # -- evaluation ------------------------------------------------------------

  def predict(self, variables_or_state, clips, *,
              temperature: float | None = None,
              radius: int | None = None) -> dict[str, jax.Array]:
    """Colour distributions of the target frames at the test temperature:
    ``{"probs": [B, h, w, K], "targets": int32 [B, h, w]}`` (the targets'
    own clusters). ``radius``: attend only to reference cells within
    ``radius`` cells (Chebyshev) of the target cell (``None``: all, as in
    training)."""
    self._check_clips(clips)
    t = self.test_temperature if temperature is None else temperature
    probs, targets, (h, w) = self._forward(
        _variables(variables_or_state), _lab(clips), t, radius)
    b = clips.shape[0]
    return {"probs": probs.reshape(b, h, w, -1),
            "targets": targets.reshape(b, h, w)}

  def evaluate(self, variables_or_state, clips, *,
               temperature: float | None = None,
               radius: int | None = None) -> dict[str, jax.Array]:
    """Held-out ``loss`` and ``acc`` (at the test temperature, no flips;
    ``radius`` as in :meth:`predict`)."""
    out = self.predict(variables_or_state, clips, temperature=temperature,
                       radius=radius)
    loss = video_colorization_loss(out["probs"], out["targets"])
    acc = jnp.mean((jnp.argmax(out["probs"], -1) == out["targets"])
                   .astype(jnp.float32))
    return {"loss": loss, "acc": acc}

  def clip_scores(self, variables_or_state, clips, *,
                  temperature: float | None = None,
                  radius: int | None = None) -> dict[str, jax.Array]:
    """Per-clip scores ``[B]`` of colorizing the targets of ``clips`` at the
    test temperature: ``cluster_acc`` (cells whose most likely cluster is
    their own), ``loss`` (the cross-entropy of
    :func:`ssljax.losses.video_colorization_loss` per clip) and the mean L2
    ab error at full resolution, decoding by :meth:`decode_ab`
    ``mode="mean"`` (``ab_error``) and ``"argmax"`` (``ab_error_argmax``).
    With frames of one size, the means over clips are the pooled means over
    pixels. ``radius`` as in :meth:`predict`."""
    out = self.predict(variables_or_state, clips, temperature=temperature,
                       radius=radius)
    probs, targets = out["probs"], out["targets"]
    true_ab = _lab(clips)[:, -1, ..., 1:]
    hw = true_ab.shape[1:3]
    p = jnp.take_along_axis(probs, targets[..., None], -1)[..., 0]

    def err(mode):
      ab = self.decode_ab(probs, hw, mode=mode)
      return jnp.linalg.norm(ab - true_ab, axis=-1).mean((1, 2))

    return {
        "cluster_acc": (jnp.argmax(probs, -1) == targets).astype(
            jnp.float32).mean((1, 2)),
        "loss": -jnp.log(jnp.maximum(p, PROB_FLOOR)).mean((1, 2)),
        "ab_error": err("mean"),
        "ab_error_argmax": err("argmax"),
    }

  def decode_ab(self, probs, out_hw=None, *, mode: str = "mean") -> jax.Array:
    """ab ``[B, H, W, 2]`` from ``probs [B, h, w, K]``: the expectation over
    the cluster centres (``mode="mean"``) or the centre of the most likely
    cluster (``"argmax"``), upsampled (bilinear) to ``out_hw``."""
    c = jnp.asarray(self.centers)
    if mode == "mean":
      ab = probs @ c
    elif mode == "argmax":
      ab = c[jnp.argmax(probs, -1)]
    else:
      raise ValueError(f"mode must be 'mean' or 'argmax'; got {mode!r}.")
    if out_hw is not None and tuple(out_hw) != ab.shape[1:3]:
      ab = jax.image.resize(ab, (ab.shape[0], *out_hw, 2), "bilinear")
    return ab

  def propagate(self, variables_or_state, frames, first_label_map, *,
                temperature: float | None = None, topk: int | None = None,
                radius: int | None = None, num_prev: int = 1,
                use_first: bool = True, upsample: bool = True) -> jax.Array:
    """Track: carry ``first_label_map [H, W, C]`` (soft labels of frame 0)
    through ``frames [T, H, W, 3]`` with :func:`propagate_labels` on this
    network's embeddings (label map area-averaged to the embedding grid).

    Returns float32 ``[T, H, W, C]`` (bilinear upsampling of the propagated
    maps; ``upsample=False``: ``[T, h, w, C]``).
    """
    t = self.test_temperature if temperature is None else temperature
    frames = jnp.asarray(frames)
    if frames.ndim != 4:
      raise ValueError(f"frames must be [T, H, W, C]; got {frames.shape}.")
    big_h, big_w = frames.shape[1:3]
    first = jnp.asarray(first_label_map, jnp.float32)
    if first.ndim != 3 or first.shape[:2] != (big_h, big_w):
      raise ValueError(f"first_label_map must be [H={big_h}, W={big_w}, C]; "
                       f"got {first.shape}.")
    emb = self.embed(variables_or_state, frames)
    h, w = emb.shape[1:3]
    sh, sw = big_h // h, big_w // w
    small = first.reshape(h, sh, w, sw, -1).mean((1, 3))
    labels = propagate_labels(emb, small, temperature=t, topk=topk,
                              radius=radius, num_prev=num_prev,
                              use_first=use_first)
    if not upsample:
      return labels
    return jax.image.resize(labels, (labels.shape[0], big_h, big_w,
                                     labels.shape[-1]), "bilinear")
