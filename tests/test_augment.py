"""Augmentations against independent numpy / scipy / colorsys computations.

Every op runs under ``jax.jit`` and ``jax.vmap``; images are tiny (<= 28 px)
and batches <= 16 so the file stays fast on a couple of CPU cores.
"""

import colorsys
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize

from helpers import require_devices
from ssljax import augment as A
from ssljax.augment import ops as _ops
from ssljax.parallel import data_sharding, make_data_mesh

RNG = np.random.RandomState(0)
IMG3 = RNG.rand(12, 10, 3).astype(np.float32)   # non-square on purpose
IMG1 = RNG.rand(12, 10, 1).astype(np.float32)
KEY = jax.random.key(0)


def _jvmap(fn, **kw):
  """jit(vmap(fn)): one compile instead of op-by-op dispatch."""
  return jax.jit(jax.vmap(fn, **kw))


def _keys(n, seed=1):
  return jax.random.split(jax.random.key(seed), n)


# --------------------------------------------------------------------------
# numpy references written from the definitions
# --------------------------------------------------------------------------


def np_hsv_map(image, fn):
  """Apply ``fn(h, s, v) -> (h, s, v)`` per pixel with colorsys (float64)."""
  out = np.empty(image.shape, np.float64)
  for i, j in itertools.product(range(image.shape[0]), range(image.shape[1])):
    h, s, v = colorsys.rgb_to_hsv(*map(float, image[i, j]))
    out[i, j] = colorsys.hsv_to_rgb(*fn(h, s, v))
  return out


def np_saturation(image, f):
  if image.shape[-1] == 1:
    return image
  return np_hsv_map(image, lambda h, s, v: (h, min(max(s * f, 0.0), 1.0), v))


def np_hue(image, d):
  if image.shape[-1] == 1:
    return image
  return np_hsv_map(image, lambda h, s, v: ((h + d) % 1.0, s, v))


def np_contrast(image, f):
  mean = image.mean(axis=(0, 1), keepdims=True)   # per channel, over H, W
  return (image - mean) * f + mean


def np_brightness(image, f):
  return image * f


# --------------------------------------------------------------------------
# conversions and validation
# --------------------------------------------------------------------------


def test_to_float():
  u8 = np.array([[[0], [128], [255]]], np.uint8)
  out = A.to_float(u8)
  chex.assert_type(out, jnp.float32)
  np.testing.assert_allclose(out, u8 / 255.0, rtol=1e-6)
  chex.assert_trees_all_close(A.to_float(IMG3), IMG3)


@pytest.mark.parametrize("shape", [(12, 10), (12, 10, 2), (2, 12, 10, 3)])
def test_bad_image_shape_raises(shape):
  bad = jnp.zeros(shape)
  for call in (lambda: A.random_flip_left_right(KEY, bad),
               lambda: A.adjust_contrast(bad, 1.0),
               lambda: A.color_jitter(KEY, bad),
               lambda: A.random_resized_crop(KEY, bad),
               lambda: A.simclr_view(KEY, bad)):
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
      call()


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    A.simclr_views(KEY, jnp.zeros((12, 10, 3)))
  with pytest.raises(ValueError, match="kernel_size"):
    A.random_gaussian_blur(KEY, IMG3, kernel_size=4)
  with pytest.raises(ValueError, match="probability"):
    A.random_solarize(KEY, IMG3, p=1.5)
  with pytest.raises(ValueError, match="area_range"):
    A.sample_crop_box(KEY, 8, 8, area_range=(0.5, 0.1))


# --------------------------------------------------------------------------
# flips, solarize
# --------------------------------------------------------------------------


@pytest.mark.parametrize("img", [IMG3, IMG1], ids=["rgb", "gray"])
def test_flip(img):
  flip = jax.jit(lambda k, x: A.random_flip_left_right(k, x, p=1.0))
  np.testing.assert_array_equal(flip(KEY, img), np.fliplr(img))
  np.testing.assert_array_equal(A.random_flip_left_right(KEY, img, p=0.0), img)
  outs = np.asarray(_jvmap(lambda k: A.random_flip_left_right(k, img))(
      _keys(16)))
  flipped = [np.array_equal(o, np.fliplr(img)) for o in outs]
  same = [np.array_equal(o, img) for o in outs]
  assert all(f or s for f, s in zip(flipped, same))
  assert any(flipped) and any(same)


