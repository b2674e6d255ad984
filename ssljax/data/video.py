"""Real videos for video colorization and tracking: the sample videos of
OpenCV's documentation (Debian package ``opencv-doc``), decoded with OpenCV
(``opencv-python-headless``), resized, cached on disk as ``.npz``, split into
training and held-out frames, and cut into clips of reference frames and a
target frame. A thin loader reads TFDS ``davis`` (DAVIS 2017) for users who
have it built.

``apt-get install opencv-doc`` puts three real videos under
``/usr/share/doc/opencv-doc/examples/data/``: ``vtest.avi`` (795 frames,
576x768, 10 fps, pedestrians, static camera), ``tree.avi`` (68 frames,
240x320) and ``Megamind.avi`` (270 frames, 528x720, 24 fps, animation).
(``Megamind_bugy.avi`` is a re-encoding of ``Megamind.avi`` and is not used.)
:func:`load_opencv_videos` decodes them, resizes every frame to ``width``
pixels wide (height a multiple of ``multiple``, keeping the aspect ratio),
and splits them: the whole of ``tree.avi`` and the last ``test_fraction`` of
every other video are held out (after a gap of ``gap`` frames), the rest is
for training. By default (``test_fraction=0``) videos are held out by source
file, as in :mod:`ssljax.data.colour`: the whole of ``tree.avi`` is held out
and every frame of ``vtest.avi`` and ``Megamind.avi`` is for training::

    splits = load_opencv_videos(width=96)       # VideoSplits
    it = clip_batches(list(splits.train.values()), batch_size=16,
                      num_refs=3, stride=2, seed=0)
    clips = next(it)          # uint8 [16, 4, 72, 96, 3]: 3 references, target

Clips are ``[R + 1, H, W, 3]``: the reference frames ``t - R s, ..., t - s``
(oldest first) and the target frame ``t`` last (``s`` = ``stride``).

What the training loop batches is a :class:`ClipDataset`: every clip of a
split in memory, ``images`` uint8 ``[N, R + 1, H, W, 3]`` (``ssljax.data.
batches`` takes any example shape), and the split's frames (``videos``).
:func:`load_clips` is the dataset ``"opencv_videos"``: the splits above,
cut into clips whose gap (frames from the last reference to the target) is
drawn uniformly from :data:`TRAIN_GAP_RANGE` = 8-32 frames,
:data:`CLIPS_PER_TARGET` = 4 draws per target frame
(:func:`random_gap_indices`): at these gaps copying the last reference's
colours stops working on the moving videos
(``benchmarks/results/video_copy_baseline_by_gap.json``). With the
defaults that is 3,890 training clips ``[4, 72, 96, 3]`` (323 MB) from all
1,065 frames of Megamind.avi and vtest.avi, and 196 held-out clips of
tree.avi::

    train = load_clips("train")          # ClipDataset
    it = ssljax.data.batches(train, batch_size=16, seed=0)
    next(it)["image"].shape              # (16, 4, 72, 96, 3)
    train.gaps                           # int64 [N], each in 8..32
Everything is deterministic given the arguments (batch ``i`` draws from
``numpy.random.default_rng([seed, i])``, so a resumed run sees the batches an
uninterrupted one would). Decoded, resized frames are cached as ``.npz``
(arrays only; read back with ``allow_pickle=False``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ssljax.data.dataset import DatasetNotAvailableError

__all__ = [
    "ClipDataset",
    "CLIPS_PER_TARGET",
    "HOLDOUT_VIDEOS",
    "OPENCV_VIDEOS",
    "OPENCV_VIDEOS_DATASET",
    "TRAIN_GAP_RANGE",
    "VIDEOS_DIR",
    "VIDEO_CACHE_ENV",
    "VideoSplits",
    "all_clips",
    "clip_batches",
    "clip_dataset",
    "clip_indices",
    "clip_span",
    "find_videos",
    "frame_size",
    "load_clips",
    "load_davis",
    "load_opencv_videos",
    "load_video",
    "random_gap_indices",
    "read_video",
    "resize_frames",
    "sample_clips",
    "split_videos",
]

#: Where Debian's ``opencv-doc`` installs its sample videos.
VIDEOS_DIR = "/usr/share/doc/opencv-doc/examples/data"
#: The real videos of ``opencv-doc`` that :func:`load_opencv_videos` uses.
OPENCV_VIDEOS = ("Megamind.avi", "tree.avi", "vtest.avi")
#: The dataset name of :func:`load_clips` (``config.dataset``).
OPENCV_VIDEOS_DATASET = "opencv_videos"
#: Videos held out whole for evaluation (the test video of
#: :mod:`ssljax.data.colour` too).
HOLDOUT_VIDEOS = ("tree.avi",)
#: ``(low, high)``: the gaps of :func:`load_clips`'s clips (frames from the
#: last reference to the target, both ends included), drawn uniformly per
#: clip: gaps where copying the reference fails on the moving videos.
TRAIN_GAP_RANGE = (8, 32)
#: Gaps drawn per target frame by :func:`load_clips` (duplicates dropped).
CLIPS_PER_TARGET = 4
#: Environment variable naming the folder of the decoded-frame cache
#: (default ``~/.cache/ssljax/videos``).
VIDEO_CACHE_ENV = "SSLJAX_VIDEO_CACHE"

_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")
_CACHE_VERSION = 1


def _missing_message(why: str) -> str:
  return (f"no videos for video colorization: {why}. On Debian/Ubuntu: "
          "`apt-get install opencv-doc` (it installs vtest.avi, tree.avi and "
          f"Megamind.avi under {VIDEOS_DIR}); or pass data_dir= a folder of "
          "video files (.avi/.mp4/...). With internet, DAVIS 2017 through "
          "TFDS (ssljax.data.video.load_davis, after `tfds build davis`) is "
          "the usual alternative.")


def _cv2():
  try:
    import cv2  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("decoding videos needs OpenCV (opencv-python-headless): "
                      "pip install 'ssljax[video]'") from e
  return cv2


def read_video(path: str, *, max_frames: int | None = None) -> np.ndarray:
  """Decode a video file: uint8 RGB ``[T, H, W, 3]`` at its own size (the
  first ``max_frames`` frames if given). Raises
  :class:`DatasetNotAvailableError` if OpenCV cannot open it or it has no
  frames."""
  cv2 = _cv2()
  if not os.path.isfile(path):
    raise DatasetNotAvailableError(_missing_message(f"{path} does not exist"))
  cap = cv2.VideoCapture(path)
  frames = []
  try:
    if not cap.isOpened():
      raise DatasetNotAvailableError(
          _missing_message(f"OpenCV cannot open {path}"))
    while max_frames is None or len(frames) < max_frames:
      ok, bgr = cap.read()
      if not ok:
        break
      if bgr.ndim == 2:
        bgr = np.repeat(bgr[..., None], 3, -1)
      frames.append(cv2.cvtColor(bgr[..., :3], cv2.COLOR_BGR2RGB))
  finally:
    cap.release()
  if not frames:
    raise DatasetNotAvailableError(_missing_message(f"{path} has no frames"))
  return np.stack(frames).astype(np.uint8, copy=False)


def frame_size(height: int, width: int, *, target_width: int,
               multiple: int = 8) -> tuple[int, int]:
  """``(H', W')``: ``W' = target_width`` and ``H'`` the rescaled height
  rounded to a multiple of ``multiple`` (at least ``multiple``)."""
  if target_width < 1 or multiple < 1 or target_width % multiple:
    raise ValueError(f"target_width ({target_width}) must be a positive "
                     f"multiple of multiple ({multiple}).")
  h = int(round(height * target_width / width / multiple)) * multiple
  return max(h, multiple), target_width


def resize_frames(frames: np.ndarray, size: tuple[int, int], *,
                  nearest: bool = False) -> np.ndarray:
  """Resize ``[T, H, W, C]`` (uint8) frames to ``size = (H', W')`` with
  OpenCV's area averaging (``nearest``: nearest neighbour, for label
  maps)."""
  cv2 = _cv2()
  frames = np.asarray(frames)
  if frames.ndim != 4:
    raise ValueError(f"frames must be [T, H, W, C]; got {frames.shape}.")
  h, w = size
  interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
  out = np.empty((frames.shape[0], h, w, frames.shape[-1]), frames.dtype)
  for i, f in enumerate(frames):
    r = cv2.resize(f, (w, h), interpolation=interp)
    out[i] = r.reshape(h, w, -1)
  return out


def _default_cache_dir() -> str:
  return os.environ.get(VIDEO_CACHE_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "ssljax", "videos")


def load_video(path: str, *, width: int = 96, multiple: int = 8,
               max_frames: int | None = None,
               cache_dir: str | None = None, cache: bool = True
               ) -> np.ndarray:
  """Decoded frames of ``path`` resized to ``width`` wide (see
  :func:`frame_size`): uint8 ``[T, H', W', 3]``.

  With ``cache`` the result is stored in ``cache_dir`` (default
  ``$SSLJAX_VIDEO_CACHE`` or ``~/.cache/ssljax/videos``) as an ``.npz``
  named after the file, its size and modification time, and the
  arguments; later calls read it back (``np.load(..., allow_pickle=False)``).
  """
  if not os.path.isfile(path):
    raise DatasetNotAvailableError(_missing_message(f"{path} does not exist"))
  st = os.stat(path)
  key = hashlib.sha1(repr((_CACHE_VERSION, os.path.abspath(path), st.st_size,
                           int(st.st_mtime), width, multiple, max_frames)
                          ).encode()).hexdigest()[:12]
  stem = os.path.splitext(os.path.basename(path))[0]
  cache_path = None
  if cache:
    directory = cache_dir or _default_cache_dir()
    cache_path = os.path.join(directory, f"{stem}_w{width}_{key}.npz")
    if os.path.isfile(cache_path):
      try:
        with np.load(cache_path, allow_pickle=False) as z:
          return np.asarray(z["frames"])
      except (OSError, ValueError, KeyError):
        pass                                        # a broken cache: redo it
  frames = read_video(path, max_frames=max_frames)
  size = frame_size(*frames.shape[1:3], target_width=width, multiple=multiple)
  frames = resize_frames(frames, size)
  if cache_path is not None:
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    tmp = cache_path + f".tmp{os.getpid()}.npz"
    np.savez(tmp, frames=frames)
    os.replace(tmp, cache_path)
  return frames


def find_videos(data_dir: str | None = None,
                names: Sequence[str] | None = OPENCV_VIDEOS) -> list[str]:
  """Paths of the videos ``names`` in ``data_dir`` (default
  :data:`VIDEOS_DIR`); ``names=None``: every video file there (sorted).
  Raises :class:`DatasetNotAvailableError` naming ``apt-get install
  opencv-doc`` when the folder or a named video is missing."""
  directory = data_dir or VIDEOS_DIR
  if not os.path.isdir(directory):
    raise DatasetNotAvailableError(
        _missing_message(f"{directory} does not exist"))
  if names is None:
    out = [os.path.join(directory, n) for n in sorted(os.listdir(directory))
           if n.lower().endswith(_EXTENSIONS)
           and os.path.isfile(os.path.join(directory, n))]
    if not out:
      raise DatasetNotAvailableError(
          _missing_message(f"{directory} holds no video files"))
    return out
  missing = [n for n in names
             if not os.path.isfile(os.path.join(directory, n))]
  if missing:
    raise DatasetNotAvailableError(
        _missing_message(f"{directory} lacks {', '.join(missing)}"))
  return [os.path.join(directory, n) for n in names]


@dataclasses.dataclass(frozen=True)
class VideoSplits:
  """Frames of each split: ``{name: uint8 [T, H, W, 3]}``. Held-out parts of
  training videos are named ``"video.avi[start:]"``."""
  train: dict[str, np.ndarray]
  test: dict[str, np.ndarray]

  def describe(self) -> dict[str, dict[str, int]]:
    return {split: {k: int(len(v)) for k, v in getattr(self, split).items()}
            for split in ("train", "test")}


def split_videos(videos: Mapping[str, np.ndarray], *,
                 holdout: Sequence[str] = HOLDOUT_VIDEOS,
                 test_fraction: float = 0.2, gap: int = 8) -> VideoSplits:
  """Hold out the videos ``holdout`` whole, and the last ``test_fraction``
  of every other video; ``gap`` frames between a video's training and
  held-out parts belong to neither (no near-duplicate frames across the
  split)."""
  if not 0.0 <= test_fraction < 1.0 or gap < 0:
    raise ValueError(f"need 0 <= test_fraction < 1 and gap >= 0; got "
                     f"{test_fraction} and {gap}.")
  unknown = set(holdout) - set(videos)
  if unknown:
    raise ValueError(f"holdout names {sorted(unknown)} are not among the "
                     f"videos {sorted(videos)}.")
  train, test = {}, {}
  for name in sorted(videos):
    frames = videos[name]
    if name in holdout:
      test[name] = frames
      continue
    n_test = int(round(len(frames) * test_fraction))
    if n_test == 0:
      train[name] = frames
      continue
    start = len(frames) - n_test
    train[name] = frames[:max(start - gap, 0)]
    test[f"{name}[{start}:]"] = frames[start:]
  return VideoSplits(train=train, test=test)


def load_opencv_videos(*, data_dir: str | None = None,
                       names: Sequence[str] | None = OPENCV_VIDEOS,
                       width: int = 96, multiple: int = 8,
                       holdout: Sequence[str] = HOLDOUT_VIDEOS,
                       test_fraction: float = 0.0, gap: int = 8,
                       cache_dir: str | None = None, cache: bool = True
                       ) -> VideoSplits:
  """The opencv-doc videos (or ``names`` in ``data_dir``), resized to
  ``width`` wide and split by :func:`split_videos`: by default by source
  file (``holdout`` whole, every frame of the others for training; a
  ``test_fraction > 0`` also holds out the tail of each other video).
  Different videos may have different heights; the opencv-doc ones all
  give 72x96 at width 96."""
  paths = find_videos(data_dir, names)
  videos = {os.path.basename(p): load_video(p, width=width, multiple=multiple,
                                            cache_dir=cache_dir, cache=cache)
            for p in paths}
  holdout = [h for h in holdout if h in videos]
  return split_videos(videos, holdout=holdout, test_fraction=test_fraction,
                      gap=gap)


# ---------------------------------------------------------------------------
# Clips.


def _check_clip_args(num_refs: int, stride: int, gap: int | None = None
                     ) -> int:
  """The gap (``None``: ``stride``) after checking all three."""
  if num_refs < 1 or stride < 1:
    raise ValueError(f"num_refs and stride must be >= 1; got {num_refs} and "
                     f"{stride}.")
  gap = stride if gap is None else int(gap)
  if gap < 1:
    raise ValueError(f"gap must be >= 1; got {gap}.")
  return gap


def _clip_offsets(num_refs: int, stride: int, gap: int) -> np.ndarray:
  """Frame offsets from the target of a clip: the references ``-(gap +
  (num_refs - 1) stride), ..., -(gap + stride), -gap``, then 0."""
  return np.concatenate([-(gap + np.arange(num_refs - 1, -1, -1) * stride),
                         [0]]).astype(np.int64)


def clip_span(num_refs: int = 3, stride: int = 2, gap: int | None = None
              ) -> int:
  """Frames from a clip's first reference to its target: ``(num_refs - 1)
  stride + gap`` (``gap`` defaults to ``stride``: ``num_refs * stride``). A
  target ``t`` needs ``t >= clip_span(...)``."""
  gap = _check_clip_args(num_refs, stride, gap)
  return (num_refs - 1) * stride + gap


def _valid_targets(num_frames: int, num_refs: int, stride: int,
                   gap: int | None = None) -> int:
  return max(num_frames - clip_span(num_refs, stride, gap), 0)


def clip_indices(num_frames: int, *, num_refs: int = 3, stride: int = 2,
                 gap: int | None = None, every: int = 1,
                 first_target: int | None = None) -> np.ndarray:
  """Frame indices (int64 ``[N, num_refs + 1]``) of every ``every``-th clip
  of a video of ``num_frames`` frames: references ``t - gap - (num_refs - 1)
  stride, ..., t - gap - stride, t - gap`` (oldest first), then the target
  ``t``, for ``t = first_target, first_target + every, ...`` (default and
  least: :func:`clip_span`, the first target with all its references).

  ``gap`` (default ``stride``) is the distance from the last reference to
  the target. Evaluating several gaps with ``first_target =
  clip_span(num_refs, stride, max(gaps))`` colorizes the same target frames
  at every gap."""
  gap = _check_clip_args(num_refs, stride, gap)
  first = clip_span(num_refs, stride, gap)
  if first_target is not None:
    first = max(first, int(first_target))
  targets = np.arange(first, num_frames, max(int(every), 1), dtype=np.int64)
  return targets[:, None] + _clip_offsets(num_refs, stride, gap)[None]


def _check_gap_range(gap_range) -> tuple[int, int]:
  try:
    lo, hi = (int(g) for g in gap_range)
  except (TypeError, ValueError) as e:
    raise ValueError(f"gap_range must be (low, high); got {gap_range!r}.") from e
  if not 1 <= lo <= hi:
    raise ValueError(f"gap_range must be (low, high) with 1 <= low <= high; "
                     f"got {gap_range!r}.")
  return lo, hi


def random_gap_indices(num_frames: int, *, gap_range: tuple[int, int],
                       num_refs: int = 3, stride: int = 2,
                       clips_per_target: int = 1,
                       rng: np.random.Generator) -> np.ndarray:
  """Frame indices (int64 ``[N, num_refs + 1]``) of clips whose gap (last
  reference to target) is drawn uniformly from ``gap_range = (low, high)``
  (both included): for every target ``t`` that has all its references at
  gap ``low`` (``t >= (num_refs - 1) stride + low``), ``clips_per_target``
  gaps from ``low .. min(high, t - (num_refs - 1) stride)``; a gap drawn
  twice for one target gives one clip. Rows are sorted by target, then
  gap; references ``t - g - (num_refs - 1) stride, ..., t - g``, then
  ``t``. Every frame of the video is in some clip when it is longer than
  ``(num_refs - 1) stride + low``."""
  _check_clip_args(num_refs, stride)
  lo, hi = _check_gap_range(gap_range)
  if clips_per_target < 1:
    raise ValueError(f"clips_per_target must be >= 1; got {clips_per_target}.")
  base = (num_refs - 1) * stride
  targets = np.arange(base + lo, num_frames, dtype=np.int64)
  if not len(targets):
    return np.zeros((0, num_refs + 1), np.int64)
  top = np.minimum(hi, targets - base)                     # >= lo
  gaps = rng.integers(lo, top[:, None] + 1,
                      size=(len(targets), int(clips_per_target)))
  pairs = np.unique(np.stack([np.repeat(targets, gaps.shape[1]),
                              gaps.ravel()], 1), axis=0)   # [N, (t, g)]
  t, g = pairs[:, 0], pairs[:, 1]
  refs = t[:, None] - g[:, None] - stride * np.arange(
      num_refs - 1, -1, -1, dtype=np.int64)[None]
  return np.concatenate([refs, t[:, None]], 1)


def sample_clips(videos: Sequence[np.ndarray], num: int, *, num_refs: int = 3,
                 stride: int = 2, rng: np.random.Generator,
                 gap: int | None = None) -> np.ndarray:
  """``num`` random clips, uint8 ``[num, num_refs + 1, H, W, 3]``: frames
  ``t - gap - (num_refs - 1) stride, ..., t - gap - stride, t - gap, t`` of
  one video (target last; ``gap`` defaults to ``stride``: ``t - num_refs
  stride, ..., t - stride, t``). Every valid ``(video, t)`` is equally
  likely. The videos must share their frame size."""
  gap = _check_clip_args(num_refs, stride, gap)
  videos = list(videos)
  span = clip_span(num_refs, stride, gap)
  counts = np.array([_valid_targets(len(v), num_refs, stride, gap)
                     for v in videos])
  if not videos or counts.sum() == 0:
    raise ValueError(f"no video is longer than (num_refs - 1) * stride + gap "
                     f"= {span} frames.")
  shapes = {v.shape[1:] for v in videos}
  if len(shapes) != 1:
    raise ValueError(f"videos must share their frame shape; got {shapes}.")
  flat = rng.integers(0, counts.sum(), size=num)
  bounds = np.cumsum(counts)
  vid = np.searchsorted(bounds, flat, side="right")
  t = flat - (bounds[vid] - counts[vid]) + span
  offsets = _clip_offsets(num_refs, stride, gap)
  return np.stack([videos[v][ti + offsets] for v, ti in zip(vid, t)])


def clip_batches(videos: Sequence[np.ndarray], *, batch_size: int,
                 num_refs: int = 3, stride: int = 2, seed: int = 0,
                 start_step: int = 0, gap: int | None = None
                 ) -> Iterator[np.ndarray]:
  """Endless batches of :func:`sample_clips`; batch ``i`` (counting from 0,
  resumed at ``start_step``) draws from ``default_rng([seed, i])``."""
  step = start_step
  while True:
    yield sample_clips(videos, batch_size, num_refs=num_refs, stride=stride,
                       rng=np.random.default_rng([seed, step]), gap=gap)
    step += 1


def all_clips(frames: np.ndarray, *, num_refs: int = 3, stride: int = 2,
              every: int = 1, gap: int | None = None,
              first_target: int | None = None) -> np.ndarray:
  """Every ``every``-th clip of one video, uint8 ``[N, num_refs + 1, H, W,
  3]``: the frames :func:`clip_indices` names (by default targets
  ``num_refs * stride, num_refs * stride + every, ...``)."""
  idx = clip_indices(len(frames), num_refs=num_refs, stride=stride, gap=gap,
                     every=every, first_target=first_target)
  return frames[idx] if len(idx) else (
      np.zeros((0, num_refs + 1, *frames.shape[1:]), frames.dtype))


# ---------------------------------------------------------------------------
# Clip datasets: what the training loop batches.


@dataclasses.dataclass(frozen=True)
class ClipDataset:
  """Every clip of some videos, in memory: the dataset the training loop
  batches for video colorization (``ssljax.data.batches`` takes any leading
  shape; a batch is uint8 ``[B, R + 1, H, W, 3]``).

  Attributes:
    images: uint8 ``[N, R + 1, H, W, 3]``: each clip's ``R`` reference frames
      (oldest first), then its target frame.
    labels: int32 ``[N]``, all ``-1`` (unlabelled).
    video_ids: int32 ``[N]``: which of ``videos`` each clip comes from.
    frame_ids: int64 ``[N, R + 1]``: the clip's frame indices in its video.
    videos: ``{name: uint8 [T, H, W, 3]}``: the frames of this split, each
      once (k-means of the training colours, tracking, evaluation at other
      gaps).
    num_refs, stride: ``R`` and the frame step of the clips
      (:func:`clip_indices`).
    name: e.g. ``"opencv_videos:train[Megamind.avi,vtest.avi]"``.
    num_classes: 0 (no labels).
  """
  images: np.ndarray
  labels: np.ndarray
  video_ids: np.ndarray
  frame_ids: np.ndarray
  videos: Mapping[str, np.ndarray] = dataclasses.field(
      default_factory=dict, compare=False, repr=False)
  num_refs: int = 3
  stride: int = 2
  name: str = ""
  num_classes: int = 0

  def __post_init__(self):
    x = self.images
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 5:
      raise ValueError(f"ClipDataset.images must be uint8 clips [N, R + 1, H, "
                       f"W, C]; got {getattr(x, 'dtype', type(x))} "
                       f"{getattr(x, 'shape', '')}.")
    n = x.shape[0]
    if self.labels.shape != (n,) or self.video_ids.shape != (n,) or (
        self.frame_ids.shape != x.shape[:2]):
      raise ValueError(f"ClipDataset: labels {self.labels.shape}, video_ids "
                       f"{self.video_ids.shape} and frame_ids "
                       f"{self.frame_ids.shape} must match images {x.shape}.")

  def __len__(self) -> int:
    return int(self.images.shape[0])

  @property
  def image_shape(self) -> tuple[int, ...]:
    """One example's shape: ``(R + 1, H, W, C)``."""
    return tuple(self.images.shape[1:])

  @property
  def gaps(self) -> np.ndarray:
    """int64 ``[N]``: each clip's gap, frames from its last reference to its
    target."""
    return self.frame_ids[:, -1] - self.frame_ids[:, -2]


