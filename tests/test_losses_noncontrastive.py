"""Non-contrastive losses (BYOL, SimSiam, Barlow Twins, VICReg, DINO) against
independent float64 numpy computations written from the papers' formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from helpers import require_devices
from ssljax import losses
from ssljax.parallel import make_data_mesh


def tol(rtol: float) -> float:
  """float32 tolerance; a few ulp looser on an accelerator (as test_losses)."""
  return rtol if jax.default_backend() == "cpu" else max(rtol, 5e-5)


def _f64(*xs):
  return [np.asarray(x, np.float64) for x in xs]


# ----------------------------------------------------------------------------
# numpy references, loops over the paper's indices, float64
# ----------------------------------------------------------------------------


def np_cos(a, b):
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def np_cos_grad(a, b):
  """d cos(a, b) / d a for one pair of vectors."""
  na = np.linalg.norm(a)
  ah, bh = a / na, b / np.linalg.norm(b)
  return (bh - (ah @ bh) * ah) / na


def np_byol(p, z):
  """Grill et al. 2020, eq. 2: ||p/|p| - z/|z| ||^2 per example, batch mean."""
  p, z = _f64(p, z)
  per = [np.sum((p[i] / np.linalg.norm(p[i]) - z[i] / np.linalg.norm(z[i]))**2)
         for i in range(len(p))]
  return float(np.mean(per))


def np_byol_grad_p(p, z):
  """Analytic d/dp of mean_n (2 - 2 cos(p_n, z_n))."""
  p, z = _f64(p, z)
  return np.stack([-2.0 * np_cos_grad(p[i], z[i]) for i in range(len(p))]
                  ) / len(p)


def np_simsiam(p1, p2, z1, z2):
  """Chen & He 2021, eqs. 1-2: 1/2 D(p1, z2) + 1/2 D(p2, z1)."""
  p1, p2, z1, z2 = _f64(p1, p2, z1, z2)
  d12 = -np.mean([np_cos(p1[i], z2[i]) for i in range(len(p1))])
  d21 = -np.mean([np_cos(p2[i], z1[i]) for i in range(len(p2))])
  return 0.5 * d12 + 0.5 * d21


def np_bn(z, eps):
  """BatchNorm1d(affine=False), training mode: biased variance + eps."""
  m = z.mean(axis=0)
  v = ((z - m)**2).mean(axis=0)
  return (z - m) / np.sqrt(v + eps)


def np_barlow_c(z1, z2, eps):
  z1, z2 = _f64(z1, z2)
  a, b = np_bn(z1, eps), np_bn(z2, eps)
  n, d = a.shape
  c = np.zeros((d, d))
  for i in range(d):
    for j in range(d):
      c[i, j] = sum(a[k, i] * b[k, j] for k in range(n)) / n
  return c


def np_barlow_from_c(c, lam):
  d = len(c)
  on = sum((1 - c[i, i])**2 for i in range(d))
  off = sum(c[i, j]**2 for i in range(d) for j in range(d) if i != j)
  return on + lam * off


def np_barlow(z1, z2, lam=5e-3, eps=1e-5):
  """Zbontar et al. 2021, eq. 1, C as in the official code."""
  return np_barlow_from_c(np_barlow_c(z1, z2, eps), lam)


def np_vicreg_terms(z1, z2, eps=1e-4):
  """Bardes et al. 2022, eqs. 1-6 with the official code's normalizations."""
  z1, z2 = _f64(z1, z2)
  d = z1.shape[1]

  def v(z):
    std = np.sqrt(z.var(axis=0, ddof=1) + eps)
    return np.mean(np.maximum(0.0, 1.0 - std))

  def c(z):
    cov = np.cov(z, rowvar=False)                   # normalized by N - 1
    return sum(cov[i, j]**2 for i in range(d) for j in range(d) if i != j) / d

  return (float(np.mean((z1 - z2)**2)), 0.5 * (v(z1) + v(z2)), c(z1) + c(z2))


def np_vicreg(z1, z2, sim=25.0, std=25.0, cov=1.0, eps=1e-4):
  inv, var, co = np_vicreg_terms(z1, z2, eps)
  return sim * inv + std * var + cov * co


