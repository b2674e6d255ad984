"""conv_impl="onednn": oneDNN convolutions as XLA custom calls
(ssljax/cpu/onednn.py, onednn_conv.cc), checked against loops over the
convolution's formula in numpy, against lax, and in a sharded train step."""

import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ssljax.cpu import conv as conv_lib
from ssljax.cpu import onednn
from test_conv import _numpy_conv, _numpy_weight_grad

DN = ("NHWC", "HWIO", "NHWC")


def _numpy_input_grad(g, w, x_shape, stride, pad):
  """dx[n, s*h+i-pt, s*w+j-pl, c] += sum_o g[n,h,w,o] w[i,j,c,o], by loops."""
  n, hh, ww, c = x_shape
  kh, kw = w.shape[:2]
  dxp = np.zeros((n, hh + pad[0][0] + pad[0][1], ww + pad[1][0] + pad[1][1], c))
  _, ho, wo, _ = g.shape
  g64, w64 = np.asarray(g, np.float64), np.asarray(w, np.float64)
  for i in range(kh):
    for j in range(kw):
      dxp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += (
          np.einsum("nhwo,co->nhwc", g64, w64[i, j]))
  return dxp[:, pad[0][0]:pad[0][0] + hh, pad[1][0]:pad[1][0] + ww]


def test_the_kernels_build_and_load_here():
  """The project's set-up installs oneDNN and builds the kernels: on this
  platform conv_impl="onednn" must not be a silent fallback."""
  if not (sys.platform == "linux" and __import__("platform").machine() == "x86_64"):
    pytest.fail("ssljax's oneDNN kernels are built for x86-64 Linux, where CI runs")
  assert onednn.available(), onednn.unavailable_reason()
  assert onednn.onednn_version() >= (3, 0, 0)
  assert onednn.library_path().is_file()


CASES = [   # input shape, kernel, stride, padding
    ((3, 9, 9, 1), 3, 1, ((1, 1), (1, 1))),       # stem
    ((2, 10, 10, 16), 3, 2, ((1, 1), (1, 1))),     # strided 3x3
    ((2, 8, 8, 6), 1, 2, ((0, 0), (0, 0))),        # 1x1 shortcut
    ((2, 7, 7, 8), 3, 1, ((1, 1), (1, 1))),        # stride 1
    ((2, 10, 11, 5), 5, 3, ((2, 1), (0, 2))),      # odd, asymmetric pads
    ((2, 7, 8, 4), 4, 2, ((1, 2), (1, 1))),        # even kernel
    ((1, 8, 8, 3), 7, 2, ((3, 3), (3, 3))),        # ImageNet-like stem
]


@pytest.mark.parametrize("shape,k,stride,pad", CASES)
def test_forward_and_both_gradients_equal_the_formula(shape, k, stride, pad):
  x = jax.random.normal(jax.random.key(3), shape)
  w = jax.random.normal(jax.random.key(4), (k, k, shape[-1], 5))
  st = (stride, stride)
  y = jax.jit(lambda x, w: onednn.conv(x, w, st, pad))(x, w)
  np.testing.assert_allclose(y, _numpy_conv(x, w, stride, pad), rtol=1e-4, atol=1e-4)
  g = jax.random.normal(jax.random.key(5), y.shape)
  gx, gw = jax.jit(jax.grad(lambda x, w: jnp.sum(onednn.conv(x, w, st, pad) * g),
                            (0, 1)))(x, w)
  np.testing.assert_allclose(gx, _numpy_input_grad(g, w, shape, stride, pad),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      gw, _numpy_weight_grad(np.asarray(x), np.asarray(g), k, k, stride, pad),
      rtol=1e-4, atol=1e-4)
  # and each pass is one custom call in the compiled program
  hlo = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(onednn.conv(x, w, st, pad) * g),
                                   (0, 1))).lower(x, w).compile().as_text()
  for target in onednn.TARGETS.values():
    assert f'custom_call_target="{target}"' in hlo


def test_conv_onednn_drop_in_routes_layers_and_matches_lax(monkeypatch):
  """The drop-in for flax's nn.Conv: float32 layers go to oneDNN (by
  default all of them, the wide layers of a standard ResNet included),
  layers wider than ONEDNN_MAX_COUT outputs and bfloat16 to conv_cpu;
  string padding works; values equal lax's."""
  def run(shape, cout, dtype=jnp.float32, padding="SAME", strides=(2, 2)):
    x = jax.random.normal(jax.random.key(1), shape).astype(dtype)
    w = jax.random.normal(jax.random.key(2), (3, 3, shape[-1], cout)).astype(dtype)
    dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
    f = lambda x, w: jnp.sum(conv_lib.conv_onednn(x, w, strides, padding,
                                                  dimension_numbers=dn) ** 2)
    ref = lambda x, w: jnp.sum(lax.conv_general_dilated(x, w, strides, padding,
                                                        dimension_numbers=dn) ** 2)
    hlo = jax.jit(jax.grad(f, (0, 1))).lower(x, w).compile().as_text()
    got, want = jax.jit(jax.grad(f, (0, 1)))(x, w), jax.grad(ref, (0, 1))(x, w)
    tol = 1e-4 if dtype == jnp.float32 else 5e-2
    for a, b in zip(got, want):
      a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
      assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b)
    return "ssljax_onednn_conv" in hlo

  assert run((2, 9, 9, 16), 16)
  assert run((2, 9, 9, 16), 64, padding="VALID", strides=(1, 1))
  assert run((2, 5, 5, 64), 512)                 # the default: every width
  assert not run((2, 9, 9, 16), 16, dtype=jnp.bfloat16)
  monkeypatch.setattr(conv_lib, "ONEDNN_MAX_COUT", 64)
  assert not run((2, 5, 5, 64), 65)


