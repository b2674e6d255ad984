"""ssljax.cpu.conv (conv_matmul_wgrad, conv_cpu): same values and gradients
as lax.conv_general_dilated."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ssljax.cpu import conv as conv_lib
from ssljax.models import SmallResNet

DN = ("NHWC", "HWIO", "NHWC")


def _numpy_weight_grad(x, g, kh, kw, stride, pad):
  """dW[i,j,c,o] = sum_{n,h,w} xpad[n, s*h+i, s*w+j, c] g[n,h,w,o], by loops."""
  xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0))).astype(np.float64)
  n, ho, wo, cout = g.shape
  dw = np.zeros((kh, kw, x.shape[-1], cout))
  for i in range(kh):
    for j in range(kw):
      win = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
      dw[i, j] = np.einsum("nhwc,nhwo->co", win, g)
  return dw


@pytest.mark.parametrize("shape,k,stride,cin_patch", [
    ((2, 9, 9, 1), 3, 1, True),       # stem-like: one input channel
    ((2, 10, 10, 4), 3, 2, True),     # strided
    ((2, 8, 8, 4), 1, 2, True),       # 1x1 projection
    ((2, 5, 5, 6), 3, 1, False),      # slices path (forced below)
])
def test_values_and_gradients_match_lax(shape, k, stride, cin_patch, monkeypatch):
  if not cin_patch:
    monkeypatch.setattr(conv_lib, "PATCHES_MAX_CIN", 1)
  kx, kw_, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, shape)
  w = jax.random.normal(kw_, (k, k, shape[-1], 5))
  pad = ((k // 2, k // 2),) * 2
  dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
  ref = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), pad,
                                              dimension_numbers=dn)
  new = lambda x, w: conv_lib.conv_matmul_wgrad(x, w, (stride, stride), pad,
                                                dimension_numbers=dn)
  y_ref = ref(x, w)
  g = jax.random.normal(kg, y_ref.shape)
  loss = lambda f: (lambda x, w: jnp.sum(f(x, w) * g))
  y_new = jax.jit(new)(x, w)
  gx_ref, gw_ref = jax.grad(loss(ref), (0, 1))(x, w)
  gx_new, gw_new = jax.jit(jax.grad(loss(new), (0, 1)))(x, w)
  np.testing.assert_allclose(y_new, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gx_new, gx_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gw_new, gw_ref, rtol=1e-4, atol=1e-4)
  # and against loops over the formula, independently of XLA
  np.testing.assert_allclose(
      gw_new, _numpy_weight_grad(np.asarray(x), np.asarray(g), k, k, stride, pad),
      rtol=1e-4, atol=1e-4)


def test_string_padding_and_fallback():
  x = jax.random.normal(jax.random.key(1), (1, 7, 7, 3))
  w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
  dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
  for kw in ({"padding": "SAME"}, {"padding": "VALID"},
             {"padding": "SAME", "rhs_dilation": (2, 2)}):   # dilation: fallback
    pad = kw.pop("padding")
    ref = lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=dn, **kw)
    new = conv_lib.conv_matmul_wgrad(x, w, (1, 1), pad, dimension_numbers=dn, **kw)
    np.testing.assert_allclose(new, ref, rtol=1e-5, atol=1e-5)


def test_resnet_rejects_an_unknown_conv_impl():
  # (that both implementations give the same training step, sharded or not,
  # is the SimCLR test at the end of this file)
  x = jnp.ones((1, 8, 8, 1))
  with pytest.raises(ValueError, match=r"conv_impl must be one of \['auto', .*'xla'\]; got 'cudnn'"):
    SmallResNet(conv_impl="cudnn").init(jax.random.key(0), x)


def test_flax_conv_accepts_it():
  layer = nn.Conv(3, (3, 3), conv_general_dilated=conv_lib.conv_matmul_wgrad)
  x = jnp.ones((1, 5, 5, 2))
  params = layer.init(jax.random.key(0), x)
  ref = nn.Conv(3, (3, 3)).apply(params, x)
  np.testing.assert_allclose(layer.apply(params, x), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["matmul", "cpu", "onednn"])
def test_simclr_steps_sharded_equal_xla_single_device(impl):
  """encoder.conv_impl="matmul" or "cpu": two SimCLR steps on 8 (faked)
  devices with the batch sharded give the loss, parameters and BN statistics
  of XLA's own convolutions on one device. (Two steps: at initialization the
  zero-initialized last BN scale of each block stops the gradient of its
  convolutions; the second step has them.)"""
  from helpers import require_devices, tiny_config, tiny_dataset  # pylint: disable=import-outside-toplevel
  from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import build_method  # pylint: disable=import-outside-toplevel
  require_devices(8)
  ds = tiny_dataset(n=32)
  images = ds.images[:16]
  key = jax.random.key(5)
  out = {}
  for name in ("xla", impl):
    config = tiny_config()
    config.optimizer.warmup_epochs = 0.0
    config.encoder.conv_impl = name
    method, _ = build_method(config, len(ds))
    state = method.init(jax.random.key(0), ds.image_shape)
    step = jax.jit(method.train_step)
    if name == "xla":
      init = state
      for k in jax.random.split(key):
        state, metrics = step(state, jnp.asarray(images), k)
    else:
      mesh = make_data_mesh()
      with jax.set_mesh(mesh):
        state = jax.device_put(state, replicated_sharding(mesh))
        for k in jax.random.split(key):
          state, metrics = step(state, jax.device_put(images, data_sharding(mesh, 4)), k)
    out[name] = state, metrics
  (ref_state, ref_m), (got_state, got_m) = out["xla"], out[impl]
  moved = [float(jnp.abs(a - b).max())
           for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(ref_state.params),
                                jax.tree.leaves(init.params))
           if "Conv_1" in jax.tree_util.keystr(p)]
  assert moved and min(moved) > 0      # the blocks' convolutions did train
  np.testing.assert_allclose(got_m["loss"], ref_m["loss"], rtol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
  jax.tree.map(close, got_state.params, ref_state.params)
  jax.tree.map(close, got_state.batch_stats, ref_state.batch_stats)



def _numpy_conv(x, w, stride, pad):
  """y[n,h,w,o] = sum_{i,j,c} xpad[n, s*h+i, s*w+j, c] w[i,j,c,o], by loops."""
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), pad[0], pad[1], (0, 0)))
  kh, kw = w.shape[:2]
  ho = (xp.shape[1] - kh) // stride + 1
  wo = (xp.shape[2] - kw) // stride + 1
  y = 0
  for i in range(kh):
    for j in range(kw):
      win = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
      y = y + np.einsum("nhwc,co->nhwo", win, np.asarray(w[i, j], np.float64))
  return y


# (input shape, kernel, stride, padding, the conv_cpu paths expected:
#  forward "taps"/"lax", input gradient "s2d"/"lax", weight gradient
#  "matmul"/"lax")
CPU_CASES = [
    ((2, 9, 9, 1), 3, 1, ((1, 1), (1, 1)), ("taps", "lax", "matmul")),   # stem
    ((2, 8, 8, 3), 3, 2, ((1, 1), (1, 1)), ("taps", "s2d", "matmul")),   # RGB, strided
    ((2, 8, 8, 6), 1, 2, ((0, 0), (0, 0)), ("lax", "lax", "matmul")),    # 1x1 shortcut
    ((2, 10, 10, 16), 3, 2, ((1, 1), (1, 1)), ("lax", "s2d", "lax")),
    ((2, 10, 11, 5), 5, 3, ((2, 1), (0, 2)), ("lax", "s2d", "lax")),     # odd pads
    ((2, 7, 8, 4), 4, 2, ((1, 2), (1, 1)), ("lax", "s2d", "lax")),       # even kernel
    ((2, 7, 7, 20), 3, 2, ((1, 1), (1, 1)), ("lax", "lax", "lax")),      # many channels
    ((2, 7, 7, 8), 3, 1, ((1, 1), (1, 1)), ("lax", "lax", "lax")),       # stride 1
    ((2, 8, 8, 7), 7, 2, ((3, 3), (3, 3)), ("lax", "s2d", "lax")),       # ImageNet-like stem
    # feature maps smaller than the kernel: one im2col product each way
    ((3, 2, 2, 12), 3, 1, ((1, 1), (1, 1)), ("patches",) * 3),
    ((3, 1, 1, 12), 3, 1, ((1, 1), (1, 1)), ("patches",) * 3),
    ((3, 2, 2, 12), 3, 2, ((1, 1), (1, 1)), ("patches",) * 3),           # strided
    ((3, 2, 5, 2), 3, 1, ((1, 1), (1, 1)), ("patches",) * 3),            # H < kh only
    ((3, 3, 3, 12), 3, 1, ((1, 1), (1, 1)), ("lax", "lax", "lax")),      # as large: lax
]


@pytest.mark.parametrize("shape,k,stride,pad,paths", CPU_CASES)
def test_conv_cpu_paths_values_and_gradients(shape, k, stride, pad, paths,
                                             monkeypatch):
  """conv_impl="cpu": each layer takes the expected formulation, and its
  output and both gradients equal lax's and loops over the formula."""
  taken = set()

  def spy(name, tag):
    real = getattr(conv_lib, name)
    monkeypatch.setattr(conv_lib, name,
                        lambda *a, **kw: taken.add(tag) or real(*a, **kw))

  spy("_taps_conv", "taps")
  spy("_space_to_depth_conv", "s2d")
  spy("weight_gradient", "matmul")
  spy("_patches_conv", "patches")
  x = jax.random.normal(jax.random.key(3), shape)
  w = jax.random.normal(jax.random.key(4), (k, k, shape[-1], 5))
  dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
  ref = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), pad,
                                              dimension_numbers=dn)
  new = lambda x, w: conv_lib.conv_cpu(x, w, (stride, stride), pad,
                                       dimension_numbers=dn)
  y = jax.jit(new)(x, w)
  np.testing.assert_allclose(y, _numpy_conv(x, w, stride, pad), rtol=1e-4, atol=1e-4)
  g = jax.random.normal(jax.random.key(5), y.shape)
  loss = lambda f: (lambda x, w: jnp.sum(f(x, w) * g))
  gx, gw = jax.jit(jax.grad(loss(new), (0, 1)))(x, w)
  gx_ref, gw_ref = jax.grad(loss(ref), (0, 1))(x, w)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(gw, gw_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      gw, _numpy_weight_grad(np.asarray(x), np.asarray(g), k, k, stride, pad),
      rtol=1e-4, atol=1e-4)
  fwd, dx, dw = paths
  assert ("patches" in taken) == (fwd == "patches")
  assert ("taps" in taken) == (fwd == "taps")
  assert ("s2d" in taken) == (dx == "s2d")
  assert ("matmul" in taken) == (dw == "matmul")