def clip_dataset(videos: Mapping[str, np.ndarray], *, num_refs: int = 3,
                 stride: int = 2, every: int = 1, gap: int | None = None,
                 gap_range: tuple[int, int] | None = None,
                 clips_per_target: int = 1, seed: int = 0,
                 name: str = "") -> ClipDataset:
  """The :class:`ClipDataset` of each video of ``videos`` (``{name: uint8
  [T, H, W, 3]}``, one frame size), in name order: every ``every``-th clip
  at gap ``gap`` (:func:`all_clips`), or, with ``gap_range``, clips at
  random gaps (:func:`random_gap_indices`, ``clips_per_target`` draws per
  target, from ``numpy.random.default_rng([seed, crc32(video name)])``:
  a video's clips do not depend on the other videos)."""
  names = sorted(videos)
  if not names:
    raise ValueError("no videos to cut into clips.")
  shapes = {tuple(np.shape(videos[k])[1:]) for k in names}
  if len(shapes) != 1:
    raise ValueError(f"videos must share their frame shape; got {shapes}.")
  clips, vids, fids = [], [], []
  for i, key in enumerate(names):
    frames = np.asarray(videos[key])
    if gap_range is None:
      idx = clip_indices(len(frames), num_refs=num_refs, stride=stride,
                         gap=gap, every=every)
    else:
      idx = random_gap_indices(
          len(frames), gap_range=gap_range, num_refs=num_refs, stride=stride,
          clips_per_target=clips_per_target,
          rng=np.random.default_rng([int(seed), zlib.crc32(key.encode())]))
    clips.append(frames[idx] if len(idx) else
                 np.zeros((0, num_refs + 1, *frames.shape[1:]), frames.dtype))
    vids.append(np.full(len(idx), i, np.int32))
    fids.append(idx.reshape(-1, num_refs + 1))
  images = np.ascontiguousarray(np.concatenate(clips)).astype(np.uint8,
                                                              copy=False)
  if not len(images):
    span = clip_span(num_refs, stride, gap if gap_range is None
                     else _check_gap_range(gap_range)[0])
    raise ValueError(f"no video is longer than {span} frames: no clip.")
  return ClipDataset(images=images, labels=np.full(len(images), -1, np.int32),
                     video_ids=np.concatenate(vids),
                     frame_ids=np.concatenate(fids), videos=dict(videos),
                     num_refs=int(num_refs), stride=int(stride),
                     name=name or ",".join(names))


