"""CPC's InfoNCE over future steps (van den Oord et al. 2018, eq. 4; Henaff et
al. 2019 for the image-grid variant).

``predictions[b, t, k]`` is the model's guess ``W_k c_t`` of the target
``targets[b, t + skip + k + 1]`` (``skip = 0``: step ``k + 1`` ahead). A
prediction is scored against a set of candidate targets by dot product; the
loss is the cross-entropy of picking the true target. Only pairs with
``t + skip + k + 1 < T`` exist; each step ``k`` is averaged over its valid
``(b, t)`` and the steps are averaged with equal weight.

Candidate sets (``negatives=``):

* ``"batch"``: all ``B * T`` targets of the (global) batch, the true one
  included once.
* ``"sequence"``: the ``T`` targets of the prediction's own sequence.
* ``"sampled"``: the true target plus ``num_negatives`` targets drawn without
  replacement from the ``B * T`` of the batch, one draw shared by every
  prediction (so the scores are one matmul); a drawn target that is the
  prediction's own true target is masked out, so each prediction sees the
  true target once and ``num_negatives`` or ``num_negatives - 1`` negatives.

With the batch sharded over the mesh axis ``data`` the candidate targets are
gathered (``ssljax.losses._sharding.replicate``) so every prediction is scored
against the global batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssljax.losses._sharding import replicate

NEGATIVE_MODES = ("batch", "sequence", "sampled")


def _check(predictions, targets, skip: int, negatives: str, num_negatives,
           key) -> None:
  if predictions.ndim != 4:
    raise ValueError(f"predictions must have shape [B, T, K, D]; got "
                     f"{predictions.shape}.")
  b, t, k, d = predictions.shape
  if targets.shape != (b, t, d):
    raise ValueError(f"targets {targets.shape} must have shape [B, T, D] = "
                     f"{(b, t, d)} to match predictions {predictions.shape}.")
  if skip < 0:
    raise ValueError(f"skip must be >= 0; got {skip}.")
  if t <= skip + k:
    raise ValueError(
        f"predictions {predictions.shape}: with T={t}, skip={skip} and K={k} "
        f"steps the last step (offset {skip + k}) has no valid pair; need "
        f"T > skip + K.")
  if negatives not in NEGATIVE_MODES:
    raise ValueError(f"negatives must be one of {NEGATIVE_MODES}; got "
                     f"{negatives!r}.")
  if negatives == "sampled":
    if key is None or num_negatives is None:
      raise ValueError("negatives='sampled' needs num_negatives and key.")
    if not 1 <= num_negatives <= b * t - 1:
      raise ValueError(f"num_negatives must lie in [1, B*T - 1 = {b * t - 1}] "
                       f"for targets {targets.shape}; got {num_negatives}.")


def _cross_entropy(logits, true_idx):
  """Per-row CE and correctness of ``logits [..., N]`` vs ``true_idx [...]``."""
  true_logit = jnp.take_along_axis(logits, true_idx[..., None], axis=-1)[..., 0]
  ce = jax.nn.logsumexp(logits, axis=-1) - true_logit
  correct = jnp.argmax(logits, axis=-1) == true_idx
  return ce, correct


def cpc_infonce_per_step(predictions: jax.Array, targets: jax.Array, *,
                         negatives: str = "batch", skip: int = 0,
                         num_negatives: int | None = None,
                         key: jax.Array | None = None
                         ) -> tuple[jax.Array, jax.Array]:
  """Per-step CPC InfoNCE losses and prediction accuracies.

  Args:
    predictions: ``[B, T, K, D]``; ``predictions[b, t, k]`` predicts
      ``targets[b, t + skip + k + 1]``.
    targets: ``[B, T, D]`` (the encoder outputs ``z``).
    negatives: ``"batch"`` (default), ``"sequence"`` or ``"sampled"``
      (see the module docstring).
    skip: rows/steps skipped between context and first target (CPC v2 image
      grids); ``0`` for sequences.
    num_negatives: M, for ``negatives="sampled"``.
    key: PRNG key, for ``negatives="sampled"``.

  Returns:
    ``(loss [K], accuracy [K])``: step ``k``'s mean cross-entropy over its
    valid ``(b, t)`` (``t < T - skip - k - 1``) and the fraction of those
    whose highest-scoring candidate is the true target.
  """
  _check(predictions, targets, skip, negatives, num_negatives, key)
  b, t, num_steps, d = predictions.shape
  losses, accs = [], []
  if negatives == "batch":
    flat = replicate(targets).reshape(b * t, d)
  if negatives == "sampled":
    flat = replicate(targets).reshape(b * t, d)
    neg_idx = jax.random.choice(key, b * t, (num_negatives,), replace=False)
    neg = flat[neg_idx]                                         # [M, D]
  for k in range(num_steps):
    offset = skip + k + 1
    valid = t - offset                                          # rows t < valid
    p = predictions[:, :valid, k]                               # [B, V, D]
    # index of the true target of (b, t) in the batch's flattened targets
    true_flat = (jnp.arange(b)[:, None] * t + jnp.arange(valid)[None, :]
                 + offset)                                      # [B, V]
    if negatives == "batch":
      logits = jnp.einsum("bvd,nd->bvn", p, flat)
      ce, correct = _cross_entropy(logits, true_flat)
    elif negatives == "sequence":
      logits = jnp.einsum("bvd,bsd->bvs", p, targets)
      true_idx = jnp.broadcast_to(jnp.arange(valid)[None, :] + offset,
                                  (b, valid))
      ce, correct = _cross_entropy(logits, true_idx)
    else:  # sampled
      pos = jnp.sum(p * targets[:, offset:], axis=-1)           # [B, V]
      neg_logits = jnp.einsum("bvd,md->bvm", p, neg)
      neg_logits = jnp.where(neg_idx[None, None, :] == true_flat[..., None],
                             -jnp.inf, neg_logits)
      logits = jnp.concatenate([pos[..., None], neg_logits], axis=-1)
      ce, correct = _cross_entropy(logits, jnp.zeros((b, valid), jnp.int32))
    losses.append(jnp.mean(ce))
    accs.append(jnp.mean(correct.astype(jnp.float32)))
  return jnp.stack(losses), jnp.stack(accs)


def cpc_infonce(predictions: jax.Array, targets: jax.Array, *,
                negatives: str = "batch", skip: int = 0,
                num_negatives: int | None = None,
                key: jax.Array | None = None) -> jax.Array:
  """CPC's InfoNCE loss: the mean over steps k of the mean over valid (b, t).

  ``predictions [B, T, K, D]`` with ``predictions[b, t, k]`` predicting
  ``targets[b, t + skip + k + 1]`` (``skip=0``: step k + 1 ahead), ``targets
  [B, T, D]``; score = dot product. With ``negatives="batch"`` every
  prediction's candidates are all ``B * T`` targets of the batch (the true one
  once); for each step k the cross-entropy is averaged over the (b, t) with
  ``t + skip + k + 1 < T``, then the K step losses are averaged.
  :func:`cpc_infonce_per_step` gives the per-step losses and accuracies.

  Raises:
    ValueError: on shapes that disagree, a step with no valid pair, or an
      unknown ``negatives`` mode.
  """
  loss, _ = cpc_infonce_per_step(predictions, targets, negatives=negatives,
                                 skip=skip, num_negatives=num_negatives,
                                 key=key)
  return jnp.mean(loss)


def cpc_num_candidates(batch: int, length: int, *, negatives: str = "batch",
                       num_negatives: int | None = None) -> int:
  """Candidates per prediction (for the bound ``log N - L``): ``B*T``
  (batch), ``T`` (sequence) or ``1 + M`` (sampled, at most)."""
  if negatives == "batch":
    return batch * length
  if negatives == "sequence":
    return length
  if negatives == "sampled":
    if num_negatives is None:
      raise ValueError("negatives='sampled' needs num_negatives.")
    return 1 + int(num_negatives)
  raise ValueError(f"negatives must be one of {NEGATIVE_MODES}; got "
                   f"{negatives!r}.")
