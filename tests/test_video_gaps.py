"""Video colorization made non-trivial (issue 25): training clips at random
gaps held out by source video, the copy-the-reference baseline by gap,
colorization with a local attention window, the moving-object tracking
benchmark (speed, J by speed) and the real-motion pseudo ground truth."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.augment import rgb_to_lab
from ssljax.data.video import (TRAIN_GAP_RANGE, clip_dataset, load_clips,
                               random_gap_indices, split_videos)
from ssljax.eval.video import (SPEED_BINS, VideoEvalOptions,
                               background_masks, bounce_path,
                               copy_baseline_by_gap, ellipse_alpha,
                               follow_components, j_by_speed,
                               make_real_motion_sequences,
                               make_tracking_sequences, tracking_iou)
from ssljax.methods.video_colorization import attend_dense, window_mask

# ----------------------------------------------------------------------------
# training clips at random gaps, held out by source video
# ----------------------------------------------------------------------------


def _valued(n, start):
  """Frames whose value is ``start + index`` (which video, which frame)."""
  return (start + np.arange(n, dtype=np.int64))[:, None, None, None] * np.ones(
      (1, 2, 2, 3), np.int64)


def test_gap_sampling_respects_the_range_and_the_held_out_split():
  idx = random_gap_indices(60, gap_range=(8, 20), num_refs=3, stride=2,
                           clips_per_target=4, rng=np.random.default_rng(0))
  t, g = idx[:, -1], idx[:, -1] - idx[:, -2]
  assert idx.shape[1] == 4 and g.min() >= 8 and g.max() <= 20
  np.testing.assert_array_equal(np.diff(idx[:, :-1], axis=1), 2)
  assert idx.min() >= 0 and t.max() == 59
  assert t.min() == 2 * 2 + 8                    # first target with gap 8
  assert len(np.unique(idx, axis=0)) == len(idx)  # no duplicate clip
  assert set(np.unique(g)) == set(range(8, 21))   # the whole range is drawn
  for tt in np.unique(t):                         # <= 4 gaps per target
    assert 1 <= (t == tt).sum() <= 4
  # a video too short for the lowest gap has no clip
  assert random_gap_indices(12, gap_range=(8, 20), rng=np.random.default_rng(
      0)).shape == (0, 4)
  with pytest.raises(ValueError, match="gap_range"):
    random_gap_indices(60, gap_range=(9, 8), rng=np.random.default_rng(0))

  # held out by source: frame values encode (video, index)
  videos = {"a.avi": _valued(50, 0), "b.avi": _valued(40, 1000),
            "c.avi": _valued(30, 2000)}
  splits = split_videos(videos, holdout=("c.avi",), test_fraction=0.0)
  assert sorted(splits.train) == ["a.avi", "b.avi"]
  assert sorted(splits.test) == ["c.avi"]
  as_uint8 = lambda v: (v % 256).astype(np.uint8)
  ds = clip_dataset({k: as_uint8(v) for k, v in splits.train.items()},
                    gap_range=(8, 16), clips_per_target=3, seed=1)
  assert ds.gaps.min() >= 8 and ds.gaps.max() <= 16
  for i in range(len(ds)):                        # frames of one video only
    name = sorted(splits.train)[ds.video_ids[i]]
    values = splits.train[name][ds.frame_ids[i], 0, 0, 0]
    assert (values // 1000 == {"a.avi": 0, "b.avi": 1}[name]).all()
  # every frame of every training video is in some clip
  for v, name in enumerate(sorted(splits.train)):
    used = np.unique(ds.frame_ids[ds.video_ids == v])
    np.testing.assert_array_equal(used, np.arange(len(splits.train[name])))
  # deterministic, and a video's clips do not depend on the other videos
  again = clip_dataset({"a.avi": as_uint8(splits.train["a.avi"])},
                       gap_range=(8, 16), clips_per_target=3, seed=1)
  np.testing.assert_array_equal(again.frame_ids, ds.frame_ids[ds.video_ids == 0])
  # the shipped dataset: tree.avi held out whole, gaps 8-32
  sig = inspect.signature(load_clips).parameters
  assert sig["test_fraction"].default == 0.0
  assert sig["gap_range"].default == TRAIN_GAP_RANGE == (8, 32)
  assert "tree.avi" in sig["holdout"].default


# ----------------------------------------------------------------------------
# the copy-the-reference baseline by gap, by hand
# ----------------------------------------------------------------------------


def test_copy_baseline_by_gap_equals_a_hand_count():
  """Uniform frames, red for frames 0-2, 6-8 and green for 3-5, 9-11; one
  reference, 2x2 cells. Copying is right when frame t - gap has t's colour:
  targets 3..11 (all references at gap 3)."""
  red, green = np.array([200, 30, 30]), np.array([30, 180, 40])
  colours = [red if (t // 3) % 2 == 0 else green for t in range(12)]
  frames = np.stack([np.broadcast_to(c, (8, 8, 3)) for c in colours]
                    ).astype(np.uint8)
  lab = np.asarray(rgb_to_lab(jnp.asarray(np.stack([red, green])[None] / 255.0,
                                          jnp.float32)))[0, :, 1:]  # [2, ab]
  out = copy_baseline_by_gap({"v.avi": frames}, (1, 2, 3), centroids=lab,
                             mean_ab=np.zeros(2, np.float32), num_refs=1,
                             stride=1, grid_stride=4)
  table = out["pooled"]
  # gap 1: (2,3) no, (3,4) yes, (4,5) yes, (5,6) no, (6,7) yes, (7,8) yes,
  # (8,9) no, (9,10) yes, (10,11) yes; gap 2: 3 of 9; gap 3: none
  want = {"1": 6 / 9, "2": 3 / 9, "3": 0.0}
  for gap, acc in want.items():
    assert table[gap]["num_clips"] == 9
    np.testing.assert_allclose(table[gap]["copy_reference"]["cluster_acc"],
                               acc, atol=1e-6)
    # wrong frames miss by the red-green ab distance everywhere
    np.testing.assert_allclose(table[gap]["copy_reference"]["ab_error"],
                               (1 - acc) * np.linalg.norm(lab[0] - lab[1]),
                               rtol=1e-4)
    assert table[gap]["quantization_floor"]["cluster_acc"] == 1.0
  assert out["per_video"]["v.avi"]["2"]["copy_reference"]["cluster_acc"] == (
      pytest.approx(3 / 9))
  assert "verdict" not in out                     # no network, no verdict


# ----------------------------------------------------------------------------
# colorization with a local window
# ----------------------------------------------------------------------------


def test_local_window_attention():
  m = np.asarray(window_mask(2, 3, 1, num_refs=2))
  assert m.shape == (6, 12)
  np.testing.assert_array_equal(m[:, :6], m[:, 6:])
  # cell (0, 0) sees (0, 0), (0, 1), (1, 0), (1, 1); not column 2
  np.testing.assert_array_equal(m[0, :6], [1, 1, 0, 1, 1, 0])
  rng = np.random.default_rng(0)
  f_ref = rng.normal(size=(1, 12, 4)).astype(np.float32)
  f_tgt = rng.normal(size=(1, 6, 4)).astype(np.float32)
  lab = np.asarray(jax.nn.one_hot(rng.integers(0, 3, (1, 12)), 3))
  fn = jax.jit(lambda a, b, c, mask: attend_dense(a, b, c, mask=mask))
  # a window covering the frame is the full attention
  np.testing.assert_allclose(
      fn(f_ref, lab, f_tgt, window_mask(2, 3, 5, num_refs=2)),
      attend_dense(f_ref, lab, f_tgt), atol=1e-6)
  # radius 0: each target cell mixes only its own place in the references
  y = np.asarray(fn(f_ref, lab, f_tgt, window_mask(2, 3, 0, num_refs=2)))
  s = np.einsum("md,nd->mn", f_tgt[0], f_ref[0])
  for j in range(6):
    e = np.exp(s[j, [j, 6 + j]] - s[j, [j, 6 + j]].max())
    np.testing.assert_allclose(y[0, j], (e / e.sum()) @ lab[0, [j, 6 + j]],
                               atol=1e-5)


# ----------------------------------------------------------------------------
# tracking: objects moving at set speeds, J by speed
# ----------------------------------------------------------------------------


def _centroids(alpha):
  yy, xx = np.mgrid[:alpha.shape[1], :alpha.shape[2]] + 0.5
  a = alpha.sum((1, 2))
  return np.stack([(alpha * yy).sum((1, 2)) / a,
                   (alpha * xx).sum((1, 2)) / a], -1)


def test_moving_objects_move_at_the_requested_speed(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  photo = tmp_path / "photo.png"
  Image.fromarray(np.random.default_rng(1).integers(
      0, 256, (40, 48, 3)).astype(np.uint8)).save(photo)
  video = np.random.default_rng(2).integers(0, 256, (10, 48, 64, 3)
                                            ).astype(np.uint8)
  speeds = (("static", 0.0), ("slow", 1.0), ("fast", 3.0))
  o = VideoEvalOptions(speeds=speeds, sequences_per_speed=2, length=8,
                       object_size=(10, 12), seed=3)
  seqs = make_tracking_sequences({"v.avi": video}, o, photos=[str(photo)])
  assert [s.bin for s in seqs] == ["static"] * 2 + ["slow"] * 2 + ["fast"] * 2
  for s in seqs:
    assert s.frames.shape == (8, 48, 64, 3) and s.alpha.shape == (8, 48, 64)
    step = np.linalg.norm(np.diff(_centroids(s.alpha), axis=0), axis=1)
    # the speed (to the soft edge's sampling), less only across a bounce
    assert step.max() <= s.speed + 0.05, (s.name, step)
    assert np.median(np.abs(step - s.speed)) < 0.05, (s.name, step)
    # the mask's area hardly changes (sub-pixel rendering, inside the frame)
    np.testing.assert_allclose(s.alpha.sum((1, 2)), s.alpha[0].sum(), rtol=0.02)
    # outside the object the frames are the video's
    t0 = int(s.name.split("@")[1].split("+")[0])
    out = s.alpha == 0
    np.testing.assert_array_equal(s.frames[out], video[t0:t0 + 8][out])
  # the path: straight, reflected off the box
  p = bounce_path([1.0, 5.0], [1.5, -2.0], 5, (0.0, 0.0), (3.0, 10.0))
  np.testing.assert_allclose(p, [[1, 5], [2.5, 3], [2, 1], [0.5, 1], [1, 3]])
  a = ellipse_alpha((8, 8), (4.0, 4.0), (2.0, 3.0))
  assert a[4, 4] == 1 and a[0, 0] == 0 and a.shape == (8, 8)
  assert dict(SPEED_BINS)["static"] == 0 and dict(SPEED_BINS)["fast"] > 0


def test_j_by_speed_by_hand():
  # IoU: 2 shared pixels of 6 in the union
  pred = np.zeros((2, 4), bool)
  gt = np.zeros((2, 4), bool)
  pred[0, :4] = True
  gt[:, 2:4] = True
  assert tracking_iou(pred, gt) == pytest.approx(2 / 6)
  assert tracking_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
  # 3 sequences of 3 frames: static, slow, slow
  j = {"trained/topk_radius_prev": np.array([[1, .8, .6], [1, .5, .3],
                                             [1, .7, .5]]),
       "copy_first_mask": np.array([[1, 1, 1], [1, .4, .1], [1, .3, .1]]),
       "oracle_quarter_resolution": np.ones((3, 3))}
  out = j_by_speed(j, ["static", "slow", "slow"], [0, 1, 1],
                   main="trained/topk_radius_prev")
  slow = out["by_speed"]["slow"]
  assert slow["num_sequences"] == 2 and slow["speed_px_per_frame"] == 1
  t = slow["trained/topk_radius_prev"]
  assert t["J_mean_frames_1_to_end"] == pytest.approx((.5 + .3 + .7 + .5) / 4)
  assert t["J_last_frame"] == pytest.approx(.4)
  assert t["J_over_time"] == [1.0, 0.6, 0.4]
  d = slow["trained/topk_radius_prev_minus_copy_first_mask"]
  assert d["mean"] == pytest.approx(((.4 - .25) + (.6 - .2)) / 2)
  assert d["share_of_clips_above_zero"] == 1.0
  assert out["moving"]["num_sequences"] == 2          # the static one is out
  v = out["verdict"]
  assert v["J_minus_copy_on_moving"] == pytest.approx(0.5 - 0.225)
  assert v["beats_copy_by_0.1_on_moving"]
  assert v["J_minus_copy_by_speed"]["static"] == pytest.approx(0.7 - 1.0)


def test_follow_components_keeps_the_first_person_only():
  pytest.importorskip("cv2")
  masks = np.zeros((3, 10, 20), bool)
  for t in range(3):
    masks[t, 2:6, 2 + t:4 + t] = True           # walks right, 1 px a frame
  masks[2, 2:6, 15:17] = True                   # someone enters at t = 2
  out = follow_components(masks, masks[0])
  np.testing.assert_array_equal(out[:2], masks[:2])
  assert out[2, :, 15:].sum() == 0 and out[2, 2:6, 4:6].all()


def test_real_motion_pseudo_ground_truth_from_background_subtraction():
  """A static textured background and a dark 8x6 block walking 1 px a
  frame: background subtraction finds the block (corners rounded by the
  opening), the sequence (every 2nd frame) follows it and measures 2 px per
  sequence frame."""
  pytest.importorskip("cv2")
  rng = np.random.default_rng(0)
  bg = rng.integers(120, 180, (1, 24, 48, 3)).astype(np.uint8)
  frames = np.repeat(bg, 20, 0)
  truth = np.zeros((20, 24, 48), bool)
  for t in range(20):
    truth[t, 8:16, 6 + t:12 + t] = True
  frames[truth] = 10
  masks = background_masks(frames)
  assert (tracking_iou(masks, truth) > 0.8).all()
  assert not (masks & ~truth).any()                  # nothing outside it
  seqs = make_real_motion_sequences(frames, masks, num=2, length=5,
                                    frame_stride=2, seed=0)
  assert len(seqs) == 2
  for q in seqs:
    t0 = int(q.name.split("=")[1].split(":")[0])
    np.testing.assert_array_equal(q.alpha > 0.5, masks[t0:t0 + 9:2])
    np.testing.assert_array_equal(q.frames, frames[t0:t0 + 9:2])
    assert q.bin == "real_motion" and q.speed == pytest.approx(2.0)
