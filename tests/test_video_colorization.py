"""Video colorization (Vondrick et al. 2018): attention, blockwise = dense,
label propagation, the train step, colour clusters, the config, the clip
dataset and the video loader, training through the one loop (resume), and
the evaluation."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssljax.augment import rgb_to_lab
from ssljax.config import ConfigError, ConfigReader
from ssljax.data import DatasetNotAvailableError, batches
from ssljax.data.sources import KNOWN_DATASETS
from ssljax.data.video import (VIDEOS_DIR, ClipDataset, all_clips,
                               clip_batches, clip_dataset, clip_indices,
                               clip_span, find_videos, load_clips, load_davis,
                               load_opencv_videos, load_video, read_video,
                               sample_clips, split_videos)
from ssljax.eval.video import (VideoEvalOptions, colorization_baseline_scores,
                               eval_colorization, eval_tracking,
                               evaluate_video_colorization,
                               make_tracking_sequences, tracking_iou)
from ssljax.losses import video_colorization_loss
from ssljax.methods import DataSpec, TrainState, get_method
from ssljax.methods.video_colorization import (VideoColorization,
                                               attend_blocked, attend_dense,
                                               attention_weights,
                                               color_cluster_targets,
                                               fit_color_clusters,
                                               propagate_labels,
                                               standin_centroids)
from ssljax.models import EmbeddingNet
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import load_config_file
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems

# ----------------------------------------------------------------------------
# attention
# ----------------------------------------------------------------------------


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_attention_rows_over_reference_pixels_sum_to_one():
  rng = np.random.default_rng(0)
  f_ref = rng.normal(size=(2, 30, 8)).astype(np.float32)
  f_tgt = rng.normal(size=(2, 10, 8)).astype(np.float32)
  a = np.asarray(jax.jit(lambda r, t: attention_weights(r, t, temperature=0.5))(
      f_ref, f_tgt))
  assert a.shape == (2, 10, 30)                       # [B, M targets, N refs]
  np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
  # by hand: softmax over i of f_i . f_j / T
  s = np.einsum("bmd,bnd->bmn", f_tgt, f_ref).astype(np.float64) / 0.5
  e = np.exp(s - s.max(-1, keepdims=True))
  np.testing.assert_allclose(a, e / e.sum(-1, keepdims=True), atol=1e-5)
  # y_j = sum_i A_ij c_i is a distribution too
  c = jax.nn.one_hot(rng.integers(0, 16, (2, 30)), 16)
  y = np.asarray(jax.jit(attend_dense)(f_ref, c, f_tgt))
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def test_identical_frames_and_sharp_temperature_reproduce_reference_colors():
  rng = np.random.default_rng(1)
  f = _unit(rng.normal(size=(2, 40, 16))).astype(np.float32)
  clusters = rng.integers(0, 16, (2, 40))
  c = jax.nn.one_hot(clusters, 16)
  y = np.asarray(jax.jit(lambda f, c: attend_dense(f, c, f, temperature=0.01))(
      f, c))
  np.testing.assert_allclose(y, np.asarray(c), atol=1e-4)
  loss = video_colorization_loss(jnp.asarray(y), jnp.asarray(clusters))
  assert float(loss) < 1e-3


def test_blockwise_attention_equals_dense_values_and_gradients_under_jit():
  rng = np.random.default_rng(2)
  f_ref = rng.normal(size=(2, 3 * 13, 8)).astype(np.float32)
  f_tgt = rng.normal(size=(2, 13, 8)).astype(np.float32)
  targets = rng.integers(0, 6, (2, 13))
  c = np.asarray(jax.nn.one_hot(rng.integers(0, 6, (2, 39)), 6))

  def loss(attn, fr, ft):
    return video_colorization_loss(attn(fr, c, ft, temperature=0.7), targets)

  dense = jax.jit(jax.value_and_grad(
      lambda fr, ft: loss(attend_dense, fr, ft), argnums=(0, 1)))
  for block in (1, 5, 13):                          # 5: a padded last block
    blocked = jax.jit(jax.value_and_grad(lambda fr, ft: loss(
        lambda *a, **k: attend_blocked(*a, **k, block_size=block), fr, ft),
        argnums=(0, 1)))
    (v0, g0), (v1, g1) = dense(f_ref, f_tgt), blocked(f_ref, f_tgt)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)
    for a, b in zip(g1, g0):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    y0 = attend_dense(f_ref, c, f_tgt, temperature=0.7)
    y1 = jax.jit(lambda a, b, d: attend_blocked(a, b, d, temperature=0.7,
                                                block_size=block))(f_ref, c, f_tgt)
    np.testing.assert_allclose(y1, y0, atol=1e-6)


# ----------------------------------------------------------------------------
# propagation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    dict(num_prev=1),
    dict(num_prev=3, topk=5, radius=3),
    dict(num_prev=0, use_first=True, radius=None),      # frame 0 only
])
def test_propagate_recovers_a_known_integer_shift(options):
  """Hand-built embeddings: a random unit code per world position, so frame
  t's cell p holds the code of p - t * shift (a texture moving by shift per
  frame). Propagation must carry the mask along exactly."""
  h, w, d, t_len = 12, 14, 32, 4
  shift = np.array([1, 2])
  rng = np.random.default_rng(3)
  code = _unit(rng.normal(size=(h, w, d)))
  emb = np.stack([np.roll(code, tuple(t * shift), axis=(0, 1))
                  for t in range(t_len)]).astype(np.float32)
  mask = np.zeros((h, w), np.float32)
  mask[3:6, 2:6] = 1.0
  first = np.stack([1 - mask, mask], -1)
  fn = jax.jit(lambda e, l: propagate_labels(e, l, temperature=0.02, **options))
  out = np.asarray(fn(emb, first))
  assert out.shape == (t_len, h, w, 2)
  np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  for t in range(t_len):
    want = np.roll(mask, tuple(t * shift), axis=(0, 1))
    # cells whose content was in frame 0 (p - t * shift inside the frame;
    # new content entering at the border has no true match)
    seen = (yy >= t * shift[0]) & (xx >= t * shift[1])
    assert (want[~seen] == 0).all()
    np.testing.assert_allclose(out[t, ..., 1][seen], want[seen], atol=1e-3)
  # copying the first mask is wrong after the first frame
  assert np.abs(out[-1, ..., 1] - mask).max() > 0.5


# ----------------------------------------------------------------------------
# the method: a tiny network (quick to compile on CPU)
# ----------------------------------------------------------------------------

CENTROIDS = np.array([[0, 0], [40, 30], [-30, 20], [10, -40]], np.float32)


def _moving_clips(b=4, r1=3, side=16, seed=4):
  """Random colour blocks (4x4) sliding one block per frame."""
  rng = np.random.default_rng(seed)
  palette = np.array([[200, 40, 40], [40, 160, 60], [50, 60, 200],
                      [128, 128, 128], [230, 200, 40]], np.uint8)
  clips = np.empty((b, r1, side, side, 3), np.uint8)
  for i in range(b):
    world = palette[rng.integers(0, 5, (side // 4, side // 4 + r1))]
    world = world.repeat(4, 0).repeat(4, 1)
    for t in range(r1):
      clips[i, t] = world[:, 4 * t:4 * t + side]
  return clips


@pytest.fixture(scope="module")
def tiny():
  method = VideoColorization(
      model=EmbeddingNet(widths=(8, 16, 16), dilations=(), embed_dim=16,
                         groups=4),
      tx=optax.adam(3e-3), centroids=CENTROIDS, block_size=7,
      schedule=lambda s: 3e-3 + 0 * s)
  clips = _moving_clips()
  # jitted: op-by-op initializers compile one by one (slow on XLA:CPU)
  state = jax.jit(method.init, static_argnums=1)(jax.random.key(0),
                                                 clips.shape[1:])
  return method, state, clips


def test_train_step_is_pure_jitted_donates_state_and_lowers_the_loss(tiny):
  method, state, clips = tiny
  step = jax.jit(method.train_step, donate_argnums=0)
  key = jax.random.key(1)
  s0 = jax.tree.map(jnp.copy, state)
  leaves = jax.tree.leaves(s0)
  s1, m1 = step(s0, jnp.asarray(clips), key)
  assert all(x.is_deleted() for x in leaves)          # donated
  assert set(m1) == {"loss", "acc", "lr"} and int(s1.step) == 1
  # pure: the same state and batch give the same result
  again, m_again = step(jax.tree.map(jnp.copy, state), jnp.asarray(clips), key)
  np.testing.assert_array_equal(m_again["loss"], m1["loss"])
  jax.tree.map(np.testing.assert_array_equal, again.params, s1.params)
  # the loss equals an independent forward (dense attention, numpy CE)
  ev = jax.jit(lambda st, c: method.predict(st, c, temperature=1.0))
  first = ev(state, jnp.asarray(clips))
  probs = np.asarray(first["probs"])
  tgt = np.asarray(first["targets"])
  assert probs.shape == (4, 4, 4, 4) and tgt.shape == (4, 4, 4)
  want = -np.log(np.maximum(np.take_along_axis(
      probs, tgt[..., None], -1), 1e-6)).mean()
  loss0, _ = jax.jit(lambda s, c: method.loss(
      s.params, s.batch_stats, method_lab(c)))(state, clips)
  np.testing.assert_allclose(loss0, want, rtol=1e-4)
  losses = [float(m1["loss"])]
  for _ in range(15):
    s1, m = step(s1, jnp.asarray(clips), key)
    losses.append(float(m["loss"]))
  assert losses[-1] < losses[0] - 0.1, losses


def test_sharded_step_matches_single_device(tiny):
  method, state, _ = tiny
  clips = _moving_clips(b=8, seed=8)
  key = jax.random.key(2)
  step = jax.jit(method.train_step)
  single, m_single = step(state, jnp.asarray(clips), key)
  mesh = make_data_mesh()
  assert mesh.size == 8
  with jax.set_mesh(mesh):
    sharded, m_sharded = step(jax.device_put(state, replicated_sharding(mesh)),
                              jax.device_put(clips, data_sharding(mesh, 5)),
                              key)
  np.testing.assert_allclose(m_sharded["loss"], m_single["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               sharded.params, single.params)


def method_lab(clips):
  return rgb_to_lab(jnp.asarray(clips))


def test_predict_decode_and_propagate_shapes(tiny):
  method, state, clips = tiny
  out = jax.jit(method.predict)(state, jnp.asarray(clips))
  ab = method.decode_ab(out["probs"], clips.shape[2:4])
  assert ab.shape == (4, 16, 16, 2)
  ab_max = method.decode_ab(out["probs"], mode="argmax")
  assert {tuple(v) for v in np.asarray(ab_max).reshape(-1, 2).tolist()} <= {
      tuple(v) for v in CENTROIDS.tolist()}
  frames = clips[0]
  first = np.zeros((16, 16, 2), np.float32)
  first[..., 0] = 1
  first[4:12, 4:12] = [0, 1]
  labels = jax.jit(lambda s, f, l: method.propagate(
      s, f, l, topk=3, radius=1, num_prev=2))(state, jnp.asarray(frames), first)
  assert labels.shape == (3, 16, 16, 2)
  np.testing.assert_allclose(np.asarray(labels).sum(-1), 1.0, atol=1e-4)
  # bare params work too
  embed = jax.jit(method.embed)
  np.testing.assert_allclose(embed(state.params, jnp.asarray(frames)),
                             embed(state, jnp.asarray(frames)), atol=1e-6)


# ----------------------------------------------------------------------------
# colour clusters
# ----------------------------------------------------------------------------


def test_color_clusters_are_fitted_on_training_frames_only():
  rng = np.random.default_rng(5)
  # training frames: blues and grays; the held-out tail: pure red
  blue = np.zeros((30, 8, 8, 3), np.uint8)
  blue[..., 2] = rng.integers(100, 255, (30, 1, 1))
  blue[::2] = rng.integers(60, 200, (15, 1, 1, 1))
  red = np.zeros((10, 8, 8, 3), np.uint8)
  red[..., 0] = 220
  splits = split_videos({"a.avi": np.concatenate([blue, red])},
                        holdout=(), test_fraction=0.25, gap=0)
  assert len(splits.train["a.avi"]) == 30
  np.testing.assert_array_equal(splits.test["a.avi[30:]"], red)
  c = fit_color_clusters(list(splits.train.values()), num_clusters=4,
                         stride=4, seed=0)
  assert c.shape == (4, 2)
  red_ab = np.asarray(method_lab(red[:1, :1, :1]))[0, 0, 0, 1:]
  assert np.linalg.norm(c - red_ab, axis=1).min() > 50     # no red cluster
  # deterministic, and only the frames passed in matter
  np.testing.assert_array_equal(
      c, fit_color_clusters([splits.train["a.avi"]], num_clusters=4, stride=4))
  # targets: nearest centre of each 4x4 block's mean ab
  t = jax.jit(lambda x: color_cluster_targets(method_lab(x), c, (2, 2)))(blue[:2])
  assert t.shape == (2, 2, 2)


# ----------------------------------------------------------------------------
# videos
# ----------------------------------------------------------------------------


def _write_video(path, num=12, h=24, w=32):
  cv2 = pytest.importorskip("cv2")
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (w, h))
  assert writer.isOpened()
  frames = []
  for t in range(num):
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0] = 200                                      # red background
    f[4:12, 2 * t % w:2 * t % w + 8] = (30, 200, 40)     # a green block moves
    frames.append(f)
    writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
  writer.release()
  return np.stack(frames)


def test_synthetic_video_loads_resizes_and_caches(tmp_path, monkeypatch):
  want = _write_video(tmp_path / "clip.avi")
  got = read_video(str(tmp_path / "clip.avi"))
  assert got.shape == (12, 24, 32, 3) and got.dtype == np.uint8
  assert np.abs(got.astype(int) - want).mean() < 12       # RGB order, MJPEG
  assert got[0, 20, 20, 0] > 150 and got[0, 20, 20, 1] < 80
  cache = tmp_path / "cache"
  small = load_video(str(tmp_path / "clip.avi"), width=16, multiple=4,
                     cache_dir=str(cache))
  assert small.shape == (12, 12, 16, 3)
  files = list(cache.glob("*.npz"))
  assert len(files) == 1
  # the second load reads the .npz (no decoding)
  import ssljax.data.video as video  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(video, "read_video", lambda *a, **k: 1 / 0)
  np.testing.assert_array_equal(
      load_video(str(tmp_path / "clip.avi"), width=16, multiple=4,
                 cache_dir=str(cache)), small)
  with np.load(files[0], allow_pickle=False) as z:
    assert set(z.files) == {"frames"}
  # a folder of videos, split and cut into clips
  splits = load_opencv_videos(data_dir=str(tmp_path), names=None, width=16,
                              multiple=4, holdout=(), test_fraction=0.25,
                              gap=1, cache_dir=str(cache))
  assert splits.describe() == {"train": {"clip.avi": 8},
                               "test": {"clip.avi[9:]": 3}}


def test_clips_take_the_strided_reference_frames_then_the_target():
  frames = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones(
      (1, 2, 2, 3), np.uint8)
  clips = sample_clips([frames], 50, num_refs=3, stride=2,
                       rng=np.random.default_rng(0))
  assert clips.shape == (50, 4, 2, 2, 3)
  idx = clips[:, :, 0, 0, 0].astype(int)
  np.testing.assert_array_equal(np.diff(idx, axis=1), 2)
  assert idx.min() >= 0 and idx[:, -1].max() <= 19
  a = next(clip_batches([frames], batch_size=4, seed=3, start_step=7))
  b = sample_clips([frames], 4, rng=np.random.default_rng([3, 7]))
  np.testing.assert_array_equal(a, b)                     # resumable
  every = all_clips(frames, num_refs=2, stride=3, every=5)
  np.testing.assert_array_equal(every[:, :, 0, 0, 0],
                                [[0, 3, 6], [5, 8, 11], [10, 13, 16]])


def test_clips_at_a_gap_stay_in_one_held_out_video_and_share_targets():
  """Clips with the last reference ``gap`` frames before the target: exact
  indices, one video, no frame across the train / held-out boundary, and
  the same targets at every gap with a common ``first_target``."""
  def video(n, start):                       # frame i holds the value start + i
    return (start + np.arange(n, dtype=np.int64))[:, None, None, None] * np.ones(
        (1, 2, 2, 3), np.int64)
  # frame values encode (video, index): a = 0..59, b = 1000..1039
  splits = split_videos({"a.avi": video(60, 0), "b.avi": video(40, 1000)},
                        holdout=("b.avi",), test_fraction=0.5, gap=4)
  assert splits.describe() == {"train": {"a.avi": 26},
                               "test": {"a.avi[30:]": 30, "b.avi": 40}}
  gaps = (1, 2, 4, 8, 16)
  first = clip_span(3, 2, max(gaps))
  assert first == 2 * 2 + 16 and clip_span(3, 2) == 6     # default gap = stride
  for name, frames in splits.test.items():
    lo, hi = int(frames[0, 0, 0, 0]), int(frames[-1, 0, 0, 0])
    targets = None
    for gap in gaps:
      idx = clip_indices(len(frames), num_refs=3, stride=2, gap=gap,
                         first_target=first)
      clips = all_clips(frames, num_refs=3, stride=2, gap=gap,
                        first_target=first)
      v = clips[:, :, 0, 0, 0]
      np.testing.assert_array_equal(v, frames[idx][:, :, 0, 0, 0])
      np.testing.assert_array_equal(v[:, -1] - v[:, -2], gap)
      np.testing.assert_array_equal(np.diff(v[:, :-1], axis=1), 2)
      assert v.min() >= lo and v.max() <= hi              # held-out frames only
      if targets is None:
        targets = v[:, -1]
        assert len(targets) == len(frames) - first
      np.testing.assert_array_equal(v[:, -1], targets)    # same targets
      # random clips at a gap: the same structure, from the held-out part
      r = sample_clips([frames], 64, num_refs=3, stride=2, gap=gap,
                       rng=np.random.default_rng(gap))[:, :, 0, 0, 0]
      np.testing.assert_array_equal(r[:, -1] - r[:, -2], gap)
      np.testing.assert_array_equal(np.diff(r[:, :-1], axis=1), 2)
      assert r.min() >= lo and r.max() <= hi
  # training clips at a large gap never reach into the held-out tail
  r = next(clip_batches(list(splits.train.values()), batch_size=64, gap=16,
                        seed=0))[:, :, 0, 0, 0]
  assert r.max() <= 25 and (r[:, -1] - r[:, -2] == 16).all()
  # default gap: the old clips, bit for bit
  f = splits.test["b.avi"]
  np.testing.assert_array_equal(
      sample_clips([f], 8, rng=np.random.default_rng(0)),
      sample_clips([f], 8, gap=2, rng=np.random.default_rng(0)))
  assert clip_indices(len(f), num_refs=1, stride=5, gap=39).tolist() == [[0, 39]]
  assert clip_indices(len(f), num_refs=1, stride=5, gap=40).shape == (0, 2)
  with pytest.raises(ValueError, match="gap"):
    clip_indices(10, gap=0)
  with pytest.raises(ValueError, match="longer than"):
    sample_clips([f], 2, num_refs=3, stride=2, gap=36,
                 rng=np.random.default_rng(0))


def test_colorization_baselines_and_per_clip_scores(tiny):
  rng = np.random.default_rng(6)
  clips = rng.integers(0, 256, (3, 3, 8, 8, 3)).astype(np.uint8)
  clips[0, -2] = clips[0, -1]                  # clip 0: reference == target
  mean_ab = np.array([1.0, -2.0], np.float32)
  s = jax.jit(lambda c: colorization_baseline_scores(c, CENTROIDS, mean_ab))(
      clips)
  lab = np.asarray(method_lab(clips))
  true_ab = lab[:, -1, ..., 1:]
  err = lambda ab: np.linalg.norm(ab - true_ab, axis=-1).mean((1, 2))
  np.testing.assert_allclose(s["copy_reference"]["ab_error"],
                             err(lab[:, -2, ..., 1:]), rtol=1e-5)
  assert s["copy_reference"]["ab_error"][0] == 0
  assert s["copy_reference"]["cluster_acc"][0] == 1
  np.testing.assert_allclose(s["train_mean_color"]["ab_error"], err(mean_ab),
                             rtol=1e-5)
  cl = np.asarray(color_cluster_targets(lab, CENTROIDS, (2, 2)))  # [B, 3, 2, 2]
  np.testing.assert_allclose(s["copy_reference"]["cluster_acc"],
                             (cl[:, -2] == cl[:, -1]).mean((1, 2)))
  np.testing.assert_allclose(s["train_mean_color"]["cluster_acc"],
                             (cl[:, -1] == 0).mean((1, 2)))   # (0, 0) nearest
  floor = CENTROIDS[cl[:, -1]].repeat(4, 1).repeat(4, 2)
  np.testing.assert_allclose(s["quantization_floor"]["ab_error"], err(floor),
                             rtol=1e-5)
  np.testing.assert_allclose(s["copy_reference_quantized"]["ab_error"],
                             err(CENTROIDS[cl[:, -2]].repeat(4, 1).repeat(4, 2)),
                             rtol=1e-5)
  # the network's per-clip scores average to evaluate()'s loss and accuracy
  method, state, moving = tiny
  per_clip, ev = jax.jit(lambda st, c: (method.clip_scores(st, c),
                                        method.evaluate(st, c)))(
                                            state, jnp.asarray(moving))
  assert per_clip["cluster_acc"].shape == (4,)
  np.testing.assert_allclose(per_clip["loss"].mean(), ev["loss"], rtol=1e-5)
  np.testing.assert_allclose(per_clip["cluster_acc"].mean(), ev["acc"],
                             rtol=1e-6)


def test_missing_video_dir_says_to_install_opencv_doc(tmp_path):
  with pytest.raises(DatasetNotAvailableError, match="apt-get install opencv-doc"):
    find_videos(str(tmp_path / "nope"))
  with pytest.raises(DatasetNotAvailableError, match="apt-get install opencv-doc"):
    load_opencv_videos(data_dir=str(tmp_path / "nope"))
  with pytest.raises(DatasetNotAvailableError, match="lacks vtest.avi"):
    find_videos(str(tmp_path), names=("vtest.avi",))


@pytest.mark.skipif(not os.path.isfile(os.path.join(VIDEOS_DIR, "tree.avi")),
                    reason="opencv-doc's tree.avi is absent")
def test_real_opencv_doc_video():
  frames = read_video(os.path.join(VIDEOS_DIR, "tree.avi"), max_frames=5)
  assert frames.shape == (5, 240, 320, 3) and frames.dtype == np.uint8
  assert frames.std() > 10                                 # real content


def test_davis_through_mocked_tfds():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=2):
    videos = load_davis("validation", size=(8, 12), max_frames=3)
  assert len(videos) == 2
  for v in videos:
    assert v["frames"].shape[1:] == (8, 12, 3) and v["frames"].dtype == np.uint8
    assert v["masks"].shape == v["frames"].shape[:3]
    assert 1 <= len(v["frames"]) <= 3 and isinstance(v["name"], str)


# ----------------------------------------------------------------------------
# clip datasets: what the loop batches
# ----------------------------------------------------------------------------


def _moving_videos(names=("a.avi", "b.avi"), num=12, side=16, seed=9):
  """``{name: uint8 [num, side, side, 3]}``: colour blocks sliding one block
  per frame."""
  out = {}
  for i, name in enumerate(names):
    clips = _moving_clips(b=1, r1=num, side=side, seed=seed + i)
    out[name] = clips[0]
  return out


def test_clip_dataset_indices_and_batches():
  videos = _moving_videos()
  ds = clip_dataset(videos, num_refs=2, stride=3)
  assert isinstance(ds, ClipDataset) and ds.num_classes == 0
  # targets 6..11 of each video: 6 clips each
  assert ds.images.shape == (12, 3, 16, 16, 3) and ds.images.dtype == np.uint8
  assert len(ds) == 12 and ds.image_shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(ds.frame_ids[0], [0, 3, 6])
  np.testing.assert_array_equal(ds.video_ids, [0] * 6 + [1] * 6)
  for i in range(len(ds)):
    name = sorted(videos)[ds.video_ids[i]]
    np.testing.assert_array_equal(ds.images[i], videos[name][ds.frame_ids[i]])
  assert (ds.labels == -1).all()
  # the loop's pipeline batches 5-D examples like images
  batch = next(batches(ds, batch_size=4, seed=0, process_index=0,
                       process_count=1))
  assert batch["image"].shape == (4, 3, 16, 16, 3)
  with pytest.raises(ValueError, match="frame shape"):
    clip_dataset({"a": videos["a.avi"], "b": videos["b.avi"][:, :8]})


def test_load_clips_splits_by_source_video(tmp_path):
  for name in ("a.avi", "b.avi"):
    _write_video(tmp_path / name, num=16)
  kw = dict(data_dir=str(tmp_path), names=None, width=16, multiple=4,
            holdout=("b.avi",), test_fraction=0.25, gap=2, num_refs=2,
            stride=1, gap_range=None, cache_dir=str(tmp_path / "cache"))
  train, test = load_clips("train", **kw), load_clips("test", **kw)
  assert sorted(train.videos) == ["a.avi"]           # b.avi held out whole
  assert sorted(test.videos) == ["a.avi[12:]", "b.avi"]
  assert len(train.videos["a.avi"]) == 10            # 16 - 4 held out - gap 2
  assert train.frame_ids.max() <= 9                  # no held-out frame
  assert train.image_shape == (3, 12, 16, 3) and len(train) == 8
  assert len(test) == (4 - 2) + (16 - 2)
  assert train.name.startswith("opencv_videos:train")
  with pytest.raises(ValueError, match="split"):
    load_clips("validation", **kw)
  # random gaps (the default kind of clip): within the range, same frames
  ranged = load_clips("train", **{**kw, "gap_range": (2, 4),
                                  "clips_per_target": 2})
  assert ranged.gaps.min() >= 2 and ranged.gaps.max() <= 4
  assert ranged.frame_ids.max() <= 9                 # no held-out frame


# ----------------------------------------------------------------------------
# from a config
# ----------------------------------------------------------------------------

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "experiments", "configs")


def _config(**method):
  return ml_collections.ConfigDict(dict(
      method="video_colorization", dataset="tiny_clips", seed=0,
      batch_size=8, num_steps=2,
      encoder=dict(name="embedding_net", widths=(8, 16, 16), dilations=(),
                   embed_dim=16, groups=4),
      video_colorization={"num_clusters": 4, "block_size": 7, **method},
      optimizer=dict(name="adamw", base_lr=3e-3, lr_scaling="none"),
      log_every=1, checkpoint_every=1, keep_checkpoints=3))


def _tiny_clips(num_videos=2, num=12):
  names = tuple(f"v{i}.avi" for i in range(num_videos))
  return clip_dataset(_moving_videos(names, num=num), num_refs=2, stride=1)


def _from_config(config, dataset=None):
  reader = ConfigReader(config)
  shape = dataset.image_shape if dataset is not None else (3, 16, 16, 3)
  method = get_method(config.method).from_config(
      reader, tx=optax.sgd(0.1), schedule=None,
      data=DataSpec(name="tiny", num_examples=8, input_shape=shape,
                    dataset=dataset))
  if reader.problems:
    raise ConfigError(reader.problems)
  return method


def test_from_config_fits_clusters_on_the_training_frames():
  ds = _tiny_clips()
  method = _from_config(_config(), ds)
  assert isinstance(method, VideoColorization)
  assert isinstance(method.model, EmbeddingNet) and method.model.embed_dim == 16
  want = fit_color_clusters(list(ds.videos.values()), num_clusters=4,
                            stride=method.model.stride, seed=0)
  np.testing.assert_array_equal(method.centers, want)
  assert method.num_clusters == 4 and method.block_size == 7
  # checking a config: a fixed stand-in, no k-means, no data
  stand_in = _from_config(_config())
  np.testing.assert_array_equal(stand_in.centers, standin_centroids(4))
  state = jax.eval_shape(lambda k: stand_in.init(k, (3, 16, 16, 3)),
                         jax.random.key(0))
  assert isinstance(state, TrainState)


def _clips_like_opencv(n=16):
  """Clips of the shipped config's shape, [4, 72, 96, 3]."""
  videos = {"v.avi": np.random.default_rng(0).integers(
      0, 256, (n + 6, 72, 96, 3)).astype(np.uint8)}
  return clip_dataset(videos, num_refs=3, stride=2)