def load_clips(split: str = "train", *, data_dir: str | None = None,
               names: Sequence[str] | None = OPENCV_VIDEOS, width: int = 96,
               multiple: int = 8, holdout: Sequence[str] = HOLDOUT_VIDEOS,
               test_fraction: float = 0.0, gap: int = 8, num_refs: int = 3,
               stride: int = 2, every: int = 1,
               gap_range: tuple[int, int] | None = TRAIN_GAP_RANGE,
               clips_per_target: int = CLIPS_PER_TARGET, seed: int = 0,
               cache_dir: str | None = None, cache: bool = True
               ) -> ClipDataset:
  """Clips of the opencv-doc videos (``ssljax.data.load("opencv_videos",
  split)``): :func:`load_opencv_videos` (``width`` wide, split by source
  video: ``holdout`` whole, and with ``test_fraction > 0`` the last
  ``test_fraction`` of the others after ``gap`` frames, are ``"test"``; no
  held-out frame is in a training clip), cut into clips of ``num_refs``
  references ``stride`` frames apart and a target (:func:`clip_dataset`):
  ``clips_per_target`` random gaps from ``gap_range`` per target frame
  (seeded by ``seed``), or, with ``gap_range=None``, every ``every``-th clip
  at gap ``stride``.

  The defaults give the video colorization run's data: 3,890 training clips
  ``[4, 72, 96, 3]`` at gaps 8-32 from all frames of Megamind.avi and
  vtest.avi; the held-out split is tree.avi (its ``videos`` are what the
  evaluation reads).
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
  splits = load_opencv_videos(data_dir=data_dir, names=names, width=width,
                              multiple=multiple, holdout=holdout,
                              test_fraction=test_fraction, gap=gap,
                              cache_dir=cache_dir, cache=cache)
  videos = getattr(splits, split)
  return clip_dataset(videos, num_refs=num_refs, stride=stride, every=every,
                      gap_range=gap_range, clips_per_target=clips_per_target,
                      seed=seed, name=f"{OPENCV_VIDEOS_DATASET}:{split}"
                      f"[{','.join(sorted(videos))}]")


# ---------------------------------------------------------------------------
# DAVIS 2017 through TFDS.


def load_davis(split: str = "validation", *, size: tuple[int, int] = (72, 96),
               config: str = "480p", data_dir: str | None = None,
               max_videos: int | None = None, max_frames: int | None = None,
               download: bool = False) -> list[dict]:
  """DAVIS 2017 videos from TFDS (``davis/480p``), resized to ``size``.

  Returns a list of ``{"name": str, "frames": uint8 [T, H, W, 3], "masks":
  uint8 [T, H, W]}`` (instance ids, 0 = background; resized by nearest
  neighbour). Downloads nothing unless ``download=True`` (the archive is
  several GB); a dataset that is not built raises
  :class:`DatasetNotAvailableError` saying how to build it.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:  # pragma: no cover - an optional dependency
    raise ImportError("DAVIS needs tensorflow-datasets and tensorflow-cpu: "
                      "pip install 'ssljax[data]'") from e
  name = f"davis/{config}"
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir, download=download,
                   shuffle_files=False)
  except Exception as e:  # not built, no TFDS data, no download
    first = (str(e).strip().splitlines() or [""])[0][:300]
    where = data_dir or "the default data_dir"
    raise DatasetNotAvailableError(
        f"TFDS dataset {name!r} is not available (looked in {where}; "
        f"{type(e).__name__}: {first}). To fix: run `tfds build {name}` (add "
        "--data_dir=... if you use one), or copy a built ~/tensorflow_datasets "
        "here.") from e
  if max_videos is not None:
    ds = ds.take(max_videos)
  out = []
  for ex in tfds.as_numpy(ds):
    frames = np.asarray(ex["video"]["frames"], np.uint8)
    masks = np.asarray(ex["video"]["segmentations"], np.uint8)
    n = min(len(frames), len(masks))
    if max_frames is not None:
      n = min(n, max_frames)
    video_name = ex["metadata"]["video_name"]
    if isinstance(video_name, bytes):
      video_name = video_name.decode("utf-8", "replace")
    out.append({"name": str(video_name),
                "frames": resize_frames(frames[:n], size),
                "masks": resize_frames(masks[:n], size, nearest=True)[..., 0]})
  return out
