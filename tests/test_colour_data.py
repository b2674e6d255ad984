"""The ``colour_crops`` dataset (``ssljax.data.colour``): every colour source
of the machine (opencv-doc's photos and videos, scikit-image's colour
images), held out by source.

The tests on the real sources skip when Debian's ``opencv-doc`` is missing;
scikit-image is a test dependency (``ssljax[test]``), so it is required.
"""

import collections
import hashlib
import itertools
import os
import sys

import numpy as np
import pytest
from PIL import Image

import ssljax.data
from ssljax.data import DatasetNotAvailableError
from ssljax.data.colour import (COLOUR_CROPS, SPLITS, ColourCrops,
                                colour_source_names, colour_sources,
                                iter_video_frames, load_colour_crops,
                                random_colour_crops, read_colour_image,
                                source_frames, split_colour_sources)
from ssljax.data.photos import PHOTOS_DIR, find_photos, split_photos
from ssljax.data.video import read_video

_HAVE_OPENCV_DOC = os.path.isfile(os.path.join(PHOTOS_DIR, "vtest.avi"))
needs_opencv_doc = pytest.mark.skipif(
    not _HAVE_OPENCV_DOC,
    reason=f"Debian opencv-doc is not installed ({PHOTOS_DIR}/vtest.avi "
    "missing): apt-get install opencv-doc")

#: Small crops for speed; a video still gives one crop per frame.
SMALL = dict(size=16, crops_per_source=8, seed=0)


@pytest.fixture(scope="module")
def sources():
  return colour_sources()


@pytest.fixture(scope="module")
def splits(sources):
  return split_colour_sources(sources)


@pytest.fixture(scope="module")
def small(splits):
  del splits                                       # (fail early, not here)
  return {split: load_colour_crops(split, **SMALL) for split in SPLITS}


def _file_or_pixel_hash(source) -> str:
  """SHA-256 of the source's file (photos, videos, scikit-image files) and
  of its decoded pixels for still images."""
  h = hashlib.sha256()
  if source.path:
    with open(source.path, "rb") as f:
      h.update(f.read())
  if source.kind != "video":
    h.update(read_colour_image(source).tobytes())
  return h.hexdigest()


def _thumbnails(source, every: int = 10) -> list[np.ndarray]:
  frames = (itertools.islice(source_frames(source), 0, None, every)
            if source.kind == "video" else source_frames(source))
  return [np.asarray(Image.fromarray(f).resize((16, 16), Image.Resampling.BOX),
                     np.float32) for f in frames]


@needs_opencv_doc
def test_sources_by_kind_and_groups(sources):
  names = [s.name for s in sources]
  assert names == sorted(names) and len(set(names)) == len(names)
  kinds = collections.Counter(s.kind for s in sources)
  assert kinds["photo"] == len(find_photos()) >= 20
  assert kinds["skimage"] >= 5 and kinds["video"] >= 3
  by_name = {s.name: s for s in sources}
  for name in ("video:vtest.avi", "video:Megamind.avi", "video:tree.avi",
               "skimage:astronaut", "photo:baboon.jpg"):
    assert name in by_name, name
  same = lambda *ns: len({by_name[n].group for n in ns if n in by_name}) == 1
  assert same("video:Megamind.avi", "video:Megamind_bugy.avi")
  assert same("skimage:motorcycle_left", "skimage:motorcycle_right")
  assert same("photo:aloeL.jpg", "photo:aloeR.jpg")
  assert same("photo:left.jpg", "photo:right.jpg")
  assert "skimage:cat" not in by_name            # an alias of chelsea
  for s in sources:                             # all 3-channel colour
    if s.kind != "video":
      assert read_colour_image(s).shape[-1] == 3


@needs_opencv_doc
def test_split_is_by_group_and_kind(sources, splits):
  assert sorted(itertools.chain(*splits.values())) == sources
  for a, b in itertools.combinations(SPLITS, 2):
    assert not {s.name for s in splits[a]} & {s.name for s in splits[b]}
    assert not {s.group for s in splits[a]} & {s.group for s in splits[b]}
  kinds = {k: collections.Counter(s.kind for s in v) for k, v in splits.items()}
  assert kinds["train"]["video"] >= 1
  assert kinds["validation"]["video"] + kinds["test"]["video"] >= 1
  assert "video:tree.avi" in {s.name for s in splits["test"]}
  for split in SPLITS:
    assert kinds[split]["photo"] >= 1 and kinds[split]["skimage"] >= 1
  # The test photos are opencv_photos' test photos (no pre-training on them).
  assert [s.path for s in splits["test"] if s.kind == "photo"] == split_photos(
      find_photos())["test"]
  assert split_colour_sources(list(reversed(sources))) == splits


