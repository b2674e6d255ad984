"""Encoders and heads: shapes, parameter counts, stems, BN over the global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import require_devices
from ssljax.models import (EncoderWithHead, ProjectionMLP, ResNet18, ResNet50,
                           SmallResNet, get_encoder)
from ssljax.parallel import data_sharding, make_data_mesh


def _count(params):
  return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize("ctor,stem,expected", [
    # torchvision resnet18 / resnet50 without the fc layer: 11,176,512 and
    # 23,508,032 parameters (ImageNet stem, 3 input channels).
    (ResNet18, "imagenet", 11_176_512),
    (ResNet50, "imagenet", 23_508_032),
])
def test_resnet_parameter_counts_match_torchvision(ctor, stem, expected):
  model = ctor(stem=stem)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                             jnp.zeros((1, 64, 64, 3))))
  assert _count(shapes["params"]) == expected


def test_cifar_stem_keeps_resolution_imagenet_stem_divides_by_4():
  x = jnp.zeros((2, 32, 32, 3))
  for stem, side in (("cifar", 32), ("imagenet", 8)):
    model = ResNet18(stem=stem, widths=(8, 16, 32, 64))
    # Shapes only: eval_shape traces the network without running it.
    _, state = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), x,
        capture_intermediates=lambda m, _: m.name == "BasicBlock_0"))
    inter = state["intermediates"]
    assert inter["BasicBlock_0"]["__call__"][0].shape[1] == side


def test_encoders_output_shapes():
  x = jnp.zeros((2, 28, 28, 1))
  small = SmallResNet()
  v = jax.jit(small.init)(jax.random.key(0), x)
  assert jax.jit(lambda v, x: small.apply(v, x, train=False))(v, x).shape == (2, 128)
  assert small.features == 128
  r50 = get_encoder("resnet50", widths=(4, 8, 16, 32))
  x3 = jnp.zeros((2, 32, 32, 3))
  v50 = jax.eval_shape(r50.init, jax.random.key(0), x3)
  assert jax.eval_shape(lambda v: r50.apply(v, x3, train=False),
                        v50).shape == (2, 128)
  with pytest.raises(ValueError, match="unknown encoder"):
    get_encoder("vgg")
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    small.apply(v, jnp.zeros((28, 28, 1)))


def test_out_width_adds_a_1x1_head_convolution_before_the_pooling():
  x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
  base = SmallResNet(widths=(4, 8, 16))
  wide = SmallResNet(widths=(4, 8, 16), out_width=24)
  assert (base.features, wide.features) == (16, 24)
  v = jax.jit(wide.init)(jax.random.key(0), x)
  assert v["params"]["out_conv"]["kernel"].shape == (1, 1, 16, 24)
  # Random BN scale/bias so the check sees them; eval mode uses running stats.
  ks = jax.random.split(jax.random.key(2), 4)
  p = dict(v["params"])
  p["out_bn"] = {"scale": jax.random.uniform(ks[0], (24,), minval=0.5, maxval=2),
                 "bias": jax.random.normal(ks[1], (24,))}
  stats = dict(v["batch_stats"])
  stats["out_bn"] = {"mean": jax.random.normal(ks[2], (24,)),
                     "var": jax.random.uniform(ks[3], (24,), minval=0.5, maxval=2)}
  v = {"params": p, "batch_stats": stats}
  out, inter = jax.jit(lambda v, x: wide.apply(
      v, x, train=False, capture_intermediates=lambda m, _: m.name == "BasicBlock_2"))(v, x)
  last = np.asarray(inter["intermediates"]["BasicBlock_2"]["__call__"][0], np.float64)
  assert last.shape == (3, 7, 7, 16)
  w = np.asarray(p["out_conv"]["kernel"], np.float64)[0, 0]
  bn_s, bn_b = (np.asarray(p["out_bn"][k], np.float64) for k in ("scale", "bias"))
  mu, var = (np.asarray(stats["out_bn"][k], np.float64) for k in ("mean", "var"))
  y = np.einsum("nhwc,cd->nhwd", last, w)
  y = np.maximum((y - mu) / np.sqrt(var + 1e-5) * bn_s + bn_b, 0)
  np.testing.assert_allclose(np.asarray(out), y.mean(axis=(1, 2)), rtol=1e-4,
                             atol=1e-5)
  assert out.shape == (3, 24)
  with pytest.raises(ValueError, match=r"out_width = -1: must be >= 0"):
    SmallResNet(widths=(4, 8, 16), out_width=-1).init(jax.random.key(0), x)


def test_projection_mlp_structure():
  h = jnp.ones((4, 32))
  head = ProjectionMLP(out_dim=16, num_layers=3)
  v = head.init(jax.random.key(0), h)
  dense = sorted(k for k in v["params"] if k.startswith("Dense"))
  assert [v["params"][k]["kernel"].shape for k in dense] == [(32, 32), (32, 32),
                                                              (32, 16)]
  assert head.apply(v, h, mutable=["batch_stats"])[0].shape == (4, 16)
  linear = ProjectionMLP(out_dim=8, num_layers=1)
  v = linear.init(jax.random.key(0), h)
  assert list(v["params"]) == ["Dense_0"]


def test_batchnorm_statistics_span_the_global_batch():
  """Sharded over 8 devices, BN uses the mean of all 16 examples."""
  require_devices(8)
  model = EncoderWithHead(SmallResNet(widths=(4, 8), stage_sizes=(1, 1)),
                          ProjectionMLP(out_dim=4))
  x = jax.random.normal(jax.random.key(1), (16, 8, 8, 1)) + jnp.arange(16)[:, None,
                                                                           None, None]
  v = model.init(jax.random.key(0), x)
  f = jax.jit(lambda v, x: model.apply(v, x, mutable=["batch_stats"]))
  (h1, z1), s1 = f(v, x)
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    (h8, z8), s8 = f(v, jax.device_put(x, data_sharding(mesh, 4)))
  np.testing.assert_allclose(z8, z1, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(s8["batch_stats"]["encoder"]["stem_bn"]["mean"],
                             s1["batch_stats"]["encoder"]["stem_bn"]["mean"],
                             rtol=1e-5, atol=1e-6)
  # and the stem BN running mean moved by 0.1 * the global batch mean
  stem = v["params"]["encoder"]["stem_conv"]["kernel"]
  conv = jax.lax.conv_general_dilated(x, stem, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(s1["batch_stats"]["encoder"]["stem_bn"]["mean"],
                             0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
