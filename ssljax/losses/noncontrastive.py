"""Non-contrastive losses: BYOL, SimSiam, Barlow Twins, VICReg and DINO.

Pure ``jnp`` functions (no Flax, no state): the EMA target/teacher networks,
the DINO center buffer and the schedules are the caller's; the losses only
take their outputs.

Global batch: every batch statistic here (the Barlow Twins standardization
and cross-correlation, the VICReg variance and covariance, the DINO center)
is a plain ``jnp`` reduction over the batch axis, so under ``jax.jit`` with
inputs sharded over the mesh axis ``data`` it spans the *global* batch (on an
``Auto`` mesh the compiler inserts the all-reduce; on an ``Explicit`` mesh the
``[D, D]`` matrices are formed with an explicit replicated output sharding,
see :func:`_batch_gram`). Nothing is computed per device.

Statistics are computed in at least float32 (bfloat16 inputs are upcast).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from ssljax.losses._sharding import spec_of
from ssljax.losses.contrastive import l2_normalize

#: Barlow Twins' standardization epsilon: the official code standardizes with
#: ``nn.BatchNorm1d(affine=False)``, whose default eps is 1e-5.
BARLOW_TWINS_EPS = 1e-5


def _check_2d(name: str, x: jax.Array) -> None:
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [N, D]; got {x.shape}.")


def _check_pair(a_name: str, a: jax.Array, b_name: str, b: jax.Array) -> None:
  _check_2d(a_name, a)
  _check_2d(b_name, b)
  if a.shape != b.shape:
    raise ValueError(f"{a_name} {a.shape} and {b_name} {b.shape} must have "
                     "the same shape [N, D].")


def _f32(x: jax.Array) -> jax.Array:
  """``x`` in at least float32 (batch statistics in bfloat16 are too coarse)."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _batch_sharded(x: jax.Array) -> bool:
  spec = spec_of(x)
  return spec is not None and len(spec) > 0 and spec[0] is not None