def test_conv_cpu_string_padding_and_fallback():
  x = jax.random.normal(jax.random.key(1), (1, 7, 7, 3))
  w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
  dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
  for strides, kw in (((2, 2), {"padding": "SAME"}), ((1, 1), {"padding": "VALID"}),
                      ((1, 1), {"padding": "SAME", "rhs_dilation": (2, 2)})):
    pad = kw.pop("padding")
    ref = lax.conv_general_dilated(x, w, strides, pad, dimension_numbers=dn, **kw)
    new = conv_lib.conv_cpu(x, w, strides, pad, dimension_numbers=dn, **kw)
    np.testing.assert_allclose(new, ref, rtol=1e-5, atol=1e-5)


def test_conv_cpu_bfloat16_like_lax():
  """Mixed precision (``compute_dtype=bfloat16``): every conv_cpu path keeps
  the dtype and is as close to the float32 result as lax's bf16 convolution
  (the stem's broadcast products sum in float32)."""
  for shape, k, stride in (((2, 9, 9, 1), 3, 1), ((2, 10, 10, 16), 3, 2),
                           ((2, 8, 8, 6), 1, 2), ((2, 2, 2, 16), 3, 1)):
    x = jax.random.normal(jax.random.key(3), shape)
    w = jax.random.normal(jax.random.key(4), (k, k, shape[-1], 5))
    pad = ((k // 2, k // 2),) * 2
    dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
    exact = lax.conv_general_dilated(x, w, (stride, stride), pad, dimension_numbers=dn)
    xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    f = lambda a, b, conv: jnp.sum(conv(a, b, (stride, stride), pad, dimension_numbers=dn)
                                   .astype(jnp.float32) * exact)
    y = jax.jit(lambda a, b: conv_lib.conv_cpu(a, b, (stride, stride), pad,
                                               dimension_numbers=dn))(xb, wb)
    y_lax = lax.conv_general_dilated(xb, wb, (stride, stride), pad, dimension_numbers=dn)
    assert y.dtype == jnp.bfloat16
    err = float(jnp.abs(y.astype(jnp.float32) - exact).max())
    err_lax = float(jnp.abs(y_lax.astype(jnp.float32) - exact).max())
    assert err <= 2 * err_lax + 1e-2, (shape, err, err_lax)
    gx, gw = jax.grad(lambda a, b: f(a, b, conv_lib.conv_cpu), (0, 1))(xb, wb)
    gx_l, gw_l = jax.grad(lambda a, b: f(a, b, lax.conv_general_dilated), (0, 1))(xb, wb)
    assert gx.dtype == gw.dtype == jnp.bfloat16
    for a, b in ((gx, gx_l), (gw, gw_l)):
      a, b = a.astype(jnp.float32), b.astype(jnp.float32)
      assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 2e-2


def test_small_map_benchmark_sides_agree():
  """benchmarks/small_map_conv.py's smoke run: both sides (XLA's convolution,
  conv_cpu's patches) give the same outputs and gradients on every layer, or
  it refuses to time (returns 1)."""
  import small_map_conv   # benchmarks/ is on pytest's pythonpath  # noqa: PLC0415
  assert small_map_conv.main(["--quick"]) == 0
