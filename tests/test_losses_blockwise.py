"""Memory-bounded (blockwise) NT-Xent and InfoNCE vs the dense losses and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssljax import losses
from ssljax.losses.blockwise import masked_logsumexp
from ssljax.parallel import data_sharding, make_data_mesh


def np_normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_nt_xent(z1, z2, t):
  """Chen et al. 2020, eq. 1, mean over the 2N anchors (float64)."""
  z = np_normalize(np.concatenate([z1, z2]).astype(np.float64))
  n2 = len(z)
  s = z @ z.T / t
  total = 0.0
  for i in range(n2):
    j = (i + n2 // 2) % n2
    others = np.delete(s[i], i)
    m = others.max()
    total += -(s[i, j] - (m + np.log(np.exp(others - m).sum())))
  return total / n2


def np_info_nce(q, p, negs, t):
  q, p, negs = (np_normalize(x.astype(np.float64)) for x in (q, p, negs))
  pos = np.sum(q * p, -1) / t
  neg = q @ negs.T / t
  logits = np.concatenate([pos[:, None], neg], 1)
  m = logits.max(1, keepdims=True)
  lse = m[:, 0] + np.log(np.exp(logits - m).sum(1))
  return np.mean(lse - pos)


@pytest.mark.parametrize("block", [1, 3, 8, 16, 64])
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nt_xent_blockwise_equals_dense_and_numpy(block, t):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 8, 5)).astype(np.float32)
  dense = lambda a, b: losses.nt_xent(a, b, temperature=t)
  blocked = lambda a, b: losses.nt_xent(a, b, temperature=t, block_size=block)
  lb, gb = jax.jit(jax.value_and_grad(blocked, argnums=(0, 1)))(z1, z2)
  ld, gd = jax.jit(jax.value_and_grad(dense, argnums=(0, 1)))(z1, z2)
  np.testing.assert_allclose(lb, np_nt_xent(z1, z2, t), rtol=5e-5)
  np.testing.assert_allclose(lb, ld, rtol=1e-5)
  for a, b in zip(gb, gd):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block", [1, 5, 32])
def test_info_nce_blockwise_equals_dense_and_numpy(block):
  rng = np.random.default_rng(1)
  q, p = rng.normal(size=(2, 12, 6)).astype(np.float32)
  negs = rng.normal(size=(40, 6)).astype(np.float32)
  dense = lambda *a: losses.info_nce(*a, temperature=0.07)
  blocked = lambda *a: losses.info_nce(*a, temperature=0.07, block_size=block)
  lb, gb = jax.jit(jax.value_and_grad(blocked, argnums=(0, 1, 2)))(q, p, negs)
  ld, gd = jax.jit(jax.value_and_grad(dense, argnums=(0, 1, 2)))(q, p, negs)
  np.testing.assert_allclose(lb, np_info_nce(q, p, negs, 0.07), rtol=5e-5)
  np.testing.assert_allclose(lb, ld, rtol=1e-5)
  for a, b in zip(gb, gd):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_masked_logsumexp_gradient_by_finite_differences():
  rng = np.random.default_rng(2)
  rows = rng.normal(size=(5, 3))
  keys = rng.normal(size=(7, 3))
  extra = rng.normal(size=(5,))
  exclude = np.array([0, -1, 6, 2, -1])
  w = rng.normal(size=(5,))
  with jax.enable_x64():
    f = lambda r, k, e: jnp.sum(w * masked_logsumexp(
        r, k, jnp.asarray(exclude), e, 0.7, 2))
    grads = jax.grad(f, argnums=(0, 1, 2))(rows, keys, extra)
    eps = 1e-6
    for arg, g in zip(range(3), grads):
      args = [rows, keys, extra]
      x = args[arg]
      num = np.zeros_like(x)
      for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        ap, am = list(args), list(args)
        ap[arg], am[arg] = xp, xm
        num[idx] = (f(*ap) - f(*am)) / (2 * eps)
      np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)
    # and the value against numpy
    s = 0.7 * rows @ keys.T
    for r in range(5):
      vals = [s[r, k] for k in range(7) if k != exclude[r]] + [extra[r]]
      np.testing.assert_allclose(
          masked_logsumexp(rows, keys, jnp.asarray(exclude), extra, 0.7, 2)[r],
          np.log(np.sum(np.exp(vals))), rtol=1e-12)


def _temp_bytes(fn, *args):
  return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_blockwise_peak_memory_is_o_n_times_block():
  n, d, block = 1024, 32, 64
  z = jnp.ones((n, d), jnp.float32) + jnp.arange(n * d).reshape(n, d) * 1e-3
  grad = lambda bs: jax.grad(
      lambda a, b: losses.nt_xent(a, b, temperature=0.2, block_size=bs),
      argnums=(0, 1))
  dense_bytes = _temp_bytes(grad(None), z, z)
  block_bytes = _temp_bytes(grad(block), z, z)
  logits_bytes = (2 * n) ** 2 * 4                 # one dense [2N, 2N] float32
  assert dense_bytes >= logits_bytes, (dense_bytes, logits_bytes)
  # A few [block, 2N] tiles plus O(N D) buffers; far below one dense matrix.
  assert block_bytes < logits_bytes / 4, (block_bytes, logits_bytes)
  assert block_bytes < 8 * block * 2 * n * 4 + 16 * n * d * 4, block_bytes


def test_sharded_blockwise_equals_single_device_dense():
  mesh = make_data_mesh()
  assert mesh.devices.size == 8
  rng = np.random.default_rng(3)
  z1, z2 = rng.normal(size=(2, 32, 16)).astype(np.float32)
  ref_l, ref_g = jax.value_and_grad(
      lambda a, b: losses.nt_xent(a, b, temperature=0.2), argnums=(0, 1))(z1, z2)
  sh = data_sharding(mesh, 2)
  a, b = jax.device_put(z1, sh), jax.device_put(z2, sh)
  with jax.set_mesh(mesh):
    loss, g = jax.jit(jax.value_and_grad(
        lambda a, b: losses.nt_xent(a, b, temperature=0.2, block_size=4),
        argnums=(0, 1)))(a, b)
  np.testing.assert_allclose(loss, ref_l, rtol=1e-5)
  for x, y in zip(g, ref_g):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_axis_name_inside_user_shard_map():
  mesh = make_data_mesh()
  rng = np.random.default_rng(4)
  z1, z2 = rng.normal(size=(2, 16, 8)).astype(np.float32)
  fn = jax.shard_map(
      lambda a, b: losses.nt_xent(a, b, temperature=0.3, block_size=2,
                                  axis_name="data"),
      mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
  got = jax.jit(fn)(z1, z2)
  np.testing.assert_allclose(got, np_nt_xent(z1, z2, 0.3), rtol=5e-5)


def test_blockwise_bad_arguments():
  z = jnp.ones((4, 3))
  with pytest.raises(ValueError, match="block_size"):
    losses.nt_xent(z, z, temperature=0.1, block_size=0)
  with pytest.raises(ValueError, match="block_size"):
    losses.nt_xent(z, z, temperature=0.1, block_size=2.5)
  with pytest.raises(ValueError, match="shared negatives"):
    losses.info_nce(z, z, jnp.ones((4, 5, 3)), temperature=0.1, block_size=2)
  with pytest.raises(ValueError, match="pass block_size"):
    losses.nt_xent(z, z, temperature=0.1, axis_name="data")