def _batch_gram(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a^T b`` for ``[N, D] x [N, E] -> [D, E]``, summed over the global batch.

  Under an explicit mesh the contracted batch axis is sharded and JAX asks
  where the result lives: it is replicated (the sum over every device's rows,
  an all-reduce). Elsewhere (one device, an ``Auto`` mesh) a plain matmul,
  whose partial sums the compiler all-reduces itself.
  """
  if _batch_sharded(a) or _batch_sharded(b):
    return jnp.einsum("nd,ne->de", a, b, out_sharding=P())
  return a.T @ b


def _off_diagonal(c: jax.Array) -> jax.Array:
  """``c`` with its diagonal zeroed (``[D, D]``)."""
  return jnp.where(jnp.eye(c.shape[0], dtype=bool), jnp.zeros_like(c), c)


# ----------------------------------------------------------------------------
# BYOL and SimSiam
# ----------------------------------------------------------------------------


def byol_loss(p: jax.Array, z: jax.Array) -> jax.Array:
  """BYOL's normalized MSE (Grill et al. 2020, eq. 2), one direction.

  ``L = mean_n || p_n/||p_n|| - sg(z_n)/||z_n|| ||^2
      = mean_n (2 - 2 cos(p_n, sg(z_n)))``

  with ``p`` the online prediction ``q_theta(z_theta)`` of one view and ``z``
  the target projection ``z'_xi`` of the other view. The target gets no
  gradient (``jax.lax.stop_gradient`` inside). The paper writes the loss per
  example; the batch mean is the official code's (``jnp.mean`` of
  ``regression_loss``). The symmetric BYOL loss
  ``L + L~`` (sec. 3.1) is the caller's sum of both directions:
  :func:`byol_symmetric_loss`.

  Args:
    p: ``[N, D]`` online predictions.
    z: ``[N, D]`` target projections (stop-gradient applied here).

  Returns:
    Scalar loss in ``[0, 4]``.
  """
  _check_pair("p", p, "z", z)
  p = l2_normalize(_f32(p))
  z = l2_normalize(_f32(jax.lax.stop_gradient(z)))
  return jnp.mean(2.0 - 2.0 * jnp.sum(p * z, axis=-1))


def byol_symmetric_loss(p1: jax.Array, p2: jax.Array, z1: jax.Array,
                        z2: jax.Array) -> jax.Array:
  """The symmetrized BYOL loss ``L + L~`` (Grill et al. 2020, sec. 3.1).

  ``byol_loss(p1, z2) + byol_loss(p2, z1)``: the online prediction of each
  view regresses the target projection of the other view.

  Args:
    p1, p2: ``[N, D]`` online predictions of views 1 and 2.
    z1, z2: ``[N, D]`` target projections of views 1 and 2 (no gradient).

  Returns:
    Scalar loss in ``[0, 8]``.
  """
  return byol_loss(p1, z2) + byol_loss(p2, z1)


def _negative_cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  """``D(p, z) = -mean_n cos(p_n, z_n)`` (SimSiam eq. 1, batch mean)."""
  return -jnp.mean(jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1))


def simsiam_loss(p1: jax.Array, p2: jax.Array, z1: jax.Array, z2: jax.Array,
                 stop_gradient: bool = True) -> jax.Array:
  """SimSiam's symmetrized negative cosine (Chen & He 2021, eqs. 1-3).

  ``L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1))`` with
  ``D(p, z) = -mean_n p_n/||p_n|| . z_n/||z_n||`` (eq. 1, averaged over the
  batch as in Algorithm 1).

  Args:
    p1, p2: ``[N, D]`` predictor outputs of views 1 and 2.
    z1, z2: ``[N, D]`` projector outputs of views 1 and 2.
    stop_gradient: ``True`` (the method, eq. 3): no gradient reaches ``z1``,
      ``z2`` through this loss. ``False`` gives eq. 2 without stop-gradient,
      the ablation of sec. 4.1 / Fig. 2 where the representation collapses.

  Returns:
    Scalar loss in ``[-1, 1]`` (-1 at perfect alignment).
  """
  _check_pair("p1", p1, "z2", z2)
  _check_pair("p2", p2, "z1", z1)
  if stop_gradient:
    z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)
  p1, p2, z1, z2 = (_f32(x) for x in (p1, p2, z1, z2))
  return 0.5 * _negative_cosine(p1, z2) + 0.5 * _negative_cosine(p2, z1)


# ----------------------------------------------------------------------------
# Barlow Twins
# ----------------------------------------------------------------------------


def _standardize(z: jax.Array, eps: float) -> jax.Array:
  """``(z - mean) / sqrt(var + eps)`` per column over the batch: the
  normalization of ``BatchNorm1d(affine=False)`` in training mode (biased
  variance)."""
  mean = jnp.mean(z, axis=0, keepdims=True)
  var = jnp.mean(jnp.square(z - mean), axis=0, keepdims=True)
  return (z - mean) * jax.lax.rsqrt(var + eps)


def barlow_twins_cross_correlation(z1: jax.Array, z2: jax.Array,
                                   eps: float = BARLOW_TWINS_EPS) -> jax.Array:
  """Barlow Twins' empirical cross-correlation ``C`` (``[D, D]``).

  ``C = z1n^T z2n / N`` with each column of ``z1``, ``z2`` standardized over
  the (global) batch as the official code does (``BatchNorm1d(affine=False)``
  then ``bn(z1).T @ bn(z2) / batch_size``): mean 0 and *biased* variance plus
  ``eps``. With ``eps = 0`` this is the paper's eq. 2, the cosine between
  mean-centred columns. (The paper's Algorithm 1 divides by ``torch.std``,
  the unbiased std, which makes ``C_ii`` at most ``(N - 1) / N``; the
  official code does not.)
  """
  _check_pair("z1", z1, "z2", z2)
  n = z1.shape[0]
  z1n = _standardize(_f32(z1), eps)
  z2n = _standardize(_f32(z2), eps)
  return _batch_gram(z1n, z2n) / n


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, lambda_: float = 5e-3,
                      eps: float = BARLOW_TWINS_EPS) -> jax.Array:
  """Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021, eq. 1).

  ``L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2``

  with ``C`` the cross-correlation of the two views' embeddings over the
  global batch (eq. 2; :func:`barlow_twins_cross_correlation` for the
  normalization, which follows the official code: ``BatchNorm1d`` without
  affine, synchronized over devices, biased variance + ``eps``).

  Args:
    z1, z2: ``[N, D]`` projector outputs of the two views (N >= 2). Sharded
      over the mesh axis ``data``, the standardization and ``C`` still span
      the global batch.
    lambda_: weight of the redundancy-reduction (off-diagonal) term; 5e-3 in
      the paper (the official code's default is 0.0051).
    eps: added to the variance before the square root (BatchNorm's 1e-5).

  Returns:
    Scalar loss.
  """
  _check_pair("z1", z1, "z2", z2)
  if z1.shape[0] < 2:
    raise ValueError(f"barlow_twins_loss needs N >= 2 examples to standardize "
                     f"over the batch; got z1 of shape {z1.shape}.")
  c = barlow_twins_cross_correlation(z1, z2, eps)
  on_diag = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
  off_diag = jnp.sum(jnp.square(_off_diagonal(c)))
  return on_diag + lambda_ * off_diag


# ----------------------------------------------------------------------------
# VICReg
# ----------------------------------------------------------------------------


def _vicreg_variance(z: jax.Array, eps: float) -> jax.Array:
  """``v(Z) = mean_j relu(1 - sqrt(Var(z^j) + eps))``, unbiased Var."""
  std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
  return jnp.mean(jax.nn.relu(1.0 - std))


def _vicreg_covariance(z: jax.Array) -> jax.Array:
  """``c(Z) = sum_{i != j} Cov(Z)_ij^2 / d``, covariance with ``N - 1``."""
  n, d = z.shape
  zc = z - jnp.mean(z, axis=0, keepdims=True)
  cov = _batch_gram(zc, zc) / (n - 1)
  return jnp.sum(jnp.square(_off_diagonal(cov))) / d


def vicreg_loss(z1: jax.Array, z2: jax.Array, sim_coeff: float = 25.0,
                std_coeff: float = 25.0, cov_coeff: float = 1.0,
                eps: float = 1e-4) -> tuple[jax.Array, dict[str, jax.Array]]:
  """VICReg (Bardes et al. 2022, eqs. 1-6), as the official code computes it.

  ``L = sim_coeff * s(Z, Z') + std_coeff * v + cov_coeff * c`` with

  * invariance ``s = mean_{n,j} (z_nj - z'_nj)^2`` (``F.mse_loss``: the mean
    over batch *and* dimensions; the paper's eq. 5 sums over dimensions);
  * variance ``v = (v(Z) + v(Z')) / 2``,
    ``v(Z) = mean_j relu(1 - sqrt(Var(z^j) + eps))`` (eqs. 1-2, gamma = 1,
    unbiased variance; the official code averages the two branches where
    the paper's eq. 6 adds them);
  * covariance ``c = c(Z) + c(Z')``, ``c(Z) = sum_{i != j} C(Z)_ij^2 / d``
    with ``C(Z)`` the covariance matrix over the batch, normalized by
    ``N - 1`` (eqs. 3-4).

  Variance and covariance span the global batch (the official code
  all-gathers the embeddings first); the invariance term is a global mean.

  Args:
    z1, z2: ``[N, D]`` expander outputs of the two views (N >= 2).
    sim_coeff, std_coeff, cov_coeff: lambda, mu, nu (25, 25, 1 in the paper).
    eps: added to the variance inside the square root (1e-4).

  Returns:
    ``(loss, terms)``: the scalar weighted total and a dict of the unweighted
    ``invariance``, ``variance`` and ``covariance`` terms (scalars).
  """
  _check_pair("z1", z1, "z2", z2)
  if z1.shape[0] < 2:
    raise ValueError(f"vicreg_loss needs N >= 2 examples (unbiased variance); "
                     f"got z1 of shape {z1.shape}.")
  z1, z2 = _f32(z1), _f32(z2)
  invariance = jnp.mean(jnp.square(z1 - z2))
  variance = 0.5 * (_vicreg_variance(z1, eps) + _vicreg_variance(z2, eps))
  covariance = _vicreg_covariance(z1) + _vicreg_covariance(z2)
  loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
  return loss, {"invariance": invariance, "variance": variance,
                "covariance": covariance}


# ----------------------------------------------------------------------------
# DINO
# ----------------------------------------------------------------------------


def _stack_views(name: str, x) -> jax.Array:
  """A list of ``[N, K]`` views, or an array ``[V, N, K]``, as ``[V, N, K]``."""
  if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
    if not x:
      raise ValueError(f"{name} is an empty list of views.")
    x = jnp.stack([jnp.asarray(v) for v in x])
  x = jnp.asarray(x)
  if x.ndim != 3:
    raise ValueError(f"{name} must be [V, N, K] or a list of [N, K] views; "
                     f"got shape {x.shape}.")
  return x


def dino_loss(student_logits, teacher_logits, center: jax.Array, *,
              teacher_temp: float | jax.Array,
              student_temp: float = 0.1) -> jax.Array:
  """DINO's multi-crop self-distillation loss (Caron et al. 2021, eqs. 1-3).

  ``L = 1/|pairs| sum_{t} sum_{s != t} mean_n H(P_t(x_t), P_s(x_s))`` with
  ``H(a, b) = -sum_k a_k log b_k``,
  ``P_t = softmax((g_t - center) / teacher_temp)`` (centering and sharpening,
  sec. 3.1 / eq. 4) under stop-gradient, and
  ``P_s = softmax(g_s / student_temp)`` (eq. 2). Teacher view ``t`` is the
  same crop as student view ``t`` (the global crops come first), and a view
  is never compared with itself. The paper's eq. 3 sums over the pairs; the
  official code averages over them (``total_loss /= n_loss_terms``), as here.

  Args:
    student_logits: ``[V_s, N, K]`` (or a list of ``V_s`` arrays ``[N, K]``)
      student head outputs of all crops, the ``V_t`` global crops first.
    teacher_logits: ``[V_t, N, K]`` (or a list) teacher head outputs of the
      global crops; no gradient flows into them.
    center: ``[K]`` the running center (:func:`dino_center_update`).
    teacher_temp: tau_t (0.04, warmed up to 0.07:
      :func:`dino_teacher_temperature`); may be a traced scalar.
    student_temp: tau_s (0.1).

  Returns:
    Scalar loss (mean over the batch and the ``V_t * V_s - V_t`` pairs).
  """
  s = _f32(_stack_views("student_logits", student_logits))
  t = _f32(jax.lax.stop_gradient(_stack_views("teacher_logits",
                                              teacher_logits)))
  center = _f32(jax.lax.stop_gradient(jnp.asarray(center)))
  v_s, n, k = s.shape
  v_t = t.shape[0]
  if t.shape[1:] != (n, k):
    raise ValueError(f"teacher_logits {t.shape} must be [V_t, {n}, {k}] to "
                     f"match student_logits {s.shape}.")
  if v_t > v_s:
    raise ValueError(f"the {v_t} teacher views must be the first of the "
                     f"{v_s} student views; got more teacher than student "
                     "views.")
  num_pairs = v_t * v_s - v_t
  if num_pairs < 1:
    raise ValueError("dino_loss needs a pair of different views; got "
                     f"{v_t} teacher and {v_s} student view(s).")
  if center.shape != (k,):
    raise ValueError(f"center must have shape [{k}]; got {center.shape}.")
  q = jax.nn.softmax((t - center) / teacher_temp, axis=-1)     # [V_t, N, K]
  log_p = jax.nn.log_softmax(s / student_temp, axis=-1)        # [V_s, N, K]
  # sum_{s != t} log P_s = sum_s log P_s - log P_t (teacher view t is student
  # view t): V_s + V_t views' worth of work instead of V_t * V_s pairs.
  others = jnp.sum(log_p, axis=0, keepdims=True) - log_p[:v_t]
  return -jnp.sum(q * others) / (n * num_pairs)


def dino_center_update(center: jax.Array, teacher_logits,
                       momentum: float = 0.9) -> jax.Array:
  """DINO's center EMA (Caron et al. 2021, eq. 4).

  ``c <- m c + (1 - m) mean_i g_t(x_i)`` where the mean is over every teacher
  output of the step: all ``V_t`` global views of the *global* batch (the
  official code sums over its local views and all-reduces over devices). The
  teacher logits are the raw head outputs (before centering and temperature)
  and carry no gradient.

  Args:
    center: ``[K]`` current center.
    teacher_logits: ``[V_t, N, K]``, a list of ``[N, K]`` views, or ``[N, K]``.
    momentum: m (0.9).

  Returns:
    The new ``[K]`` center.
  """
  if isinstance(teacher_logits, Sequence):
    teacher_logits = _stack_views("teacher_logits", teacher_logits)
  t = _f32(jax.lax.stop_gradient(jnp.asarray(teacher_logits)))
  if t.ndim not in (2, 3):
    raise ValueError("teacher_logits must be [V_t, N, K] or [N, K]; got "
                     f"{t.shape}.")
  center = jnp.asarray(center)
  if center.shape != t.shape[-1:]:
    raise ValueError(f"center {center.shape} must be [{t.shape[-1]}].")
  batch_center = jnp.mean(t, axis=tuple(range(t.ndim - 1)))
  new = momentum * _f32(center) + (1.0 - momentum) * batch_center
  return new.astype(jnp.promote_types(center.dtype, jnp.float32))


def dino_teacher_temperature(step, warmup_steps: int, start: float = 0.04,
                             end: float = 0.07) -> jax.Array:
  """DINO's teacher temperature: linear warm-up, then constant.

  ``start + (end - start) * min(step, warmup_steps) / warmup_steps``
  (``optax.linear_schedule``). The paper (sec. 3.1 and appendix) warms tau_t
  from 0.04 to 0.07 over the first 30 epochs; the official code's defaults
  are 0.04 -> 0.04 with no warm-up. The official code steps the temperature
  per epoch with ``np.linspace(start, end, warmup_epochs)``, which reaches
  ``end`` one epoch earlier (at ``warmup_epochs - 1``); here ``end`` is reached
  at ``step == warmup_steps``.

  Args:
    step: the current step (an int or a traced scalar).
    warmup_steps: steps of the linear ramp; ``<= 0`` gives ``end`` throughout.
    start: tau_t at step 0.
    end: tau_t after the warm-up.

  Returns:
    Scalar float32 temperature.
  """
  if warmup_steps <= 0:
    return jnp.asarray(end, jnp.float32)
  schedule = optax.linear_schedule(init_value=start, end_value=end,
                                   transition_steps=int(warmup_steps))
  return jnp.asarray(schedule(step), jnp.float32)