def test_solarize():
  sol = jax.jit(lambda k, x: A.random_solarize(k, x, threshold=0.4, p=1.0))
  np.testing.assert_allclose(sol(KEY, IMG3),
                             np.where(IMG3 < 0.4, IMG3, 1.0 - IMG3))
  np.testing.assert_array_equal(A.random_solarize(KEY, IMG3), IMG3)  # p = 0
  outs = np.asarray(_jvmap(
      lambda k: A.random_solarize(k, IMG1, p=0.5))(_keys(16)))
  hit = [np.allclose(o, np.where(IMG1 < 0.5, IMG1, 1 - IMG1)) for o in outs]
  miss = [np.array_equal(o, IMG1) for o in outs]
  assert all(h or m for h, m in zip(hit, miss)) and any(hit) and any(miss)


# --------------------------------------------------------------------------
# deterministic colour ops
# --------------------------------------------------------------------------

FACTORS = np.array([0.0, 0.3, 1.0, 1.7], np.float32)


@pytest.mark.parametrize("img", [IMG3, IMG1], ids=["rgb", "gray"])
@pytest.mark.parametrize("name,np_fn", [
    ("adjust_brightness", np_brightness),
    ("adjust_contrast", np_contrast),
    ("adjust_saturation", np_saturation),
])
def test_adjust_factor_ops(name, np_fn, img):
  fn = getattr(A, name)
  got_jit = jax.jit(fn)(img, FACTORS[1])
  np.testing.assert_allclose(got_jit, np_fn(img, float(FACTORS[1])), atol=2e-5)
  got_vmap = _jvmap(fn, in_axes=(None, 0))(img, FACTORS)
  for f, got in zip(FACTORS, got_vmap):
    np.testing.assert_allclose(got, np_fn(img, float(f)), atol=2e-5)


def test_saturation_zero_is_hsv_value_gray():
  # dm-pix / tf semantics: saturation 0 gives V = max(R, G, B), not luma.
  out = jax.jit(A.adjust_saturation)(IMG3, 0.0)
  np.testing.assert_allclose(out, np.repeat(IMG3.max(-1, keepdims=True), 3, -1),
                             atol=1e-6)


def test_adjust_hue():
  pixels = np.array([[[1, 0, 0], [0.5, 0.5, 0.5], [0, 0, 1]]], np.float32)
  hue = jax.jit(A.adjust_hue)
  np.testing.assert_allclose(
      hue(pixels, 1 / 3), [[[0, 1, 0], [0.5, 0.5, 0.5], [1, 0, 0]]], atol=1e-6)
  np.testing.assert_allclose(
      hue(pixels, 1 / 6), [[[1, 1, 0], [0.5, 0.5, 0.5], [1, 0, 1]]], atol=1e-6)
  deltas = np.array([-0.2, 0.05, 0.5], np.float32)
  outs = _jvmap(A.adjust_hue, in_axes=(None, 0))(IMG3, deltas)
  for d, got in zip(deltas, outs):
    np.testing.assert_allclose(got, np_hue(IMG3, float(d)), atol=2e-5)
  np.testing.assert_array_equal(A.adjust_hue(IMG1, 0.3), IMG1)


# --------------------------------------------------------------------------
# grayscale, blur
# --------------------------------------------------------------------------


def test_grayscale():
  assert A.GRAYSCALE_WEIGHTS == (0.2989, 0.5870, 0.1140)   # dm-pix rec601
  luma = IMG3[..., 0] * 0.2989 + IMG3[..., 1] * 0.5870 + IMG3[..., 2] * 0.1140
  gray = jax.jit(lambda k, x: A.random_grayscale(k, x, p=1.0))(KEY, IMG3)
  chex.assert_shape(gray, IMG3.shape)
  for c in range(3):
    np.testing.assert_allclose(gray[..., c], luma, atol=1e-6)
  np.testing.assert_array_equal(A.random_grayscale(KEY, IMG1, p=1.0), IMG1)
  outs = np.asarray(_jvmap(lambda k: A.random_grayscale(k, IMG3, p=0.5))(
      _keys(16)))
  is_gray = [np.allclose(o, gray) for o in outs]
  same = [np.array_equal(o, IMG3) for o in outs]
  assert all(g or s for g, s in zip(is_gray, same))
  assert any(is_gray) and any(same)


def test_blur_kernel_size():
  assert [A.blur_kernel_size(s) for s in (8, 16, 28, 32, 96, 224)] == [
      3, 3, 3, 3, 9, 23]