@needs_opencv_doc
def test_no_held_out_file_or_pixels_in_train(splits, small):
  hashes = {k: {_file_or_pixel_hash(s) for s in v} for k, v in splits.items()}
  for a, b in itertools.combinations(SPLITS, 2):
    assert not hashes[a] & hashes[b], (a, b)
  # No near-duplicate (16x16 thumbnails; every 10th video frame) across splits:
  # the closest different-group pair here is ~19 grey levels apart, stereo
  # pairs and re-encodings < 18, which share a group anyway.
  thumbs = {s.name: _thumbnails(s) for v in splits.values() for s in v}
  for a, b in itertools.combinations(SPLITS, 2):
    for sa, sb in itertools.product(splits[a], splits[b]):
      d = min(float(np.abs(x - y).mean())
              for x in thumbs[sa.name] for y in thumbs[sb.name])
      assert d > 10, (sa.name, sb.name, d)
  # No crop of a held-out split is byte-equal to a training crop.
  train = {c.tobytes() for c in small["train"].images}
  for split in ("validation", "test"):
    assert not any(c.tobytes() in train for c in small[split].images)


@needs_opencv_doc
def test_every_frame_of_every_video_is_used(splits, small):
  for split in SPLITS:
    ds = small[split]
    for i, name in enumerate(ds.source_names):
      if not name.startswith("video:"):
        assert (ds.frame_ids[ds.source_ids == i] == -1).all()
        continue
      source = next(s for s in splits[split] if s.name == name)
      frames_in_file = len(read_video(source.path))    # video.py's reader
      used = ds.frame_ids[ds.source_ids == i]
      assert sorted(set(used.tolist())) == list(range(frames_in_file)), name
      assert len(used) == max(SMALL["crops_per_source"], frames_in_file)
  # The streaming reader gives read_video's frames, bit for bit.
  tree = os.path.join(PHOTOS_DIR, "tree.avi")
  streamed = np.stack(list(iter_video_frames(tree)))
  np.testing.assert_array_equal(streamed, read_video(tree))
  assert len(streamed) == 68   # its index's 376 empty repeats decode to nothing


@needs_opencv_doc
def test_shapes_labels_and_names(splits, small):
  for split in SPLITS:
    ds = small[split]
    assert isinstance(ds, ColourCrops)
    assert isinstance(ds, ssljax.data.ArrayDataset)
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (16, 16, 3)
    assert ds.labels.dtype == np.int32 and len(ds.labels) == len(ds.images)
    names = colour_source_names(split)
    assert ds.sources == names == ds.source_names
    assert names == tuple(s.name for s in splits[split])
    assert ds.num_classes == len(names)
    assert set(ds.labels.tolist()) == set(range(len(names)))
    np.testing.assert_array_equal(ds.labels, ds.source_ids)
    still = sum(s.kind != "video" for s in splits[split])
    videos = len(ds) - still * SMALL["crops_per_source"]
    assert videos == sum((ds.frame_ids >= 0) & (ds.source_ids >= 0))
    assert ds.name.startswith(f"{COLOUR_CROPS}:{split}[")
  grouped = load_colour_crops("train", label_by="group", frames_per_video=3,
                              **SMALL)
  groups = colour_source_names("train", label_by="group")
  assert grouped.sources == groups and grouped.num_classes == len(groups)
  mega = [grouped.labels[grouped.source_ids == grouped.source_names.index(n)]
          for n in ("video:Megamind.avi", "video:Megamind_bugy.avi")]
  assert set(mega[0].tolist()) == set(mega[1].tolist()) == {
      groups.index("video:megamind")}


@needs_opencv_doc
def test_deterministic_and_seeded(small):
  again = load_colour_crops("test", **SMALL)
  fingerprint = ssljax.data.fingerprint
  assert fingerprint(again) == fingerprint(small["test"])
  np.testing.assert_array_equal(again.frame_ids, small["test"].frame_ids)
  other = load_colour_crops("test", **{**SMALL, "seed": 1})
  assert not np.array_equal(other.images, small["test"].images)
  # A source's crops depend on the seed and its name, not on its split.
  everything = load_colour_crops("all", frames_per_video=2, **SMALL)
  for i, name in enumerate(small["test"].source_names):
    if name.startswith("video:"):
      continue
    j = everything.source_names.index(name)
    np.testing.assert_array_equal(
        small["test"].images[small["test"].source_ids == i],
        everything.images[everything.source_ids == j])
  few = load_colour_crops("test", frames_per_video=5, **SMALL)
  tree = few.source_names.index("video:tree.avi")
  assert sorted(set(few.frame_ids[few.source_ids == tree].tolist())) == [
      0, 17, 34, 50, 67]


def test_crops_flip_half_the_time():
  image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)
  plain = random_colour_crops(image, 400, size=8, flip=False,
                              rng=np.random.default_rng(5))
  flipped = random_colour_crops(image, 400, size=8,
                                rng=np.random.default_rng(5))
  same = np.all(plain == flipped, axis=(1, 2, 3))
  mirrored = np.all(plain[:, :, ::-1] == flipped, axis=(1, 2, 3))
  assert np.all(same | mirrored)
  assert 0.35 < float(np.mean(mirrored & ~same)) < 0.65