def test_shipped_config_validates_on_its_clips():
  config = load_config_file(os.path.join(CONFIGS, "video_colorization.py"))
  assert config_problems(config, device_count=1,
                         dataset=_clips_like_opencv()) == []


@pytest.mark.skipif("opencv_videos" not in KNOWN_DATASETS,
                    reason="ssljax.data.sources.KNOWN_DATASETS has no "
                    "'opencv_videos' entry (clip shape (4, 72, 96, 3)) yet")
def test_shipped_config_validates_without_data():
  config = load_config_file(os.path.join(CONFIGS, "video_colorization.py"))
  assert config_problems(config, device_count=1) == []


def test_bad_values_misspelt_keys_and_geometry_are_reported():
  with pytest.raises(ConfigError) as e:
    _from_config(_config(temperature=-1.0, crop_size=(0, 4), num_clusters=1))
  assert {"video_colorization.temperature", "video_colorization.crop_size",
          "video_colorization.num_clusters"} <= set(e.value.keys)
  config = _config(tempreature=0.5)
  config.encoder.embed_dims = 8
  by_key = {p.key: p.message for p in config_problems(
      config, device_count=1, dataset=_tiny_clips())}
  assert "'video_colorization.temperature'" in by_key[
      "video_colorization.tempreature"]
  assert "'encoder.embed_dim'" in by_key["encoder.embed_dims"]
  # geometry: a crop larger than the frames, found by tracing the step
  problems = config_problems(_config(crop_size=(32, 32)), device_count=1,
                             dataset=_tiny_clips())
  assert [p.key for p in problems] == ["method"]
  assert "crop_size (32, 32) must fit" in problems[0].message
  # images instead of clips
  problems = config_problems(_config(), device_count=1, num_examples=64)
  assert problems and "clip_shape must be" in problems[0].message