def test_unavailable_kernels_fall_back_to_conv_cpu_with_one_warning(monkeypatch):
  monkeypatch.setattr(onednn, "available", lambda: False)
  monkeypatch.setattr(onednn, "unavailable_reason",
                      lambda: "oneDNN headers not found (test)")
  monkeypatch.setattr(conv_lib, "_warned", set())
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, 4))
  w = jax.random.normal(jax.random.key(2), (3, 3, 4, 8))
  dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)
  f = jax.jit(lambda x, w: conv_lib.conv_onednn(x, w, (1, 1), "SAME",
                                                dimension_numbers=dn))
  with pytest.warns(UserWarning, match="falls back to conv_impl='cpu'.*headers not found"):
    hlo = f.lower(x, w).compile().as_text()
  assert "ssljax_onednn_conv" not in hlo
  with warnings.catch_warnings():
    warnings.simplefilter("error")          # only one warning per reason
    jax.jit(lambda x, w: conv_lib.conv_onednn(x, w, (2, 2), "SAME",
                                              dimension_numbers=dn)).lower(x, w)
  np.testing.assert_allclose(
      f(x, w), lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn),
      rtol=1e-5, atol=1e-5)


def test_build_errors_name_the_problem_and_the_fix(monkeypatch, tmp_path):
  monkeypatch.setattr(onednn, "_prefixes", lambda: [str(tmp_path)])
  with pytest.raises(onednn.OneDNNUnavailable, match=r"oneDNN headers.*pip install 'ssljax\[cpu\]'"):
    onednn.onednn_paths()
  monkeypatch.setattr(onednn, "BUILD_DIR", tmp_path / "build")
  monkeypatch.setattr(onednn, "onednn_paths", lambda: (tmp_path, tmp_path))
  monkeypatch.setenv("CXX", "/nonexistent/g++")
  with pytest.raises(onednn.OneDNNUnavailable, match=r"C\+\+ compiler"):
    onednn.build(force=True)
  assert not list((tmp_path / "build").glob("*.so"))      # nothing half-written


def test_mismatched_shapes_are_a_clear_error():
  x = jnp.ones((2, 8, 8, 4))
  w = jnp.ones((3, 3, 5, 8))
  with pytest.raises(ValueError, match="input channels"):
    onednn.conv(x, w, (1, 1), ((1, 1), (1, 1)))
  with pytest.raises(ValueError, match="float32"):
    onednn.conv(x.astype(jnp.bfloat16), w[:, :, :4].astype(jnp.bfloat16),
                (1, 1), ((1, 1), (1, 1)))
  # the handler's own check (an output shape that disagrees)
  bad = jax.ffi.ffi_call(onednn.TARGETS["SsljaxConvFwd"],
                         jax.ShapeDtypeStruct((2, 8, 8, 7), jnp.float32))
  with pytest.raises(Exception, match="shapes disagree"):
    jax.block_until_ready(bad(x, jnp.ones((3, 3, 4, 8)), **onednn._attrs(  # pylint: disable=protected-access
        (1, 1), ((1, 1), (1, 1)))))


def test_vmap_folds_the_mapped_axis_into_the_batch_and_maps_the_rest():
  """Under jax.vmap (MoCo's shuffle-BN sub-batches run the key encoder as a
  vmap over groups): images batched, kernel shared -> one call on the
  merged batch; batched kernels and the weight gradient -> one call per
  index. Values and gradients equal lax's, and the forward pass with a
  shared kernel stays a single custom call."""
  xs = jax.random.normal(jax.random.key(1), (3, 2, 7, 7, 4))
  w = jax.random.normal(jax.random.key(2), (3, 3, 4, 6))
  ws = jax.random.normal(jax.random.key(3), (3, 3, 3, 4, 6))
  pad = ((1, 1), (1, 1))
  lax_conv = lambda x, w: lax.conv_general_dilated(x, w, (2, 2), pad, dimension_numbers=DN)
  ours = lambda x, w: onednn.conv(x, w, (2, 2), pad)
  fwd = jax.jit(jax.vmap(ours, in_axes=(0, None)))
  np.testing.assert_allclose(fwd(xs, w), jax.vmap(lax_conv, in_axes=(0, None))(xs, w),
                             rtol=1e-5, atol=1e-5)
  assert fwd.lower(xs, w).compile().as_text().count("custom_call_target=") == 1
  np.testing.assert_allclose(jax.jit(jax.vmap(ours))(xs, ws), jax.vmap(lax_conv)(xs, ws),
                             rtol=1e-5, atol=1e-5)
  loss = lambda conv: (lambda xs, w: jnp.sum(jax.vmap(conv, in_axes=(0, None))(xs, w) ** 2))
  got = jax.jit(jax.grad(loss(ours), (0, 1)))(xs, w)
  want = jax.grad(loss(lax_conv), (0, 1))(xs, w)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