@needs_opencv_doc
def test_registry_and_config_path():
  ds = ssljax.data.load(COLOUR_CROPS, "test")
  assert isinstance(ds, ColourCrops) and ds.images.shape[1:] == (32, 32, 3)
  assert ds.num_classes == len(colour_source_names("test"))
  assert len(ds) == 1024 * ds.num_classes       # tree.avi: 68 frames < 1024
  assert ssljax.data.info(COLOUR_CROPS).image_shape == (32, 32, 3)
  # pylint: disable=import-outside-toplevel
  import ml_collections
  from ssljax.train.start import load_dataset
  config = ml_collections.ConfigDict(dict(dataset=COLOUR_CROPS, data_dir="",
                                          data_source="auto"))
  via_config = load_dataset(config, "test")
  assert ssljax.data.fingerprint(via_config) == ssljax.data.fingerprint(ds)
  # Training and validation are the dataset's own source splits (whole
  # sources), not the last 10% of the training crops: training keeps its
  # videos.
  for split in ("train", "validation"):
    names = set(load_dataset(config, split).sources)
    assert names == set(colour_source_names(split)), split
  assert any(n.endswith(".avi") for n in colour_source_names("train"))
  with pytest.raises(ValueError, match="separately"):
    load_dataset(config, "train_all")
  with pytest.raises(ValueError, match="no split"):
    ssljax.data.load(COLOUR_CROPS, "train[:10%]")
  with pytest.raises(ValueError, match="not TFDS"):
    ssljax.data.load(COLOUR_CROPS, "test", source="tfds")


def _write_video(path, num, h=24, w=32, colour=(200, 40, 30)):
  cv2 = pytest.importorskip("cv2")
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (w, h))
  assert writer.isOpened()
  for t in range(num):
    f = np.zeros((h, w, 3), np.uint8)
    f[...] = colour
    f[4:12, 2 * t % w:2 * t % w + 8] = (30, 200, 40)     # a green block moves
    writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
  writer.release()


def test_a_folder_of_photos_and_videos(tmp_path):
  """The general rules on another folder: a kind with >= 2 groups and none
  held out by position gives its last group to test; every frame is used."""
  rng = np.random.default_rng(0)
  for name in ("apple.png", "zebra.png"):
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), np.uint8)).save(
        tmp_path / name)
  _write_video(tmp_path / "alpha.avi", 7)
  _write_video(tmp_path / "beta.avi", 3, colour=(20, 60, 220))
  found = colour_sources(str(tmp_path), include_skimage=False)
  assert [s.name for s in found] == ["photo:apple.png", "photo:zebra.png",
                                     "video:alpha.avi", "video:beta.avi"]
  names = lambda split: colour_source_names(split, data_dir=str(tmp_path),
                                            include_skimage=False)
  assert names("train") == ("photo:apple.png", "video:alpha.avi")
  assert names("test") == ("photo:zebra.png", "video:beta.avi")
  kw = dict(data_dir=str(tmp_path), include_skimage=False, size=8)
  train = load_colour_crops("train", crops_per_source=4, **kw)
  # apple: 4 crops; alpha: max(4, 7 frames) = 7, one per frame.
  assert len(train) == 11 and train.num_classes == 2
  np.testing.assert_array_equal(train.frame_ids, [-1] * 4 + list(range(7)))
  test = load_colour_crops("test", crops_per_source=5, crops_per_frame=1, **kw)
  # beta: max(5, 3) = 5 crops over 3 frames: 1, 2, 2 (every frame used).
  np.testing.assert_array_equal(test.frame_ids, [-1] * 5 + [0, 1, 1, 2, 2])
  with pytest.raises(DatasetNotAvailableError, match="split is empty"):
    load_colour_crops("validation", **kw)


def test_missing_sources_name_the_packages(tmp_path, monkeypatch):
  with pytest.raises(DatasetNotAvailableError,
                     match="apt-get install opencv-doc.*scikit-image"):
    ssljax.data.load(COLOUR_CROPS, "train", data_dir=str(tmp_path / "nowhere"))
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(
      tmp_path / "apple.png")
  with pytest.raises(DatasetNotAvailableError,
                     match="no video files.*apt-get install opencv-doc"):
    colour_sources(str(tmp_path))                # photos, but no videos
  _write_video(tmp_path / "clip.avi", 3)
  assert len(colour_sources(str(tmp_path), include_skimage=False)) == 2
  monkeypatch.setitem(sys.modules, "skimage", None)
  monkeypatch.setitem(sys.modules, "skimage.data", None)
  with pytest.raises(DatasetNotAvailableError,
                     match="scikit-image is not installed"):
    colour_sources(str(tmp_path))