# ----------------------------------------------------------------------------
# the one loop: train, stop, resume
# ----------------------------------------------------------------------------


def test_pretrain_through_the_loop_resumes_exactly(tmp_path):
  ds = _tiny_clips(num_videos=4)
  config = _config()
  _, full = pretrain(config, str(tmp_path / "full"), dataset=ds,
                     progress=False, handle_signals=False)
  assert int(full.step) == 2
  _, part = pretrain(config, str(tmp_path / "part"), dataset=ds, stop_at=1,
                     progress=False, handle_signals=False)
  assert int(part.step) == 1
  _, resumed = pretrain(config, str(tmp_path / "part"), dataset=ds,
                        resume=True, progress=False, handle_signals=False)
  assert int(resumed.step) == 2
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(resumed.params), jax.device_get(full.params))
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(resumed.opt_state), jax.device_get(full.opt_state))


# ----------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------


def test_evaluation_on_tiny_videos(tiny, tmp_path):
  """The whole evaluation (colorization by gap with and without the local
  window, tracking by speed, verdicts, pictures) on tiny videos; every
  network call is jitted."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  method, state, _ = tiny
  photo = tmp_path / "photo.png"
  Image.fromarray(np.random.default_rng(1).integers(
      0, 256, (32, 40, 3)).astype(np.uint8)).save(photo)
  train = clip_dataset(_moving_videos(("a.avi",), num=8), num_refs=2,
                       stride=1, gap_range=(1, 3), clips_per_target=2)
  test = clip_dataset(_moving_videos(("b.avi", "c.avi"), num=10, seed=20),
                      num_refs=2, stride=1)
  options = VideoEvalOptions(clip_every=2, batch_size=4, gaps=(1, 2),
                             speeds=(("static", 0.0), ("slow", 1.0)),
                             sequences_per_speed=1, length=5,
                             object_size=(4, 6), png_frames=3,
                             colorization_radius=1, real_motion_sequences=0)
  states = {"trained": state}              # one network: half the compiling
  seqs = make_tracking_sequences(test.videos, options, photos=[str(photo)])
  assert len(seqs) == 2 and seqs[0].frames.shape == (5, 16, 16, 3)
  track, preds = eval_tracking(method, states, seqs, options)
  j = track["all"]["copy_first_mask"]["J_over_time"]
  assert j[0] == 1.0 and len(j) == 5
  static = track["by_speed"]["static"]["copy_first_mask"]
  assert static["J_mean_frames_1_to_end"] == 1.0       # nothing moved
  assert track["moving"]["num_sequences"] == 1
  assert set(preds) == set(states) and preds["trained"].shape == (2, 5, 16, 16)
  out = evaluate_video_colorization(method, states, train, test, options,
                                    out_dir=str(tmp_path), photos=[str(photo)])
  pooled = out["colorization"]["all_held_out"]
  assert {"trained", "copy_reference", "train_mean_color",
          "quantization_floor"} <= set(pooled)
  assert pooled["quantization_floor"]["cluster_acc"] == 1.0
  assert out["training_clips"] == {"num": len(train), "gap_min": 1,
                                   "gap_max": 3}
  # the same numbers as the method's own evaluation of those clips
  clips = all_clips(test.videos["b.avi"], num_refs=2, stride=1, every=2)
  ev = eval_colorization(method, {"trained": state}, {"b.avi":
                         test.videos["b.avi"]},
                         mean_ab=np.zeros(2, np.float32), num_refs=2,
                         stride=1, every=2, batch_size=4)
  ref = jax.jit(method.evaluate)(state, jnp.asarray(clips))
  np.testing.assert_allclose(ev["all_held_out"]["trained"]["cluster_acc"],
                             ref["acc"], rtol=1e-6)
  np.testing.assert_allclose(ev["all_held_out"]["trained"]["loss"],
                             ref["loss"], rtol=1e-5)
  by_gap = out["colorization_by_gap"]
  assert set(by_gap["all_held_out"]) == {"1", "2"}
  row = by_gap["all_held_out"]["2"]
  assert {"trained", "trained_local", "copy_reference"} <= set(row)
  # the local window's scores are the method's with that radius
  gap_clips = np.concatenate([all_clips(
      f, num_refs=2, stride=1, gap=2, first_target=3)
                              for f in test.videos.values()])
  local = jax.jit(lambda st, c: method.evaluate(st, c, radius=1))(
      state, jnp.asarray(gap_clips))
  np.testing.assert_allclose(row["trained_local"]["cluster_acc"],
                             local["acc"], rtol=1e-5)
  d = by_gap["paired_cluster_acc"]["trained_minus_copy_reference"]["2"]
  np.testing.assert_allclose(d["mean"], row["trained"]["cluster_acc"]
                             - row["copy_reference"]["cluster_acc"], atol=1e-6)
  assert set(out["verdict"]) == {"colorization", "colorization_local",
                                 "tracking"}
  assert out["verdict"]["colorization"][
      "beats_copy_reference_at_every_gap_from_8"] is False   # no gap >= 8
  for p in out["pngs"].values():
    assert os.path.getsize(p) > 0
  np.testing.assert_array_equal(tracking_iou(np.ones((2, 2), bool),
                                             np.zeros((2, 2), bool)), 0.0)
