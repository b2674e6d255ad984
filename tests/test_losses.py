"""Losses against independent numpy computations written from the papers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import require_devices
from ssljax import losses
from ssljax.parallel import data_sharding, make_data_mesh


def tol(rtol: float) -> float:
  """float32 tolerance: as given on CPU; on a GPU, transcendental functions and
  reduction order differ by a few ulp (seen on an H200: 1.4e-5 relative on a
  6x5 NT-Xent), so at least 5e-5 there."""
  return rtol if jax.default_backend() == "cpu" else max(rtol, 5e-5)


def _np_normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_nt_xent(z1, z2, t):
  """Chen et al. 2020, eq. (1), loop over anchors, float64."""
  z = _np_normalize(np.concatenate([z1, z2]).astype(np.float64))
  n2 = len(z)
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    j = (i + n) % n2
    sims = np.array([z[i] @ z[k] for k in range(n2)]) / t
    denom = sum(np.exp(sims[k]) for k in range(n2) if k != i)
    total += -np.log(np.exp(sims[j]) / denom)
  return total / n2


def np_info_nce(q, p, negs, t):
  q, p = _np_normalize(q.astype(np.float64)), _np_normalize(p.astype(np.float64))
  negs = _np_normalize(negs.astype(np.float64))
  out = []
  for i in range(len(q)):
    neg_i = negs if negs.ndim == 2 else negs[i]
    pos = np.exp(q[i] @ p[i] / t)
    neg = np.exp(neg_i @ q[i] / t).sum()
    out.append(-np.log(pos / (pos + neg)))
  return np.mean(out)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy(t):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  got = jax.jit(lambda a, b: losses.nt_xent(a, b, temperature=t))(z1, z2)
  np.testing.assert_allclose(got, np_nt_xent(z1, z2, t), rtol=tol(1e-5))


def test_nt_xent_matches_optax_ntxent():
  # optax.ntxent takes embeddings with class labels; positives are pairs that
  # share a label, and it averages over the 2N anchors as the paper does.
  rng = np.random.default_rng(1)
  z1, z2 = rng.normal(size=(2, 8, 16)).astype(np.float32)
  labels = jnp.concatenate([jnp.arange(8), jnp.arange(8)])
  ref = optax.ntxent(jnp.concatenate([z1, z2]), labels, temperature=0.5)
  got = losses.nt_xent(z1, z2, temperature=0.5)
  np.testing.assert_allclose(got, ref, rtol=tol(1e-5))


def test_nt_xent_hand_computed_perfect_pairs():
  # Two orthogonal pairs, each pair identical: s+ = 1, the other two rows are
  # orthogonal (s = 0). l = -log(e^{1/T} / (e^{1/T} + 2)).
  z1 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  t = 0.5
  expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + 2.0))
  np.testing.assert_allclose(losses.nt_xent(z1, z1, temperature=t), expected,
                             rtol=tol(1e-6))


def test_nt_xent_scale_invariant_and_symmetric():
  rng = np.random.default_rng(2)
  z1, z2 = rng.normal(size=(2, 5, 3)).astype(np.float32)
  a = losses.nt_xent(z1, z2, temperature=0.2)
  np.testing.assert_allclose(losses.nt_xent(3 * z1, 0.5 * z2, temperature=0.2), a,
                             rtol=tol(1e-5))
  np.testing.assert_allclose(losses.nt_xent(z2, z1, temperature=0.2), a, rtol=tol(1e-5))


def test_nt_xent_gradient_matches_finite_differences():
  rng = np.random.default_rng(3)
  z1, z2 = rng.normal(size=(2, 4, 3))
  f64 = lambda a: np_nt_xent(a.reshape(2, 4, 3)[0], a.reshape(2, 4, 3)[1], 0.5)
  x = np.concatenate([z1, z2]).ravel()
  num = np.zeros_like(x)
  h = 1e-5
  for i in range(len(x)):
    e = np.zeros_like(x)
    e[i] = h
    num[i] = (f64(x + e) - f64(x - e)) / (2 * h)
  g = jax.jit(jax.grad(lambda a: losses.nt_xent(a[:4], a[4:], temperature=0.5)))(
      jnp.asarray(np.concatenate([z1, z2]), jnp.float32))
  np.testing.assert_allclose(np.asarray(g).ravel(), num, atol=2e-4)


@pytest.mark.parametrize("shared", [True, False])
def test_info_nce_matches_numpy(shared):
  rng = np.random.default_rng(4)
  q, p = rng.normal(size=(2, 5, 8)).astype(np.float32)
  negs = rng.normal(size=(7, 8) if shared else (5, 7, 8)).astype(np.float32)
  got = jax.jit(lambda *a: losses.info_nce(*a, temperature=0.07))(q, p, negs)
  np.testing.assert_allclose(got, np_info_nce(q, p, negs, 0.07), rtol=tol(1e-5))


def test_info_nce_gradient_matches_finite_differences():
  rng = np.random.default_rng(5)
  q, p = rng.normal(size=(2, 3, 4))
  negs = rng.normal(size=(5, 4))
  h = 1e-5
  num = np.zeros_like(q)
  for idx in np.ndindex(q.shape):
    e = np.zeros_like(q)
    e[idx] = h
    num[idx] = (np_info_nce(q + e, p, negs, 0.2) - np_info_nce(q - e, p, negs, 0.2)) / (2 * h)
  g = jax.jit(jax.grad(lambda a: losses.info_nce(a, p.astype(np.float32),
                                                  negs.astype(np.float32),
                                                  temperature=0.2)))(
      q.astype(np.float32))
  np.testing.assert_allclose(g, num, atol=2e-4)


def test_info_nce_equals_nt_xent_rows():
  """nt_xent anchor i is InfoNCE with the 2N-2 other examples as negatives."""
  rng = np.random.default_rng(6)
  z1, z2 = rng.normal(size=(2, 4, 3)).astype(np.float32)
  z = np.concatenate([z1, z2])
  per_anchor = []
  for i in range(8):
    j = (i + 4) % 8
    negs = np.delete(z, [i, j], axis=0)
    per_anchor.append(losses.info_nce(z[i:i + 1], z[j:j + 1], negs, temperature=0.3))
  np.testing.assert_allclose(np.mean(per_anchor),
                             losses.nt_xent(z1, z2, temperature=0.3), rtol=tol(1e-5))


def test_mutual_information_lower_bound():
  np.testing.assert_allclose(losses.mutual_information_lower_bound(1.5, 256),
                             np.log(256) - 1.5, rtol=tol(1e-6))
  # A uniform classifier over N candidates has L = log N, bound 0.
  z = jnp.ones((4, 3))
  loss = losses.nt_xent(z, z, temperature=1.0)
  np.testing.assert_allclose(losses.mutual_information_lower_bound(loss, 7), 0.0,
                             atol=1e-6)


@pytest.mark.parametrize("bad", [
    lambda: losses.nt_xent(jnp.ones((4, 3)), jnp.ones((5, 3)), temperature=0.5),
    lambda: losses.nt_xent(jnp.ones((4,)), jnp.ones((4,)), temperature=0.5),
    lambda: losses.info_nce(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((5, 2)),
                            temperature=0.5),
    lambda: losses.info_nce(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((3, 5, 3)),
                            temperature=0.5),
])
def test_bad_shapes_raise_clear_errors(bad):
  with pytest.raises(ValueError, match="shape|must"):
    bad()


@pytest.mark.parametrize("explicit", [False, True])
def test_nt_xent_sharded_over_8_devices_is_global(explicit):
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8], explicit=explicit)
  rng = np.random.default_rng(7)
  z1, z2 = rng.normal(size=(2, 16, 8)).astype(np.float32)
  s1 = jax.device_put(z1, data_sharding(mesh, 2))
  s2 = jax.device_put(z2, data_sharding(mesh, 2))

  def f(a, b):
    return jax.value_and_grad(lambda a: losses.nt_xent(a, b, temperature=0.5))(a)

  with jax.set_mesh(mesh):
    loss, grad = jax.jit(f)(s1, s2)
  ref_loss, ref_grad = jax.jit(f)(jnp.asarray(z1), jnp.asarray(z2))
  np.testing.assert_allclose(loss, np_nt_xent(z1, z2, 0.5), rtol=tol(1e-5))
  np.testing.assert_allclose(loss, ref_loss, rtol=tol(1e-6))
  np.testing.assert_allclose(grad, ref_grad, rtol=tol(1e-5), atol=1e-7)
  # The gradient keeps the batch sharding of its input.
  assert grad.sharding.spec[0] == "data"


def test_info_nce_sharded_queries_shared_queue():
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8], explicit=True)
  rng = np.random.default_rng(8)
  q, p = rng.normal(size=(2, 16, 8)).astype(np.float32)
  negs = rng.normal(size=(32, 8)).astype(np.float32)
  qs = jax.device_put(q, data_sharding(mesh, 2))
  ps = jax.device_put(p, data_sharding(mesh, 2))
  ns = jax.device_put(negs, data_sharding(mesh, 2))  # even a sharded queue
  with jax.set_mesh(mesh):
    got = jax.jit(lambda *a: losses.info_nce(*a, temperature=0.1))(qs, ps, ns)
  np.testing.assert_allclose(got, np_info_nce(q, p, negs, 0.1), rtol=tol(1e-5))