def np_softmax(x):
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def np_dino(s, t, center, tt, ts=0.1):
  """Caron et al. 2021, eq. 3 averaged over pairs as the official DINOLoss."""
  s, t, center = _f64(s, t, center)
  total, terms = 0.0, 0
  for iq in range(len(t)):
    q = np_softmax((t[iq] - center) / tt)
    for v in range(len(s)):
      if v == iq:
        continue
      log_p = np.log(np_softmax(s[v] / ts))
      total += np.mean(-np.sum(q * log_p, axis=-1))
      terms += 1
  return total / terms


def np_dino_grad_student(s, t, center, tt, ts=0.1):
  """d/ds of H(q_t, softmax(s_v / ts)) is (softmax(s_v / ts) - q_t) / ts."""
  s, t, center = _f64(s, t, center)
  v_s, n, _ = s.shape
  terms = len(t) * v_s - len(t)
  g = np.zeros_like(s)
  for iq in range(len(t)):
    q = np_softmax((t[iq] - center) / tt)
    for v in range(v_s):
      if v != iq:
        g[v] += (np_softmax(s[v] / ts) - q) / ts
  return g / (n * terms)


def np_fd_grad(f, x, h=1e-6):
  """Central finite differences of a float64 scalar function."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += h
    xm[idx] -= h
    g[idx] = (f(xp) - f(xm)) / (2 * h)
  return g


def hadamard_columns(n=8, d=7):
  """``d`` zero-mean, mutually orthogonal +-1 columns of length ``n``."""
  h = np.array([[1.0]])
  while len(h) < n:
    h = np.block([[h, h], [h, -h]])
  return h[:, 1:d + 1]


def _rand(seed, *shape, scale=1.0, shift=0.0):
  rng = np.random.default_rng(seed)
  return (shift + scale * rng.normal(size=shape)).astype(np.float32)


# ----------------------------------------------------------------------------
# BYOL
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (16, 8), (7, 33)])
def test_byol_matches_numpy(shape):
  p, z, p2, z2 = (_rand(i, *shape) for i in range(4))
  np.testing.assert_allclose(losses.byol_loss(p, z), np_byol(p, z),
                             rtol=tol(1e-5), atol=1e-6)
  np.testing.assert_allclose(losses.byol_symmetric_loss(p, p2, z, z2),
                             np_byol(p, z2) + np_byol(p2, z), rtol=tol(1e-5),
                             atol=1e-6)


def test_byol_hand_checked_values():
  z = _rand(0, 6, 4)
  np.testing.assert_allclose(losses.byol_loss(z, z), 0.0, atol=1e-6)
  np.testing.assert_allclose(losses.byol_loss(3.0 * z, z), 0.0, atol=1e-6)
  np.testing.assert_allclose(losses.byol_loss(-z, z), 4.0, rtol=1e-6)
  eye = np.eye(4, dtype=np.float32)
  np.testing.assert_allclose(losses.byol_loss(eye, np.roll(eye, 1, axis=1)),
                             2.0, rtol=1e-6)          # orthogonal pairs
  np.testing.assert_allclose(losses.byol_symmetric_loss(z, z, z, z), 0.0,
                             atol=1e-6)


def test_byol_gradient_and_stop_gradient():
  p, z = _rand(1, 8, 5), _rand(2, 8, 5)
  gp, gz = jax.grad(losses.byol_loss, argnums=(0, 1))(p, z)
  np.testing.assert_allclose(gp, np_byol_grad_p(p, z), rtol=tol(1e-4),
                             atol=1e-6)
  np.testing.assert_allclose(gp, np_fd_grad(lambda x: np_byol(x, z), p),
                             rtol=1e-4, atol=1e-6)
  assert not np.any(np.asarray(gz))                    # target: no gradient


# ----------------------------------------------------------------------------
# SimSiam
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (16, 8)])
def test_simsiam_matches_numpy(shape):
  p1, p2, z1, z2 = (_rand(10 + i, *shape) for i in range(4))
  want = np_simsiam(p1, p2, z1, z2)
  for sg in (True, False):
    np.testing.assert_allclose(
        losses.simsiam_loss(p1, p2, z1, z2, stop_gradient=sg), want,
        rtol=tol(1e-5), atol=1e-6)


def test_simsiam_hand_checked_values():
  z1, z2 = _rand(0, 5, 4), _rand(1, 5, 4)
  np.testing.assert_allclose(losses.simsiam_loss(z2, z1, z1, z2), -1.0,
                             rtol=1e-6)
  eye = np.eye(4, dtype=np.float32)
  np.testing.assert_allclose(
      losses.simsiam_loss(eye, eye, np.roll(eye, 1, 1), np.roll(eye, 1, 1)),
      0.0, atol=1e-6)


def test_simsiam_stop_gradient():
  p1, p2, z1, z2 = (_rand(20 + i, 6, 4) for i in range(4))
  n = len(p1)

  def grads(sg):
    return jax.grad(lambda *a: losses.simsiam_loss(*a, stop_gradient=sg),
                    argnums=(0, 1, 2, 3))(p1, p2, z1, z2)

  g_p1, g_p2, g_z1, g_z2 = grads(True)
  assert not np.any(np.asarray(g_z1)) and not np.any(np.asarray(g_z2))
  want_p1 = np.stack([-0.5 * np_cos_grad(a, b) for a, b in zip(*_f64(p1, z2))])
  np.testing.assert_allclose(g_p1, want_p1 / n, rtol=tol(1e-4), atol=1e-6)
  # Without stop-gradient the targets get the symmetric gradient (the
  # collapse ablation), and the predictor gradients are unchanged.
  h_p1, h_p2, h_z1, h_z2 = grads(False)
  np.testing.assert_allclose(h_p1, g_p1, rtol=1e-6)
  np.testing.assert_allclose(h_p2, g_p2, rtol=1e-6)
  want_z2 = np.stack([-0.5 * np_cos_grad(b, a) for a, b in zip(*_f64(p1, z2))])
  want_z1 = np.stack([-0.5 * np_cos_grad(b, a) for a, b in zip(*_f64(p2, z1))])
  np.testing.assert_allclose(h_z2, want_z2 / n, rtol=tol(1e-4), atol=1e-6)
  np.testing.assert_allclose(h_z1, want_z1 / n, rtol=tol(1e-4), atol=1e-6)
  assert np.all(np.abs(np.asarray(h_z1)).sum(axis=1) > 0)


# ----------------------------------------------------------------------------
# Barlow Twins
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (16, 8), (6, 11)])
def test_barlow_twins_matches_numpy(shape):
  z1 = _rand(30, *shape, scale=2.0, shift=0.5)
  z2 = z1 + _rand(31, *shape)                          # correlated views
  np.testing.assert_allclose(losses.barlow_twins_loss(z1, z2),
                             np_barlow(z1, z2), rtol=tol(2e-5), atol=1e-5)
  np.testing.assert_allclose(
      losses.barlow_twins_loss(z1, z2, lambda_=0.1, eps=0.0),
      np_barlow(z1, z2, lam=0.1, eps=0.0), rtol=tol(2e-5), atol=1e-5)
  np.testing.assert_allclose(losses.barlow_twins_cross_correlation(z1, z2),
                             np_barlow_c(z1, z2, 1e-5), rtol=tol(1e-4),
                             atol=2e-6)


def test_barlow_twins_c_is_the_papers_eq2_without_eps():
  """eq. 2: C_ij = sum_b a_bi b_bj / (||a_i|| ||b_j||), columns mean-centred."""
  z1, z2 = _rand(32, 9, 4), _rand(33, 9, 4)
  a, b = _f64(z1, z2)
  a, b = a - a.mean(0), b - b.mean(0)
  want = np.array([[a[:, i] @ b[:, j] / np.linalg.norm(a[:, i])
                    / np.linalg.norm(b[:, j]) for j in range(4)]
                   for i in range(4)])
  np.testing.assert_allclose(
      losses.barlow_twins_cross_correlation(z1, z2, eps=0.0), want,
      rtol=tol(1e-4), atol=2e-6)


def test_barlow_twins_hand_checked_values():
  h = hadamard_columns(8, 5).astype(np.float32)     # C = I when z1 == z2
  np.testing.assert_allclose(losses.barlow_twins_loss(h, h, eps=0.0), 0.0,
                             atol=1e-6)
  # Invariant to a positive affine map per dimension (standardization).
  scaled = 3.0 * h + np.arange(5, dtype=np.float32)
  np.testing.assert_allclose(losses.barlow_twins_loss(h, scaled, eps=0.0), 0.0,
                             atol=1e-6)
  # z2 = -z1 decorrelated: C = -I, so the on-diagonal term is 4 per dim.
  np.testing.assert_allclose(losses.barlow_twins_loss(h, -h, eps=0.0), 20.0,
                             rtol=1e-6)
  # BatchNorm's eps: C_ii = 1 / (1 + eps) for unit-variance columns.
  np.testing.assert_allclose(losses.barlow_twins_loss(h, h),
                             5 * (1 - 1 / (1 + 1e-5))**2, atol=1e-9)


def test_barlow_twins_gradient():
  z1 = _rand(34, 6, 4, scale=1.5)
  z2 = z1 + _rand(35, 6, 4, scale=0.7)
  g1, g2 = jax.grad(lambda a, b: losses.barlow_twins_loss(a, b, lambda_=0.05),
                    argnums=(0, 1))(z1, z2)
  f1 = np_fd_grad(lambda x: np_barlow(x, z2, lam=0.05), z1)
  f2 = np_fd_grad(lambda x: np_barlow(z1, x, lam=0.05), z2)
  scale = max(np.abs(f1).max(), np.abs(f2).max())
  np.testing.assert_allclose(g1, f1, rtol=1e-3, atol=1e-4 * scale)
  np.testing.assert_allclose(g2, f2, rtol=1e-3, atol=1e-4 * scale)
  assert np.abs(f1).max() > 1e-2                      # a real gradient


# ----------------------------------------------------------------------------
# VICReg
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape,scale", [((4, 3), 0.3), ((16, 8), 1.0),
                                         ((6, 10), 2.0)])
def test_vicreg_matches_numpy(shape, scale):
  z1 = _rand(40, *shape, scale=scale, shift=1.0)
  z2 = z1 + _rand(41, *shape, scale=0.5 * scale)
  loss, terms = losses.vicreg_loss(z1, z2)
  inv, var, cov = np_vicreg_terms(z1, z2)
  np.testing.assert_allclose(terms["invariance"], inv, rtol=tol(1e-5),
                             atol=1e-7)
  np.testing.assert_allclose(terms["variance"], var, rtol=tol(1e-5), atol=1e-7)
  np.testing.assert_allclose(terms["covariance"], cov, rtol=tol(1e-5),
                             atol=1e-7)
  np.testing.assert_allclose(loss, np_vicreg(z1, z2), rtol=tol(1e-5),
                             atol=1e-6)
  got, _ = losses.vicreg_loss(z1, z2, sim_coeff=2.0, std_coeff=3.0,
                              cov_coeff=0.5, eps=1e-3)
  np.testing.assert_allclose(got, np_vicreg(z1, z2, 2.0, 3.0, 0.5, 1e-3),
                             rtol=tol(1e-5), atol=1e-6)


def test_vicreg_hand_checked_values():
  # Collapsed and identical views: no invariance or covariance cost, the
  # variance hinge is 1 - sqrt(eps) = 0.99 per branch.
  z = np.ones((8, 4), np.float32)
  loss, terms = losses.vicreg_loss(z, z)
  np.testing.assert_allclose(terms["invariance"], 0.0, atol=1e-7)
  np.testing.assert_allclose(terms["variance"], 0.99, rtol=1e-6)
  np.testing.assert_allclose(terms["covariance"], 0.0, atol=1e-7)
  np.testing.assert_allclose(loss, 25 * 0.99, rtol=1e-6)
  # Orthogonal zero-mean columns with unbiased variance 1: all terms 0.
  h = (hadamard_columns(8, 6) * np.sqrt(7 / 8)).astype(np.float32)
  loss, terms = losses.vicreg_loss(h, h)
  np.testing.assert_allclose(loss, 0.0, atol=1e-6)


def test_vicreg_gradient():
  # Columns of std ~0.5 (hinge active) and ~2 (hinge off): no kinks nearby.
  scale = np.array([0.5, 2.0, 0.5, 2.0, 0.4], np.float32)
  z1 = _rand(42, 7, 5) * scale
  z2 = z1 + _rand(43, 7, 5) * 0.3
  g1, g2 = jax.grad(lambda a, b: losses.vicreg_loss(a, b)[0],
                    argnums=(0, 1))(z1, z2)
  f1 = np_fd_grad(lambda x: np_vicreg(x, z2), z1)
  f2 = np_fd_grad(lambda x: np_vicreg(z1, x), z2)
  gmax = max(np.abs(f1).max(), np.abs(f2).max())
  np.testing.assert_allclose(g1, f1, rtol=1e-3, atol=1e-4 * gmax)
  np.testing.assert_allclose(g2, f2, rtol=1e-3, atol=1e-4 * gmax)


# ----------------------------------------------------------------------------
# DINO
# ----------------------------------------------------------------------------


def _dino_inputs(seed, v_s=4, v_t=2, n=6, k=5):
  s = _rand(seed, v_s, n, k, scale=2.0)
  t = _rand(seed + 1, v_t, n, k, scale=2.0)
  center = _rand(seed + 2, k, scale=0.5)
  return s, t, center


@pytest.mark.parametrize("v_s,v_t,n,k", [(2, 2, 4, 3), (5, 2, 6, 7),
                                         (3, 1, 8, 4)])
def test_dino_matches_numpy(v_s, v_t, n, k):
  s, t, center = _dino_inputs(50, v_s, v_t, n, k)
  got = losses.dino_loss(s, t, center, teacher_temp=0.04)
  np.testing.assert_allclose(got, np_dino(s, t, center, 0.04), rtol=tol(1e-5))
  got = losses.dino_loss(list(s), list(t), center, teacher_temp=0.07,
                         student_temp=0.2)
  np.testing.assert_allclose(got, np_dino(s, t, center, 0.07, 0.2),
                             rtol=tol(1e-5))


def test_dino_hand_checked_values():
  k = 6
  # Uniform teacher and student: every pair costs log K.
  s = np.zeros((4, 3, k), np.float32)
  t = np.full((2, 3, k), 2.5, np.float32)
  np.testing.assert_allclose(
      losses.dino_loss(s, t, np.zeros(k, np.float32), teacher_temp=0.04),
      np.log(k), rtol=1e-6)
  # The centre shifts the teacher: subtracting the teacher's own logits makes
  # it uniform whatever they are.
  t = _rand(0, 2, 3, k)
  center = t[0, 0]
  t = np.broadcast_to(center, t.shape)
  np.testing.assert_allclose(
      losses.dino_loss(s, t, center, teacher_temp=0.04), np.log(k), rtol=1e-6)


def test_dino_gradient_and_teacher_stop_gradient():
  s, t, center = _dino_inputs(60, 4, 2, 5, 6)
  gs, gt, gc = jax.grad(
      lambda a, b, c: losses.dino_loss(a, b, c, teacher_temp=0.05),
      argnums=(0, 1, 2))(s, t, center)
  np.testing.assert_allclose(gs, np_dino_grad_student(s, t, center, 0.05),
                             rtol=tol(1e-4), atol=1e-6)
  assert not np.any(np.asarray(gt)) and not np.any(np.asarray(gc))


def test_dino_center_update():
  t = _rand(70, 2, 6, 5, shift=3.0)
  center = _rand(71, 5)
  want = 0.9 * center.astype(np.float64) + 0.1 * t.astype(np.float64).reshape(
      -1, 5).mean(axis=0)
  np.testing.assert_allclose(losses.dino_center_update(center, t), want,
                             rtol=tol(1e-6))
  np.testing.assert_allclose(losses.dino_center_update(center, list(t)), want,
                             rtol=tol(1e-6))
  np.testing.assert_allclose(
      losses.dino_center_update(center, t[0], momentum=0.5),
      0.5 * center + 0.5 * t[0].astype(np.float64).mean(0), rtol=tol(1e-6))


def test_dino_teacher_temperature_schedule():
  f = losses.dino_teacher_temperature
  for step, want in [(0, 0.04), (15, 0.055), (30, 0.07), (31, 0.07),
                     (1000, 0.07)]:
    np.testing.assert_allclose(f(step, 30), want, rtol=1e-6)
  np.testing.assert_allclose(f(5, 10, start=0.02, end=0.04), 0.03, rtol=1e-6)
  np.testing.assert_allclose(f(0, 0), 0.07, rtol=1e-6)     # no warm-up
  np.testing.assert_allclose(f(0, 0, end=0.04), 0.04, rtol=1e-6)
  traced = jax.jit(lambda s: f(s, 30))(jnp.asarray(6))     # a traced step
  np.testing.assert_allclose(traced, 0.046, rtol=1e-6)


# ----------------------------------------------------------------------------
# jit, shapes, sharding
# ----------------------------------------------------------------------------


def _all_losses(z1, z2, s, t, center):
  return {
      "byol": losses.byol_symmetric_loss(z1, z2, z2, z1),
      "simsiam": losses.simsiam_loss(z1, z2, z2, z1),
      "barlow": losses.barlow_twins_loss(z1, z2),
      "vicreg": losses.vicreg_loss(z1, z2),
      "dino": losses.dino_loss(s, t, center, teacher_temp=0.04),
      "center": losses.dino_center_update(center, t),
  }


def test_jit_equals_eager():
  z1, z2 = _rand(80, 8, 6), _rand(81, 8, 6)
  s, t, center = _dino_inputs(82, 3, 2, 8, 5)
  eager = _all_losses(z1, z2, s, t, center)
  jitted = jax.jit(_all_losses)(z1, z2, s, t, center)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               eager, jitted)


@pytest.mark.parametrize("bad", [
    lambda: losses.byol_loss(jnp.ones((4, 3)), jnp.ones((4, 2))),
    lambda: losses.simsiam_loss(jnp.ones((4, 3)), jnp.ones((4, 3)),
                                jnp.ones((4, 3)), jnp.ones((3, 3))),
    lambda: losses.barlow_twins_loss(jnp.ones((4,)), jnp.ones((4,))),
    lambda: losses.barlow_twins_loss(jnp.ones((1, 3)), jnp.ones((1, 3))),
    lambda: losses.vicreg_loss(jnp.ones((1, 3)), jnp.ones((1, 3))),
    lambda: losses.dino_loss(jnp.ones((1, 2, 3)), jnp.ones((1, 2, 3)),
                             jnp.zeros(3), teacher_temp=0.04),
    lambda: losses.dino_loss(jnp.ones((2, 2, 3)), jnp.ones((3, 2, 3)),
                             jnp.zeros(3), teacher_temp=0.04),
    lambda: losses.dino_loss(jnp.ones((2, 2, 3)), jnp.ones((2, 2, 4)),
                             jnp.zeros(4), teacher_temp=0.04),
    lambda: losses.dino_loss(jnp.ones((2, 2, 3)), jnp.ones((2, 2, 3)),
                             jnp.zeros(4), teacher_temp=0.04),
    lambda: losses.dino_center_update(jnp.zeros(4), jnp.ones((2, 3))),
])
def test_bad_shapes_raise_clear_errors(bad):
  with pytest.raises(ValueError, match="shape|must|needs"):
    bad()


def _shard_offsets(n, shards=8, step=3.0):
  """A per-row offset that differs between the 8 shards of the batch."""
  return np.repeat(np.arange(shards, dtype=np.float32) * step,
                   n // shards)[:, None]


def np_barlow_per_device(z1, z2, shards=8, lam=5e-3, eps=1e-5):
  """What per-device BatchNorm would give (statistics over each shard)."""
  z1, z2 = _f64(z1, z2)
  n = len(z1)
  c = sum(np_bn(a, eps).T @ np_bn(b, eps) for a, b in
          zip(np.split(z1, shards), np.split(z2, shards))) / n
  return np_barlow_from_c(c, lam)


@pytest.mark.parametrize("explicit", [False, True])
def test_sharded_over_8_devices_uses_global_batch_statistics(explicit):
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8], explicit=explicit)
  n, d = 16, 6
  # Shards with very different means: per-device statistics would differ.
  z1 = _rand(90, n, d) + _shard_offsets(n)
  z2 = z1 + _rand(91, n, d, scale=0.5)
  s, t, center = _dino_inputs(92, 3, 2, n, 5)
  t = t + _shard_offsets(n)[None]
  assert not np.isclose(np_barlow_per_device(z1, z2), np_barlow(z1, z2),
                        rtol=0.2)
  per_dev_var = np.mean([np_vicreg_terms(a, b)[1] for a, b in
                         zip(np.split(z1, 8), np.split(z2, 8))])
  assert not np.isclose(per_dev_var, np_vicreg_terms(z1, z2)[1], rtol=0.2)
  assert not np.allclose(t[:, :2].mean(axis=(0, 1)), t.mean(axis=(0, 1)),
                         rtol=0.2)

  batch = NamedSharding(mesh, P("data"))
  views = NamedSharding(mesh, P(None, "data"))
  args = (jax.device_put(z1, batch), jax.device_put(z2, batch),
          jax.device_put(s, views), jax.device_put(t, views),
          jax.device_put(center, NamedSharding(mesh, P())))
  with jax.set_mesh(mesh):
    got = jax.jit(_all_losses)(*args)
  single = jax.jit(_all_losses)(z1, z2, s, t, center)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tol(2e-5),
                                                       atol=1e-5),
               got, single)
  np.testing.assert_allclose(got["barlow"], np_barlow(z1, z2), rtol=tol(2e-5))
  np.testing.assert_allclose(got["vicreg"][0], np_vicreg(z1, z2),
                             rtol=tol(2e-5))
  np.testing.assert_allclose(got["dino"], np_dino(s, t, center, 0.04),
                             rtol=tol(2e-5))
  np.testing.assert_allclose(
      got["center"], 0.9 * center + 0.1 * t.reshape(-1, 5).mean(0),
      rtol=tol(1e-5))
  assert got["center"].sharding.is_fully_replicated


@pytest.mark.parametrize("explicit", [False, True])
def test_sharded_gradients_equal_single_device(explicit):
  require_devices(8)
  mesh = make_data_mesh(jax.devices()[:8], explicit=explicit)
  n, d = 16, 4
  z1 = _rand(93, n, d) + _shard_offsets(n, step=2.0)
  z2 = z1 + _rand(94, n, d, scale=0.5)
  s, t, center = _dino_inputs(95, 3, 2, n, 5)

  def f(a, b, s, t, c):
    bt = jax.grad(losses.barlow_twins_loss, argnums=(0, 1))(a, b)
    vic = jax.grad(lambda a, b: losses.vicreg_loss(a, b)[0],
                   argnums=(0, 1))(a, b)
    dino = jax.grad(lambda s: losses.dino_loss(s, t, c, teacher_temp=0.04))(s)
    return bt, vic, dino

  batch = NamedSharding(mesh, P("data"))
  views = NamedSharding(mesh, P(None, "data"))
  with jax.set_mesh(mesh):
    got = jax.jit(f)(jax.device_put(z1, batch), jax.device_put(z2, batch),
                     jax.device_put(s, views), jax.device_put(t, views),
                     center)
  single = jax.jit(f)(z1, z2, s, t, center)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tol(1e-4),
                                                       atol=1e-6),
               got, single)
  np.testing.assert_allclose(
      got[0][0], np_fd_grad(lambda x: np_barlow(x, z2), z1), rtol=1e-3,
      atol=1e-5)
  assert got[0][0].sharding.spec[0] == "data"
