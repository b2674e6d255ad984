"""Natural colour photos for colorization: random crops of the sample photos
of OpenCV's documentation (Debian package ``opencv-doc``).

``apt-get install opencv-doc`` puts about 40 colour photos (fruits.jpg,
baboon.jpg, butterfly.jpg, ...) under
``/usr/share/doc/opencv-doc/examples/data/``. :func:`load_photos` reads the
3-channel colour ones, holds out whole photos for evaluation, and returns
square random crops, resized, as an :class:`~ssljax.data.ArrayDataset`
(uint8 ``[N, S, S, 3]``, label = the photo's index within the split)::

    train = load_photos("train", size=32, crops_per_photo=256, seed=0)
    test = load_photos("test", size=32, crops_per_photo=64, seed=1)

Everything is deterministic given the arguments. On a machine with internet
the usual alternative for colorization is CIFAR-10 or ImageNet through TFDS
(``ssljax.data.load("cifar10", "train")``); this module downloads nothing.

Which files count: PNG / JPEG files whose decoded mode is RGB (so grayscale,
palette and RGBA files are skipped) and that are not gray stored as RGB (mean
absolute deviation of a pixel's channels from their mean >=
``min_colorfulness``, in 0..255 units), leaving out the drawings of
:data:`DRAWINGS`: 32 photos in Debian's opencv-doc 4.6. Held out: photos are grouped
so that near-duplicates (stereo pairs ``aloeL``/``aloeR``, ``left``/``right``,
``leuvenA``/``leuvenB``, frames ``rubberwhale1``/``2``, ...) stay on one side;
every ``holdout_every``-th group in sorted order (from the ``holdout_every -
1``-th) is the test split: board, graf1, graf3, licenseplate_motion, smarties
and text_motion (6 photos; 26 train).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from ssljax.data.dataset import ArrayDataset, DatasetNotAvailableError

__all__ = [
    "DRAWINGS",
    "OPENCV_PHOTOS",
    "PHOTOS_DIR",
    "find_photos",
    "load_photos",
    "photo_group",
    "random_photo_crops",
    "read_photo",
    "split_photos",
]

#: Where Debian's ``opencv-doc`` installs its sample images.
PHOTOS_DIR = "/usr/share/doc/opencv-doc/examples/data"
#: The dataset name of these crops (``config.dataset``).
OPENCV_PHOTOS = "opencv_photos"

_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Names of different scenes' photos that show the same scene (stereo pairs).
_GROUP_ALIASES = {"right": "left"}
#: Groups of ``opencv-doc`` that are drawings, not photos (pic1-6: shapes for
#: the contour demos, ml.png: a cartoon, WindowsLogo.jpg: a logo).
DRAWINGS = ("pic", "ml", "windowslogo")


def _missing_message(why: str) -> str:
  return (f"no colour photos for colorization: {why}. On Debian/Ubuntu: "
          "`apt-get install opencv-doc` (it installs sample photos under "
          f"{PHOTOS_DIR}); or pass data_dir= a folder of colour .jpg/.png "
          "photos. With internet, CIFAR-10 through TFDS "
          "(ssljax.data.load('cifar10', 'train')) is the usual alternative.")


def _pil_image():
  """``PIL.Image`` (Pillow, the ``[data]`` extra), or an ImportError that
  says how to install it."""
  try:
    from PIL import Image  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading photo files needs Pillow: "
                      "pip install 'ssljax[data]'") from e
  return Image


def read_photo(path: str) -> np.ndarray:
  """The pixels of an image file as uint8 ``[H, W, C]`` in the file's own
  mode (``C = 3`` for RGB, 1 for grayscale, 4 for RGBA; palette images are
  expanded to RGB)."""
  Image = _pil_image()  # pylint: disable=invalid-name
  with Image.open(path) as im:
    if im.mode == "P":
      im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode not in ("RGB", "RGBA", "L", "LA"):
      im = im.convert("RGB")
    a = np.asarray(im, dtype=np.uint8)
  return a[..., None] if a.ndim == 2 else a


def _colorfulness(image: np.ndarray) -> float:
  x = image.astype(np.float32)
  return float(np.abs(x - x.mean(-1, keepdims=True)).mean())


def find_photos(data_dir: str | None = None, *,
                min_colorfulness: float = 2.0,
                exclude_groups: Sequence[str] = DRAWINGS) -> list[str]:
  """Sorted paths of the 3-channel colour photos in ``data_dir`` (default
  :data:`PHOTOS_DIR`) whose :func:`photo_group` is not in
  ``exclude_groups``; raises :class:`DatasetNotAvailableError` naming
  ``apt-get install opencv-doc`` when there are none."""
  directory = data_dir or PHOTOS_DIR
  if not os.path.isdir(directory):
    raise DatasetNotAvailableError(
        _missing_message(f"{directory} does not exist"))
  out = []
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if (not name.lower().endswith(_EXTENSIONS) or not os.path.isfile(path)
        or photo_group(path) in exclude_groups):
      continue
    Image = _pil_image()  # pylint: disable=invalid-name
    try:
      with Image.open(path) as im:
        if im.mode != "RGB":
          continue
    except OSError:
      continue
    if _colorfulness(read_photo(path)) >= min_colorfulness:
      out.append(path)
  if not out:
    raise DatasetNotAvailableError(
        _missing_message(f"{directory} holds no 3-channel colour "
                         ".jpg/.png photos"))
  return out


def photo_group(path: str) -> str:
  """The group of a photo: its lower-cased file stem up to the first ``_``,
  without a trailing number or a trailing single capital (``aloeL`` ->
  ``aloe``, ``rubberwhale2`` -> ``rubberwhale``, ``ela_original`` -> ``ela``),
  with stereo partners merged (``right`` -> ``left``)."""
  stem = os.path.splitext(os.path.basename(path))[0].split("_")[0]
  stem = re.sub(r"\d+$", "", stem)
  stem = re.sub(r"(?<=[a-z])[A-Z]$", "", stem).lower() or stem.lower()
  return _GROUP_ALIASES.get(stem, stem)


def split_photos(paths: Sequence[str], *, holdout_every: int = 5
                 ) -> dict[str, list[str]]:
  """``{"train": [...], "test": [...]}``: the photos of every
  ``holdout_every``-th group (sorted by group name; groups ``holdout_every -
  1``, ``2 * holdout_every - 1``, ...) are the test split. ``holdout_every
  = 0`` puts everything in train."""
  if holdout_every < 0 or holdout_every == 1:
    raise ValueError(f"holdout_every must be 0 (no test split) or >= 2; got "
                     f"{holdout_every}.")
  groups = sorted({photo_group(p) for p in paths})
  test_groups = ({g for i, g in enumerate(groups)
                  if (i + 1) % holdout_every == 0} if holdout_every else set())
  split = {"train": [], "test": []}
  for p in sorted(paths):
    split["test" if photo_group(p) in test_groups else "train"].append(p)
  return split


def random_photo_crops(image: np.ndarray, num: int, *, size: int,
                       scale: tuple[float, float] = (0.1, 0.5),
                       rng: np.random.Generator) -> np.ndarray:
  """``num`` square crops of ``image [H, W, 3]`` resized to ``size x size``
  (uint8 ``[num, size, size, 3]``).

  Each crop's side is ``u * min(H, W)`` with ``u ~ U(scale)`` (at least
  ``size`` pixels when the photo allows, so crops are never upsampled more
  than needed), its position uniform; resizing uses PIL's area-averaging
  ``BOX`` filter (no aliasing when shrinking).
  """
  Image = _pil_image()  # pylint: disable=invalid-name
  lo, hi = scale
  if not 0 < lo <= hi <= 1:
    raise ValueError(f"scale must satisfy 0 < low <= high <= 1; got {scale}.")
  h, w = image.shape[:2]
  short = min(h, w)
  pil = Image.fromarray(image)
  out = np.empty((num, size, size, 3), np.uint8)
  for i in range(num):
    side = int(round(rng.uniform(lo, hi) * short))
    side = max(min(short, max(side, size)), 1)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = pil.resize((size, size), Image.Resampling.BOX,
                      box=(left, top, left + side, top + side))
    out[i] = np.asarray(crop, np.uint8)
  return out


def load_photos(split: str = "train", *, data_dir: str | None = None,
                size: int = 32, crops_per_photo: int = 256,
                scale: tuple[float, float] = (0.1, 0.5), seed: int = 0,
                holdout_every: int = 5, min_colorfulness: float = 2.0,
                exclude_groups: Sequence[str] = DRAWINGS) -> ArrayDataset:
  """Random square crops of the colour photos of one split.

  Args:
    split: ``"train"``, ``"test"`` (the held-out photos, see
      :func:`split_photos`) or ``"all"``.
    data_dir: a folder of photos (default :data:`PHOTOS_DIR`).
    size: side of the crops after resizing.
    crops_per_photo: crops taken from each photo.
    scale: range of a crop's side as a fraction of the photo's shorter side.
    seed: photo ``i`` of the split draws its crops from
      ``default_rng([seed, i])``.
    holdout_every, min_colorfulness, exclude_groups: see
      :func:`split_photos` and :func:`find_photos`.

  Returns:
    ``ArrayDataset`` with uint8 images ``[P * crops_per_photo, size, size,
    3]`` (photo by photo) and labels = the photo's index in the split
    (``num_classes`` = number of photos). Its ``name`` lists the photos.
  """
  if split not in ("train", "test", "all"):
    raise ValueError(f"split must be 'train', 'test' or 'all'; got {split!r}.")
  if size < 1 or crops_per_photo < 1:
    raise ValueError(f"size and crops_per_photo must be >= 1; got {size} and "
                     f"{crops_per_photo}.")
  paths = find_photos(data_dir, min_colorfulness=min_colorfulness,
                      exclude_groups=exclude_groups)
  chosen = (sorted(paths) if split == "all" else
            split_photos(paths, holdout_every=holdout_every)[split])
  if not chosen:
    raise DatasetNotAvailableError(_missing_message(
        f"the {split!r} split is empty ({len(paths)} "
        f"photos, holdout_every={holdout_every})"))
  images, labels = [], []
  for i, path in enumerate(chosen):
    rng = np.random.default_rng([seed, i])
    images.append(random_photo_crops(read_photo(path)[..., :3],
                                     crops_per_photo, size=size, scale=scale,
                                     rng=rng))
    labels.append(np.full(crops_per_photo, i, np.int32))
  names = ",".join(os.path.basename(p) for p in chosen)
  return ArrayDataset(np.concatenate(images), np.concatenate(labels),
                      num_classes=len(chosen),
                      name=f"{OPENCV_PHOTOS}:{split}[{names}]")
