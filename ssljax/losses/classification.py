"""Softmax classification of pretext labels (rotation, jigsaw, relative
position, quantized colours): the mean cross-entropy and the top-1 accuracy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = ["classification_metrics"]


def classification_metrics(logits: jax.Array, labels: jax.Array
                           ) -> tuple[jax.Array, jax.Array]:
  """Mean softmax cross-entropy and top-1 accuracy, both float32 scalars.

  Args:
    logits: ``[..., K]`` (any float dtype; computed in float32).
    labels: integer ``[...]`` in ``[0, K)``, the leading shape of ``logits``.

  Returns:
    ``(loss, accuracy)``.
  """
  if logits.shape[:-1] != labels.shape:
    raise ValueError(f"logits {logits.shape} and labels {labels.shape} differ "
                     "in their leading dimensions.")
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  acc = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
  return loss, acc
