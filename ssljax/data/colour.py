"""Colour crops for colorization and split-brain pre-training: all the real
colour data of this machine, held out by source file.

Three kinds of source, each a :class:`ColourSource`:

* ``"photo"``: the colour photos of Debian's ``opencv-doc``
  (:func:`ssljax.data.photos.find_photos`: 3-channel, not gray, no drawings);
* ``"skimage"``: the colour sample images that scikit-image ships
  (:data:`SKIMAGE_COLOUR_IMAGES`; ``cat`` is ``chelsea`` again, and
  ``colorwheel`` and ``logo`` are drawings, so they are left out; ``lily``,
  ``skin``, ... are not in the wheel and would need a download);
* ``"video"``: every video file of ``opencv-doc``
  (:func:`ssljax.data.video.find_videos`), every frame of it; one video file
  is one source.

Sources are grouped so that near-duplicates stay on one side of a split:
stereo pairs and sequences share a group (``aloeL``/``aloeR``,
``left``/``right``, ``rubberwhale1``/``2``,
:func:`~ssljax.data.photos.photo_group`; ``motorcycle_left``/``_right``), and
``Megamind_bugy.avi``, a re-encoding of ``Megamind.avi``, is in Megamind's
group. :func:`split_colour_sources` assigns whole groups, kind by kind (so
every split gets photos and scikit-image images): the groups of one kind,
sorted by name, are numbered ``i = 0, 1, ...``; group ``i`` is ``"test"``
when ``(i + 1) % test_every == 0``, else ``"validation"`` when ``(i + 3) %
validation_every == 0``, else ``"train"``. The videos of
:data:`ssljax.data.video.HOLDOUT_VIDEOS` (``tree.avi``, the held-out video
of the ``"opencv_videos"`` dataset) are also test. A kind with two or more
groups and none held out (other folders) gives its last group to test; a
kind's only group stays in train. With the defaults (``test_every=5``, so
the test photos are exactly ``load_photos("test")``'s; ``validation_every=
10``) on Debian's opencv-doc 4.6 and scikit-image 0.26 there are 45 sources
(32 photos, 9 scikit-image images, 4 videos) in 36 groups:

* ``"test"`` (8 sources): photos board, graf1, graf3, licenseplate_motion,
  smarties, text_motion; scikit-image immunohistochemistry; video
  tree.avi.
* ``"validation"`` (4 sources): photos ela_modified, ela_original,
  pca_test1; scikit-image rocket. (No video: of the three distinct videos
  one is test and two train.)
* ``"train"`` (33 sources): the other 23 photos; scikit-image astronaut,
  chelsea, coffee, hubble_deep_field, motorcycle_left, motorcycle_right,
  retina; videos Megamind.avi, Megamind_bugy.avi, vtest.avi.

:func:`load_colour_crops` cuts each source of a split into random square
crops (side ``u * min(H, W)``, ``u ~ U(scale)``), randomly flipped
left-right, resized to ``size`` (PIL's area-averaging ``BOX`` filter). A
still image gives ``crops_per_source`` crops; a video of ``T`` frames gives
``max(crops_per_source, crops_per_frame * T)``, spread evenly over all its
frames (every frame gives at least ``crops_per_frame``; none is skipped). So
a video weighs as much as a photo unless it is long: with the defaults
(1024, 1) the training split is 33,792 crops, 30,720 from 30 still images
and 3,072 (9 %) from 1,335 video frames (Megamind.avi and Megamind_bugy.avi
270 frames, 1024 crops each; vtest.avi 795 frames, 1024 crops); validation
4,096 crops; test 8,192 (tree.avi: 68 frames, 1024 crops). At 32 x 32 that
is 104 MB, 13 MB and 25 MB of uint8. (``tree.avi``'s index lists 444
frames, 376 of them empty repeats: OpenCV decodes its 68 real frames.)

Labels are the source's index in the split (:func:`colour_source_names`,
also the returned dataset's ``sources``), a held-out "which source is this
crop from" task; ``label_by="group"`` labels by group instead (stereo pairs
and the two Megamind files then share a label). Everything is deterministic
given the arguments; a source's crops depend on ``seed`` and its name only
(not on the split it is in)::

    train = load_colour_crops("train")             # ColourCrops
    ssljax.data.load("colour_crops", "test")       # the same, by name
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from ssljax.data.dataset import ArrayDataset, DatasetNotAvailableError
from ssljax.data.photos import (PHOTOS_DIR, find_photos, photo_group,
                                random_photo_crops, read_photo)
from ssljax.data.video import HOLDOUT_VIDEOS, find_videos

__all__ = [
    "COLOUR_CROPS",
    "ColourCrops",
    "ColourSource",
    "KINDS",
    "SKIMAGE_COLOUR_IMAGES",
    "SPLITS",
    "colour_source_names",
    "colour_sources",
    "count_frames",
    "iter_video_frames",
    "load_colour_crops",
    "random_colour_crops",
    "read_colour_image",
    "source_frames",
    "split_colour_sources",
]

#: The dataset name of :func:`load_colour_crops` (``config.dataset``).
COLOUR_CROPS = "colour_crops"
#: The splits (``"all"`` is every source).
SPLITS = ("train", "validation", "test")
#: The kinds of source, in the order their names sort.
KINDS = ("photo", "skimage", "video")

#: The colour images that scikit-image ships in its wheel: source name ->
#: (``skimage.data`` function, index in its tuple or None, file in
#: ``skimage.data.data_dir``, group).
SKIMAGE_COLOUR_IMAGES = {
    "astronaut": ("astronaut", None, "astronaut.png", "astronaut"),
    "chelsea": ("chelsea", None, "chelsea.png", "chelsea"),
    "coffee": ("coffee", None, "coffee.png", "coffee"),
    "hubble_deep_field": ("hubble_deep_field", None, "hubble_deep_field.jpg",
                          "hubble_deep_field"),
    "immunohistochemistry": ("immunohistochemistry", None, "ihc.png",
                             "immunohistochemistry"),
    "motorcycle_left": ("stereo_motorcycle", 0, "motorcycle_left.png",
                        "motorcycle"),
    "motorcycle_right": ("stereo_motorcycle", 1, "motorcycle_right.png",
                         "motorcycle"),
    "retina": ("retina", None, "retina.jpg", "retina"),
    "rocket": ("rocket", None, "rocket.jpg", "rocket"),
}

_MIN_COLORFULNESS = 2.0
#: Frame counts of videos already decoded: (path, size, mtime) -> frames.
_FRAME_COUNTS: dict[tuple[str, int, int], int] = {}


def _missing_message(why: str) -> str:
  return (f"no colour sources for {COLOUR_CROPS!r}: {why}. On Debian/Ubuntu: "
          "`apt-get install opencv-doc` (colour photos and the videos "
          f"vtest.avi, Megamind.avi, tree.avi under {PHOTOS_DIR}) and `pip "
          "install scikit-image` (its bundled sample images astronaut, "
          "chelsea, coffee, ...); or use 'opencv_photos' / 'opencv_videos' "
          "alone. With internet, CIFAR-10 through TFDS "
          "(ssljax.data.load('cifar10', 'train')) is the usual alternative.")


def _cv2():
  try:
    import cv2  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("decoding videos needs OpenCV (opencv-python-headless): "
                      "pip install 'ssljax[video]'") from e
  return cv2


def _skimage_data():
  try:
    import skimage.data  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DatasetNotAvailableError(_missing_message(
        "scikit-image is not installed (pip install scikit-image; or pass "
        "include_skimage=False for the opencv-doc sources alone)")) from e
  return skimage.data


def _colorfulness(image: np.ndarray) -> float:
  x = image.astype(np.float32)
  return float(np.abs(x - x.mean(-1, keepdims=True)).mean())


@dataclasses.dataclass(frozen=True, order=True)
class ColourSource:
  """One source of colour pixels.

  Attributes:
    name: ``"<kind>:<file or image>"``, e.g. ``"photo:aloeL.jpg"``,
      ``"skimage:astronaut"``, ``"video:vtest.avi"`` (sources sort by it).
    kind: one of :data:`KINDS`.
    group: ``"<kind>:<group>"``; near-duplicates share it (``"photo:aloe"``,
      ``"video:megamind"``) and are never split apart.
    path: the file the pixels come from (a scikit-image image's file in
      ``skimage.data.data_dir``; ``""`` if scikit-image keeps it elsewhere).
  """
  name: str
  kind: str
  group: str
  path: str = ""


@functools.lru_cache(maxsize=1)
def _skimage_sources() -> tuple[ColourSource, ...]:
  """The colour images of the installed scikit-image (read once a
  process)."""
  data = _skimage_data()
  out = []
  for key, (_, _, filename, group) in sorted(SKIMAGE_COLOUR_IMAGES.items()):
    source = ColourSource(f"skimage:{key}", "skimage", f"skimage:{group}",
                          os.path.join(str(getattr(data, "data_dir", "")),
                                       filename))
    if not os.path.isfile(source.path):
      source = dataclasses.replace(source, path="")
    try:
      image = read_colour_image(source)
    except (AttributeError, OSError, ValueError, ModuleNotFoundError):
      continue                      # not in this scikit-image version
    if _colorfulness(image) >= _MIN_COLORFULNESS:
      out.append(source)
  return tuple(out)


def colour_sources(data_dir: str | None = None, *,
                   include_skimage: bool = True) -> list[ColourSource]:
  """Every colour source, sorted by name: the colour photos and every video
  file of ``data_dir`` (default Debian opencv-doc's
  ``/usr/share/doc/opencv-doc/examples/data``) and, with
  ``include_skimage``, scikit-image's colour images.

  Raises:
    DatasetNotAvailableError: naming ``apt-get install opencv-doc`` / ``pip
      install scikit-image`` when the folder, its photos or videos, or
      scikit-image are missing.
  """
  directory = data_dir or PHOTOS_DIR
  try:
    photos = find_photos(directory)
    videos = find_videos(directory, names=None)
  except DatasetNotAvailableError as e:
    # Their messages read "no ...: <why>. On Debian/Ubuntu: ...".
    why = str(e).split(". On Debian")[0].split(": ", 1)[-1]
    raise DatasetNotAvailableError(_missing_message(why)) from e
  out = [ColourSource(f"photo:{os.path.basename(p)}", "photo",
                      f"photo:{photo_group(p)}", p) for p in photos]
  out += [ColourSource(f"video:{os.path.basename(p)}", "video",
                       f"video:{photo_group(p)}", p) for p in videos]
  if include_skimage:
    _skimage_data()                     # raises if scikit-image is missing
    out += _skimage_sources()
  return sorted(out)


def split_colour_sources(sources: Sequence[ColourSource], *,
                         test_every: int = 5, validation_every: int = 10,
                         holdout_videos: Sequence[str] = HOLDOUT_VIDEOS
                         ) -> dict[str, list[ColourSource]]:
  """``{"train": [...], "validation": [...], "test": [...]}`` (each sorted
  by name), whole groups at a time, kind by kind.

  The groups of one kind, sorted, are numbered ``i = 0, 1, ...``: ``(i + 1)
  % test_every == 0`` -> test, else ``(i + 3) % validation_every == 0`` ->
  validation, else train (``0`` turns a rule off). Video groups holding a
  file of ``holdout_videos`` are test too. A kind with two or more groups and
  no test group gives its last group to test; a kind's only group is never
  held out.
  """
  for name, every in (("test_every", test_every),
                      ("validation_every", validation_every)):
    if every < 0 or every == 1:
      raise ValueError(f"{name} must be 0 (off) or >= 2; got {every}.")
  where = {}
  for kind in KINDS:
    groups = sorted({s.group for s in sources if s.kind == kind})
    held_videos = {s.group for s in sources if s.kind == kind == "video"
                   and os.path.basename(s.path or s.name) in holdout_videos}
    for i, group in enumerate(groups):
      if len(groups) < 2:
        where[group] = "train"
      elif (test_every and (i + 1) % test_every == 0) or group in held_videos:
        where[group] = "test"
      elif validation_every and (i + 3) % validation_every == 0:
        where[group] = "validation"
      else:
        where[group] = "train"
    if len(groups) >= 2 and "test" not in {where[g] for g in groups}:
      where[groups[-1]] = "test"
  split = {s: [] for s in SPLITS}
  for source in sorted(sources):
    split[where[source.group]].append(source)
  return split


# ---------------------------------------------------------------------------
# Pixels.


def read_colour_image(source: ColourSource) -> np.ndarray:
  """The pixels of a still-image source, uint8 ``[H, W, 3]`` RGB."""
  if source.kind == "photo":
    image = read_photo(source.path)
  elif source.kind == "skimage":
    data = _skimage_data()
    function, index, _, _ = SKIMAGE_COLOUR_IMAGES[source.name.split(":", 1)[1]]
    image = getattr(data, function)()
    image = np.asarray(image if index is None else image[index])
  else:
    raise ValueError(f"{source.name} is a {source.kind}, not a still image: "
                     "use source_frames().")
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"{source.name}: expected uint8 RGB [H, W, 3]; got "
                     f"{image.dtype} {image.shape}.")
  return image


def iter_video_frames(path: str) -> Iterator[np.ndarray]:
  """Decode a video file frame by frame: uint8 RGB ``[H, W, 3]`` each, the
  frames :func:`ssljax.data.video.read_video` stacks (without holding them
  all: ``vtest.avi`` is 1 GB decoded)."""
  cv2 = _cv2()
  if not os.path.isfile(path):
    raise DatasetNotAvailableError(_missing_message(f"{path} does not exist"))
  cap = cv2.VideoCapture(path)
  try:
    if not cap.isOpened():
      raise DatasetNotAvailableError(
          _missing_message(f"OpenCV cannot open {path}"))
    while True:
      ok, bgr = cap.read()
      if not ok:
        break
      if bgr.ndim == 2:
        bgr = np.repeat(bgr[..., None], 3, -1)
      yield cv2.cvtColor(bgr[..., :3], cv2.COLOR_BGR2RGB).astype(
          np.uint8, copy=False)
  finally:
    cap.release()


def count_frames(path: str) -> int:
  """The number of frames OpenCV decodes from ``path`` (not the container's
  claim: ``tree.avi`` says 444 and holds 68); remembered per file size and
  modification time."""
  st = os.stat(path)
  key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
  if key not in _FRAME_COUNTS:
    cv2 = _cv2()
    cap = cv2.VideoCapture(path)
    n = 0
    try:
      while cap.isOpened() and cap.read()[0]:
        n += 1
    finally:
      cap.release()
    _FRAME_COUNTS[key] = n
  return _FRAME_COUNTS[key]


def source_frames(source: ColourSource) -> Iterator[np.ndarray]:
  """The frames of a source, uint8 ``[H, W, 3]`` each: one for a still
  image, every decoded frame for a video."""
  if source.kind == "video":
    yield from iter_video_frames(source.path)
  else:
    yield read_colour_image(source)


def random_colour_crops(image: np.ndarray, num: int, *, size: int,
                        scale: tuple[float, float] = (0.1, 0.5),
                        flip: bool = True,
                        rng: np.random.Generator) -> np.ndarray:
  """``num`` random square crops of ``image [H, W, 3]`` resized to ``size``
  (:func:`ssljax.data.photos.random_photo_crops`), each then mirrored
  left-right with probability 1/2 when ``flip`` (the flips are drawn after
  the crops, so ``flip=False`` gives the same crops unflipped)."""
  crops = random_photo_crops(image, num, size=size, scale=scale, rng=rng)
  if flip:
    flipped = rng.random(num) < 0.5
    crops[flipped] = crops[flipped, :, ::-1]
  return crops


def _source_key(name: str) -> int:
  return zlib.crc32(name.encode("utf-8"))


def _frames_to_use(num_frames: int, frames_per_video: int | None
                   ) -> np.ndarray:
  if frames_per_video is None or frames_per_video >= num_frames:
    return np.arange(num_frames)
  return np.unique(np.round(np.linspace(0, num_frames - 1,
                                        frames_per_video)).astype(np.int64))


def _spread(total: int, parts: int) -> np.ndarray:
  """``total`` split over ``parts`` as evenly as possible (in order)."""
  edges = (np.arange(parts + 1) * total) // parts
  return np.diff(edges)


# ---------------------------------------------------------------------------
# The dataset.


@dataclasses.dataclass(frozen=True)
class ColourCrops(ArrayDataset):
  """An :class:`~ssljax.data.ArrayDataset` of colour crops that remembers
  where each crop comes from.

  Attributes:
    sources: label -> source name (or group name with ``label_by="group"``).
    source_ids: int32 ``[N]``: each crop's source, an index into
      ``source_names``.
    frame_ids: int32 ``[N]``: the crop's frame in its video (``-1`` for a
      still image).
    source_names: the split's sources, sorted by name.
  """
  sources: tuple[str, ...] = ()
  source_ids: np.ndarray | None = None
  frame_ids: np.ndarray | None = None
  source_names: tuple[str, ...] = ()


def _check_split(split: str) -> None:
  if split not in SPLITS + ("all",):
    raise ValueError(f"{COLOUR_CROPS} has no split {split!r}; available: "
                     f"{list(SPLITS)} (and 'all').")


def _split_sources(split: str, data_dir: str | None, include_skimage: bool,
                   test_every: int, validation_every: int
                   ) -> list[ColourSource]:
  _check_split(split)
  sources = colour_sources(data_dir, include_skimage=include_skimage)
  if split == "all":
    return sources
  chosen = split_colour_sources(sources, test_every=test_every,
                                validation_every=validation_every)[split]
  if not chosen:
    raise DatasetNotAvailableError(_missing_message(
        f"the {split!r} split is empty ({len(sources)} sources, test_every="
        f"{test_every}, validation_every={validation_every})"))
  return chosen


def _label_names(chosen: Sequence[ColourSource], label_by: str
                 ) -> tuple[str, ...]:
  if label_by == "source":
    return tuple(s.name for s in chosen)
  if label_by == "group":
    return tuple(sorted({s.group for s in chosen}))
  raise ValueError(f"label_by must be 'source' or 'group'; got {label_by!r}.")


def colour_source_names(split: str = "train", *, data_dir: str | None = None,
                        include_skimage: bool = True, label_by: str = "source",
                        test_every: int = 5, validation_every: int = 10
                        ) -> tuple[str, ...]:
  """Label -> name for :func:`load_colour_crops` with the same arguments:
  the split's source names (``"photo:baboon.jpg"``, ...) sorted, or its
  group names with ``label_by="group"``."""
  chosen = _split_sources(split, data_dir, include_skimage, test_every,
                          validation_every)
  return _label_names(chosen, label_by)


def load_colour_crops(split: str = "train", *, size: int = 32,
                      crops_per_source: int = 1024,
                      frames_per_video: int | None = None,
                      crops_per_frame: int = 1,
                      scale: tuple[float, float] = (0.1, 0.5),
                      flip: bool = True, seed: int = 0,
                      data_dir: str | None = None,
                      include_skimage: bool = True, label_by: str = "source",
                      test_every: int = 5, validation_every: int = 10
                      ) -> ColourCrops:
  """Random square crops of the colour sources of one split.

  Args:
    split: ``"train"``, ``"validation"``, ``"test"`` (see
      :func:`split_colour_sources` and the module docstring) or ``"all"``.
    size: side of the crops after resizing.
    crops_per_source: crops taken from each still image, and at least from
      each video.
    frames_per_video: ``None``: every frame of every video; ``k``: ``k``
      frames evenly spaced (first and last included).
    crops_per_frame: a video of ``T`` used frames gives ``max(
      crops_per_source, crops_per_frame * T)`` crops, spread evenly over its
      frames (each gets at least ``crops_per_frame``).
    scale: range of a crop's side as a fraction of the shorter side.
    flip: mirror each crop left-right with probability 1/2.
    seed: a still image draws its crops from ``default_rng([seed, k])``,
      frame ``j`` of a video from ``default_rng([seed, k, j])``, ``k`` the
      CRC-32 of the source's name.
    data_dir: the folder of photos and videos (default opencv-doc's).
    include_skimage: use scikit-image's colour images (an error if
      scikit-image is missing).
    label_by: ``"source"`` (label = index of the source in the split) or
      ``"group"`` (index of its group).
    test_every, validation_every: see :func:`split_colour_sources`.

  Returns:
    :class:`ColourCrops`: uint8 images ``[N, size, size, 3]``, source by
    source in name order (a video's crops frame by frame), int32 labels,
    ``num_classes`` = number of labels, ``sources`` = their names.

  Raises:
    DatasetNotAvailableError: the sources are missing (the message names
      ``apt-get install opencv-doc`` and scikit-image).
  """
  _check_split(split)
  if size < 1 or crops_per_source < 1 or crops_per_frame < 1:
    raise ValueError(f"size, crops_per_source and crops_per_frame must be >= "
                     f"1; got {size}, {crops_per_source} and "
                     f"{crops_per_frame}.")
  if frames_per_video is not None and frames_per_video < 1:
    raise ValueError(f"frames_per_video must be None (every frame) or >= 1; "
                     f"got {frames_per_video}.")
  chosen = _split_sources(split, data_dir, include_skimage, test_every,
                          validation_every)
  names = _label_names(chosen, label_by)
  label_of = ({s.name: i for i, s in enumerate(chosen)} if label_by == "source"
              else {s.name: names.index(s.group) for s in chosen})
  # The plan: (source, frame index, crops) per frame used, so the output is
  # allocated once.
  plan = []
  for i, source in enumerate(chosen):
    if source.kind != "video":
      plan.append((i, source, -1, crops_per_source))
      continue
    frames = _frames_to_use(count_frames(source.path), frames_per_video)
    total = max(crops_per_source, crops_per_frame * len(frames))
    plan += [(i, source, int(f), int(n))
             for f, n in zip(frames, _spread(total, len(frames)))]
  n = sum(p[3] for p in plan)
  images = np.empty((n, size, size, 3), np.uint8)
  source_ids = np.empty(n, np.int32)
  frame_ids = np.empty(n, np.int32)
  labels = np.empty(n, np.int32)
  at = 0
  for i, source in enumerate(chosen):
    steps = [p for p in plan if p[0] == i]
    wanted = {p[2]: p[3] for p in steps}
    key = _source_key(source.name)
    used = 0
    for j, frame in enumerate(source_frames(source)):
      j = j if source.kind == "video" else -1
      num = wanted.get(j, 0)
      if num == 0:
        continue
      rng = np.random.default_rng([seed, key] + ([j] if j >= 0 else []))
      images[at:at + num] = random_colour_crops(frame, num, size=size,
                                                scale=scale, flip=flip,
                                                rng=rng)
      source_ids[at:at + num] = i
      frame_ids[at:at + num] = j
      labels[at:at + num] = label_of[source.name]
      at += num
      used += 1
    if used != len(steps):
      raise RuntimeError(f"{source.name}: decoded {used} of the "
                         f"{len(steps)} frames planned (the file changed?).")
  short = ",".join(s.name.split(":", 1)[1] for s in chosen)
  return ColourCrops(images, labels, num_classes=len(names),
                     name=f"{COLOUR_CROPS}:{split}[{short}]",
                     sources=names, source_ids=source_ids,
                     frame_ids=frame_ids,
                     source_names=tuple(s.name for s in chosen))
