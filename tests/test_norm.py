"""ssljax.models.norm: the fused BatchNorm (+ residual + ReLU) and its VJP.

Oracles: numpy written from Ioffe & Szegedy (2015), algorithm 1 and the
backpropagation equations of their section 3 (a different derivation from
the closed form the VJP uses), and flax's own ``nn.BatchNorm`` + ``nn.relu``
differentiated by JAX; under ``jax.jit`` and over 8 faked devices.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from helpers import require_devices
from ssljax.models import norm as norm_lib
from ssljax.models.resnet import ResNet18, ResNet50, SmallResNet
from ssljax.parallel import make_data_mesh

EPS = 1e-5


def np_bn_forward(x, gamma, beta, residual, relu, eps=EPS):
  """Ioffe & Szegedy, algorithm 1, over all axes but the channels."""
  x = x.astype(np.float64).reshape(-1, x.shape[-1])
  mu = x.mean(0)
  var = ((x - mu) ** 2).mean(0)
  xhat = (x - mu) / np.sqrt(var + eps)
  pre = gamma * xhat + beta
  if residual is not None:
    pre = pre + residual.reshape(pre.shape)
  y = np.maximum(pre, 0) if relu else pre
  return y, mu, var, xhat, pre


def np_bn_backward(x, gamma, beta, residual, relu, dy, eps=EPS):
  """Section 3 of the paper: dl/dxhat, dl/dvar, dl/dmu, dl/dx, dgamma, dbeta."""
  shape = x.shape
  y, mu, var, xhat, pre = np_bn_forward(x, gamma, beta, residual, relu, eps)
  x = x.astype(np.float64).reshape(-1, shape[-1])
  m = x.shape[0]
  g = dy.astype(np.float64).reshape(-1, shape[-1])
  if relu:
    g = g * (pre > 0)
  dxhat = g * gamma
  dvar = np.sum(dxhat * (x - mu), 0) * -0.5 * (var + eps) ** -1.5
  dmu = (np.sum(dxhat * -1 / np.sqrt(var + eps), 0)
         + dvar * np.sum(-2 * (x - mu), 0) / m)
  dx = dxhat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / m + dmu / m
  dgamma = np.sum(g * xhat, 0)
  dbeta = np.sum(g, 0)
  dres = None if residual is None else g.reshape(shape)
  return dx.reshape(shape), dgamma, dbeta, dres


def _inputs(seed, shape=(6, 5, 4, 7)):
  r = np.random.RandomState(seed)
  x = (r.randn(*shape) * 2.5 + r.randn(shape[-1]) * 3).astype(np.float32)
  gamma = (1 + 0.5 * r.randn(shape[-1])).astype(np.float32)
  beta = r.randn(shape[-1]).astype(np.float32)
  residual = r.randn(*shape).astype(np.float32)
  dy = r.randn(*shape).astype(np.float32)
  return x, gamma, beta, residual, dy


@pytest.mark.parametrize("use_residual", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_values_and_gradients_match_the_paper_formulas(use_residual, relu):
  x, gamma, beta, residual, dy = _inputs(0)
  residual = residual if use_residual else None

  def loss(x, gamma, beta, residual):
    y, _, _ = norm_lib.batch_norm(x, gamma, beta, residual, relu=relu)
    return jnp.sum(y * dy), y

  (_, y), grads = jax.jit(jax.value_and_grad(
      loss, argnums=(0, 1, 2, 3), has_aux=True))(x, gamma, beta, residual)
  want_y = np_bn_forward(x, gamma, beta, residual, relu)[0]
  np.testing.assert_allclose(np.asarray(y).reshape(want_y.shape), want_y,
                             rtol=1e-5, atol=1e-5)
  want = np_bn_backward(x, gamma, beta, residual, relu, dy)
  for got, w in zip(grads, want):
    if w is None:
      assert got is None
    else:
      np.testing.assert_allclose(np.asarray(got), w, rtol=1e-4, atol=1e-4)


def test_statistics_are_the_batch_mean_and_biased_variance():
  x, gamma, beta, _, _ = _inputs(1)
  _, mean, var = jax.jit(norm_lib.batch_norm)(x, gamma, beta)
  _, mu, v, _, _ = np_bn_forward(x, gamma, beta, None, False)
  np.testing.assert_allclose(mean, mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, v, rtol=1e-4, atol=1e-6)


def _flax_block(x, residual, relu, train, dtype=jnp.float32):
  """What the ResNet blocks computed before: nn.BatchNorm then add, relu."""

  class Old(nn.Module):
    @nn.compact
    def __call__(self, x, residual):
      y = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       epsilon=EPS, dtype=dtype, name="bn")(x)
      if residual is not None:
        y = y + residual
      return nn.relu(y) if relu else y
  return Old()


def _ours_block(relu, train, dtype=jnp.float32):

  class New(nn.Module):
    @nn.compact
    def __call__(self, x, residual):
      return norm_lib.BatchNorm(use_running_average=not train, momentum=0.9,
                                epsilon=EPS, dtype=dtype, name="bn")(
                                    x, residual=residual, relu=relu)
  return New()


@pytest.mark.parametrize("use_residual,relu", [(False, False), (False, True),
                                               (True, True)])
def test_module_matches_flax_batchnorm_relu(use_residual, relu):
  """Same variables, values, gradients and running-average updates."""
  x, _, _, residual, dy = _inputs(2)
  residual = residual if use_residual else None
  old, new = _flax_block(x, residual, relu, True), _ours_block(relu, True)
  v_old = old.init(jax.random.PRNGKey(0), x, residual)
  v_new = new.init(jax.random.PRNGKey(0), x, residual)
  assert (jax.tree.map(jnp.shape, v_old) == jax.tree.map(jnp.shape, v_new))
  # Non-trivial parameters and running statistics, the same in both.
  r = np.random.RandomState(3)
  v = jax.tree.map(lambda a: jnp.asarray(r.rand(*a.shape) + 0.5, a.dtype),
                   v_old)

  def run(model, v):
    def loss(params, x, residual):
      y, upd = model.apply({"params": params,
                            "batch_stats": v["batch_stats"]}, x, residual,
                           mutable=["batch_stats"])
      return jnp.sum(y * dy), (y, upd)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))(
        v["params"], x, residual)

  g_old, (y_old, s_old) = run(old, v)
  g_new, (y_new, s_new) = run(new, v)
  np.testing.assert_allclose(y_new, y_old, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves((g_new, s_new)),
                  jax.tree.leaves((g_old, s_old))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  # Evaluation mode (running averages) too.
  e_old = _flax_block(x, residual, relu, False).apply(v, x, residual)
  e_new = _ours_block(relu, False).apply(v, x, residual)
  np.testing.assert_allclose(e_new, e_old, rtol=1e-5, atol=1e-5)


def test_bfloat16_follows_float32():
  x, gamma, beta, residual, dy = _inputs(4)
  f = jax.jit(jax.grad(lambda x, r: jnp.sum(norm_lib.batch_norm(
      x, gamma, beta, r, relu=True)[0].astype(jnp.float32) * dy),
                       argnums=(0, 1)))
  g32 = f(x, residual)
  g16 = f(x.astype(jnp.bfloat16), residual.astype(jnp.bfloat16))
  assert g16[0].dtype == jnp.bfloat16 and g16[1].dtype == jnp.bfloat16
  for a, b in zip(g16, g32):
    np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=0.05,
                               atol=0.05)


def test_bad_residual_shape_is_named():
  x, gamma, beta, residual, _ = _inputs(5)
  with pytest.raises(ValueError, match="residual shape"):
    norm_lib.batch_norm(x, gamma, beta, residual[:, :2])


def test_statistics_span_the_global_batch_on_8_devices():
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8])
  x, gamma, beta, residual, dy = _inputs(6, shape=(16, 3, 3, 5))
  # Shards with different means: per-device statistics would differ.
  x = x + np.repeat(np.arange(8, dtype=np.float32) * 4, 2)[:, None, None,
                                                             None]

  def loss(x, gamma, beta, residual):
    y, mean, var = norm_lib.batch_norm(x, gamma, beta, residual, relu=True)
    return jnp.sum(y * dy), (mean, var)

  f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))
  single = f(x, gamma, beta, residual)
  batch = NamedSharding(mesh, P("data"))
  with jax.set_mesh(mesh):
    sharded = f(jax.device_put(x, batch), gamma, beta,
                jax.device_put(residual, batch))
  for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  want = np_bn_backward(x, gamma, beta, residual, True, dy)
  np.testing.assert_allclose(sharded[1][0], want[0], rtol=1e-4, atol=1e-4)


class _OldBasicResNet(nn.Module):
  """SmallResNet as it was written with nn.BatchNorm and nn.relu."""

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False)
    norm = functools.partial(nn.BatchNorm, use_running_average=False,
                             momentum=0.9, epsilon=EPS)
    x = nn.relu(norm(name="stem_bn")(conv(8, (3, 3), padding=1,
                                          name="stem_conv")(x)))
    for i, (w, s) in enumerate(((8, 1), (16, 2))):
      x = _OldBlock(w, s, name=f"BasicBlock_{i}")(x)
    return jnp.mean(x, axis=(1, 2))


class _OldBlock(nn.Module):
  filters: int
  strides: int

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False)
    norm = functools.partial(nn.BatchNorm, use_running_average=False,
                             momentum=0.9, epsilon=EPS)
    residual = x
    y = nn.relu(norm()(conv(self.filters, (3, 3), self.strides,
                            padding=1)(x)))
    y = norm(scale_init=nn.initializers.zeros)(
        conv(self.filters, (3, 3), padding=1)(y))
    if residual.shape != y.shape:
      residual = norm(name="proj_bn")(conv(self.filters, (1, 1),
                                           self.strides, name="proj_conv")(x))
    return nn.relu(residual + y)


def test_resnet_keeps_its_variables_and_function():
  """The fused ResNet has the old variable tree (checkpoints load) and
  computes the old function, gradients and running statistics included."""
  x = jnp.asarray(np.random.RandomState(7).randn(4, 8, 8, 3), jnp.float32)
  new = SmallResNet(widths=(8, 16), stage_sizes=(1, 1))
  old = _OldBasicResNet()
  v_new = new.init(jax.random.PRNGKey(0), x)
  v_old = old.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, v_new) == jax.tree.map(jnp.shape, v_old)
  # Non-zero last-BN scales, so the residual branch carries gradient.
  r = np.random.RandomState(8)
  v = jax.tree.map(lambda a: jnp.asarray(r.randn(*a.shape) * 0.3 + (
      1.0 if a.ndim == 1 else 0.0), a.dtype), v_new)
  v["batch_stats"] = jax.tree.map(jnp.abs, v["batch_stats"])

  def run(model):
    def loss(params):
      y, upd = model.apply({"params": params,
                            "batch_stats": v["batch_stats"]}, x,
                           mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y)), upd
    return jax.jit(jax.grad(loss, has_aux=True))(v["params"])

  for a, b in zip(jax.tree.leaves(run(new)), jax.tree.leaves(run(old))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("net", [ResNet18, ResNet50])
def test_standard_resnets_keep_their_variable_names(net):
  """Same names as nn.BatchNorm's auto-naming gave (BatchNorm_0, ...)."""
  x = jnp.zeros((2, 32, 32, 3))
  shapes = jax.eval_shape(net(stem="imagenet").init, jax.random.PRNGKey(0), x)
  block = shapes["params"]["BasicBlock_0" if net is ResNet18
                           else "BottleneckBlock_0"]
  names = sorted(k for k in block if "BatchNorm" in k or "bn" in k)
  want = (["BatchNorm_0", "BatchNorm_1"] if net is ResNet18
          else ["BatchNorm_0", "BatchNorm_1", "BatchNorm_2", "proj_bn"])
  assert names == want
  assert set(shapes["batch_stats"]["stem_bn"]) == {"mean", "var"}


def test_bn_layer_benchmark_smoke():
  """benchmarks/bn_layer.py's smoke run: both sides agree on every layer
  (values, gradients, running statistics) before anything is timed."""
  import bn_layer   # benchmarks/ is on pytest's pythonpath  # noqa: PLC0415
  assert bn_layer.main(["--quick"]) == 0