def _scipy_blur(img, sigma, kernel_size):
  return np.stack([
      scipy.ndimage.gaussian_filter(img[..., c].astype(np.float64), sigma,
                                    mode="constant", cval=0.0,
                                    radius=kernel_size // 2)
      for c in range(img.shape[-1])], axis=-1)


@pytest.mark.parametrize("img", [IMG3, IMG1], ids=["rgb", "gray"])
def test_gaussian_blur_matches_scipy(img):
  blur = jax.jit(lambda k, x: A.random_gaussian_blur(
      k, x, kernel_size=5, sigma_range=(1.3, 1.3), p=1.0))
  np.testing.assert_allclose(blur(KEY, img), _scipy_blur(img, 1.3, 5),
                             atol=1e-5)
  sigmas = np.array([0.1, 0.7, 2.0], np.float32)
  outs = _jvmap(lambda s: A.gaussian_blur(img, s, kernel_size=3))(sigmas)
  for s, got in zip(sigmas, outs):
    np.testing.assert_allclose(got, _scipy_blur(img, float(s), 3), atol=1e-5)
  np.testing.assert_array_equal(
      A.random_gaussian_blur(KEY, img, kernel_size=3, p=0.0), img)


def test_random_blur_vmap_sigma_in_range():
  outs = _jvmap(lambda k: A.random_gaussian_blur(
      k, IMG1, kernel_size=3, p=1.0))(_keys(8))
  # Each output is the scipy blur for *some* sigma in [0.1, 2]: fit it.
  for got in np.asarray(outs):
    fit = scipy.optimize.minimize_scalar(
        lambda s: np.abs(got - _scipy_blur(IMG1, s, 3)).max(),
        bounds=(0.1, 2.0), method="bounded", options={"xatol": 1e-6})
    assert fit.fun < 1e-5
  assert len({np.asarray(o).tobytes() for o in outs}) == 8


# --------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------


def test_crop_boxes_in_image_and_ranges():
  height, width, n = 48, 64, 512
  boxes = _jvmap(lambda k: jnp.stack(A.sample_crop_box(k, height, width)))(
      _keys(n, seed=7))
  top, left, h, w = np.asarray(boxes).T
  assert boxes.dtype == jnp.int32
  assert (top >= 0).all() and (left >= 0).all()
  assert (h >= 1).all() and (w >= 1).all()
  assert (top + h <= height).all() and (left + w <= width).all()
  # Whole pixels: area / aspect within range up to rounding of h, w by 1/2.
  area_hi = (h + 0.5) * (w + 0.5) / (height * width)
  area_lo = (h - 0.5) * (w - 0.5) / (height * width)
  assert (area_hi >= 0.08).all() and (area_lo <= 1.0).all()
  aspect_hi, aspect_lo = (w + 0.5) / (h - 0.5), (w - 0.5) / (h + 0.5)
  assert (aspect_hi >= 3 / 4).all() and (aspect_lo <= 4 / 3).all()
  frac = h * w / (height * width)
  assert frac.min() < 0.15 and frac.max() > 0.8       # spans the range
  assert len(set(zip(top, left))) > n // 4            # positions vary


def test_crop_box_fallback():
  # An area range no proposal can satisfy (> image) forces the fall-back.
  cases = [
      (10, 100, (0, 43, 10, 13)),    # too wide: h = H, w = round(H * 4/3)
      (100, 10, (43, 0, 13, 10)),    # too tall: w = W, h = round(W / (3/4))
      (20, 20, (0, 0, 20, 20)),      # aspect in range: the whole image
  ]

  @jax.jit
  def boxes(keys):
    return [_jvmap(lambda k, h=h, w=w: jnp.stack(A.sample_crop_box(
        k, h, w, area_range=(1.5, 2.0))))(keys) for h, w, _ in cases]

  for got, (_, _, expected) in zip(boxes(_keys(4)), cases):
    np.testing.assert_array_equal(got, np.tile(expected, (4, 1)))


def test_crop_alignment():
  @jax.jit
  def crops(box, ramp):
    return (A.crop_and_resize(IMG3, (0, 0, 12, 10)),
            A.crop_and_resize(IMG1, (0, 0, 12, 10)),
            A.crop_and_resize(IMG3, box, size=(5, 4)),
            A.crop_and_resize(ramp, (0, 2, 4, 5), size=(8, 10)))

  ramp = np.tile(np.arange(10, dtype=np.float32)[None, :, None], (4, 1, 1)) / 9
  whole3, whole1, sub, up = crops(jnp.array([3, 2, 5, 4]), ramp)
  # Whole-image box and size = image size: the identity.
  np.testing.assert_allclose(whole3, IMG3, atol=1e-6)
  np.testing.assert_allclose(whole1, IMG1, atol=1e-6)
  # A (traced) box resized to its own size: the exact pixel slice.
  np.testing.assert_allclose(sub, IMG3[3:8, 2:6], atol=1e-6)
  # 2x up-sampling of a ramp: half-pixel-centre bilinear interpolation.
  src = 2 + (np.arange(10) + 0.5) / 2 - 0.5
  want = np.interp(src, np.arange(10), ramp[0, :, 0])
  np.testing.assert_allclose(up[0, 1:9, 0], want[1:9], atol=1e-6)


def test_random_resized_crop():
  square = IMG3[:10]

  @jax.jit
  def run(keys):
    whole = A.random_resized_crop(keys[0], square, area_range=(1.0, 1.0),
                                  aspect_range=(1.0, 1.0))
    crop = lambda k, x: A.random_resized_crop(k, x, size=(8, 6))
    outs3 = jax.vmap(crop, in_axes=(0, None))(keys, IMG3)
    outs1 = jax.vmap(crop, in_axes=(0, None))(keys, IMG1)
    by_hand = A.crop_and_resize(
        IMG3, A.sample_crop_box(keys[0], *IMG3.shape[:2]), size=(8, 6))
    return whole, outs3, outs1, by_hand

  whole, outs3, outs1, by_hand = run(_keys(8))
  # Area 1 and aspect 1 on a square image: the whole image, unchanged.
  np.testing.assert_allclose(whole, square, atol=1e-6)
  for outs, channels in ((outs3, 3), (outs1, 1)):
    chex.assert_shape(outs, (8, 8, 6, channels))
    chex.assert_type(outs, jnp.float32)
    assert float(outs.min()) >= 0.0 and float(outs.max()) <= 1.0
    assert len({np.asarray(o).tobytes() for o in outs}) == 8
  # Same as cropping the sampled box by hand.
  np.testing.assert_allclose(outs3[0], by_hand, atol=1e-6)


# --------------------------------------------------------------------------
# colour jitter
# --------------------------------------------------------------------------


def np_jitter(image, factors, order):
  """SimCLR color_jitter_rand: ops in ``order``, clip after each (float64)."""
  ops = (lambda x: np_brightness(x, factors[0]),
         lambda x: np_contrast(x, factors[1]),
         lambda x: np_saturation(x, factors[2]),
         lambda x: np_hue(x, factors[3]))
  x = image.astype(np.float64)
  for i in order:
    x = np.clip(ops[i](x), 0.0, 1.0)
  return x


JITTER = dict(brightness=0.8, contrast=0.3, saturation=1.5, hue=0.2)
JITTER_KEYS = _keys(400, seed=5)


@jax.jit
def _jitter_draws(keys):
  """The factors and orders color_jitter(**JITTER) draws for ``keys``.

  color_jitter takes 9 U[0,1) draws from its key: the first is the p-coin,
  the rest give the factors and the order.
  """
  return jax.vmap(lambda k: _ops._sample_jitter_params(
      _ops._uniforms(k, 9)[1:], random_order=True, **JITTER))(keys)


def test_color_jitter_matches_numpy_composition():
  img = IMG3[:6, :6]
  keys = JITTER_KEYS[:12]
  outs = _jvmap(lambda k: A.color_jitter(k, img, p=0.5, **JITTER))(keys)
  all_factors, orders = map(np.asarray, _jitter_draws(JITTER_KEYS))
  applied = 0
  for got, factors, order in zip(outs, all_factors, orders):
    if np.array_equal(got, img):    # the p = 0.5 coin said no
      continue
    applied += 1
    np.testing.assert_allclose(
        got, np_jitter(img, factors.astype(np.float64), order), atol=5e-5)
  assert 0 < applied < len(keys)


def test_color_jitter_parameter_ranges_and_orders():
  factors, orders = map(np.asarray, _jitter_draws(JITTER_KEYS))
  lo = np.array([0.2, 0.7, 0.0, -0.2])      # max(0, 1 - s), -h
  hi = np.array([1.8, 1.3, 2.5, 0.2])       # 1 + s, +h
  assert (factors >= lo).all() and (factors <= hi).all()
  assert (factors.min(0) < lo + 0.05).all()
  assert (factors.max(0) > hi - 0.05).all()
  # A uniform random permutation per image: all 24 orders occur.
  assert {tuple(o) for o in orders} == set(itertools.permutations(range(4)))


def test_color_jitter_semantics_single_ops():
  keys = _keys(16, seed=11)
  # Brightness only: a multiplicative factor in [0.2, 1.8].
  mid = 0.3 + 0.2 * IMG3                      # stays < 1 after x1.8
  outs = np.asarray(_jvmap(lambda k: A.color_jitter(
      k, mid, contrast=0, saturation=0, hue=0, p=1.0))(keys))
  ratios = outs / mid
  assert np.allclose(ratios, ratios[:, :1, :1, :1], atol=1e-5)
  assert (ratios[:, 0, 0, 0] >= 0.2 - 1e-6).all()
  assert (ratios[:, 0, 0, 0] <= 1.8 + 1e-6).all()
  # Contrast only (1-channel): per-channel mean kept, deviations scaled.
  mid1 = 0.4 + 0.2 * IMG1
  outs = np.asarray(_jvmap(lambda k: A.color_jitter(
      k, mid1, brightness=0, saturation=0, hue=0, p=1.0))(keys))
  np.testing.assert_allclose(outs.mean(axis=(1, 2, 3)),
                             np.full(16, mid1.mean()), atol=1e-5)
  # p = 0 and all strengths 0: identity.
  np.testing.assert_array_equal(A.color_jitter(KEY, IMG3, p=0.0), IMG3)
  np.testing.assert_array_equal(
      A.color_jitter(KEY, IMG3, brightness=0, contrast=0, saturation=0, hue=0,
                     p=1.0), IMG3)


# --------------------------------------------------------------------------
# SimCLR views
# --------------------------------------------------------------------------

BATCH_U8 = (np.random.RandomState(1).rand(8, 16, 16, 3) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def views_fn():
  return jax.jit(A.simclr_views)


@pytest.fixture(scope="module")
def reference_views(views_fn):
  return jax.device_get(views_fn(KEY, BATCH_U8))


def test_simclr_views_rgb_uint8(views_fn, reference_views):
  v1, v2 = reference_views
  for v in (v1, v2):
    chex.assert_shape(v, (8, 16, 16, 3))
    assert v.dtype == np.float32
    assert v.min() >= 0.0 and v.max() <= 1.0
  # Deterministic for a fixed key; a different key or view differs.
  again = jax.device_get(views_fn(KEY, BATCH_U8))
  chex.assert_trees_all_equal(again, reference_views)
  other = jax.device_get(views_fn(jax.random.key(1), BATCH_U8))
  assert not np.allclose(other[0], v1)
  for i in range(8):
    assert not np.allclose(v1[i], v2[i])


def test_simclr_views_gray_resize():
  images = np.random.RandomState(2).rand(4, 28, 28, 1).astype(np.float32)
  fn = jax.jit(lambda k, x: A.simclr_views(k, x, size=(20, 20),
                                           blur_p=1.0, solarize_p=0.5))
  v1, v2 = fn(KEY, images)
  for v in (v1, v2):
    chex.assert_shape(v, (4, 20, 20, 1))
    chex.assert_type(v, jnp.float32)
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
  assert not np.allclose(v1, v2)


def test_simclr_views_sharded_matches_unsharded(views_fn, reference_views):
  require_devices(8)
  mesh = make_data_mesh()
  batch = jax.device_put(BATCH_U8, data_sharding(mesh, 4))
  v1, v2 = views_fn(KEY, batch)
  assert v1.sharding.spec[0] == "data"
  np.testing.assert_allclose(v1, reference_views[0], atol=1e-5)
  np.testing.assert_allclose(v2, reference_views[1], atol=1e-5)


def test_batch_apply_explicit_mesh_matches_unsharded():
  # Explicit axes: vmapped depthwise conv (blur) is a sharding type error
  # unless the per-example map runs per shard (map_examples -> shard_map).
  require_devices(8)
  images = A.to_float(BATCH_U8)
  fn = jax.jit(lambda k, x: A.batch_apply(
      A.random_gaussian_blur, k, x, kernel_size=3, p=0.5))
  expected = fn(KEY, images)
  mesh = make_data_mesh(explicit=True)
  sharded = jax.device_put(images, data_sharding(mesh, 4))
  with jax.set_mesh(mesh):
    got = fn(KEY, sharded)
  assert got.sharding.spec[0] == "data"
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_batch_apply_equals_vmap_over_split_keys():
  @jax.jit
  def both(key, images):
    got = A.batch_apply(A.random_flip_left_right, key, images, p=0.5)
    want = jax.vmap(lambda k, x: A.random_flip_left_right(k, x, p=0.5))(
        jax.random.split(key, images.shape[0]), images)
    return got, want

  got, want = both(KEY, A.to_float(BATCH_U8))
  np.testing.assert_array_equal(got, want)
