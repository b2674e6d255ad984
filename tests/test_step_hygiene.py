"""The train step: mixed precision switch, and no host<->device copies inside."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_config, tiny_dataset
from ssljax.train.build import build_method


def _step(config, ds):
  method, _ = build_method(config, len(ds))
  state = method.init(jax.random.key(0), ds.image_shape)
  return method, state, jnp.asarray(ds.images[:16])


def test_bfloat16_compute_keeps_float32_params_stats_and_loss():
  ds = tiny_dataset(n=32)
  ref_method, ref_state, images = _step(tiny_config(), ds)
  method, state, _ = _step(tiny_config(compute_dtype="bfloat16"), ds)
  key = jax.random.key(1)
  new, metrics = jax.jit(method.train_step)(state, images, key)
  ref_new, ref_metrics = jax.jit(ref_method.train_step)(ref_state, images, key)
  for tree in (new.params, new.batch_stats, new.opt_state):
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32, leaf.dtype
  assert metrics["loss"].dtype == jnp.float32
  # bf16 activations really are used: the encoder's features (returned as
  # float32) are bf16-rounded values and differ from the float32 model's ...
  x = jax.random.normal(jax.random.key(3), (2, 8, 8, 1))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  h_bf16, _ = method.model.apply(variables, x, train=False)
  h_f32, _ = ref_method.model.apply(variables, x, train=False)
  np.testing.assert_array_equal(h_bf16, h_bf16.astype(jnp.bfloat16).astype(h_bf16.dtype))
  assert not np.array_equal(h_bf16, h_f32)
  # ... and the loss agrees with float32 to bf16 precision.
  np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=3e-2)


def test_bad_compute_dtype_is_rejected():
  with pytest.raises(ValueError, match="compute_dtype"):
    build_method(tiny_config(compute_dtype="int8"), 64)


def test_train_step_makes_no_host_device_transfers():
  ds = tiny_dataset(n=32)
  method, state, images = _step(tiny_config(), ds)
  key = jax.random.key(2)
  step = jax.jit(method.train_step, donate_argnums=0)
  state, _ = step(state, images, key)          # compile outside the guard
  jax.block_until_ready(state)
  with jax.transfer_guard("disallow"):
    state, metrics = step(state, images, key)
    jax.block_until_ready((state, metrics))
  # The guard is live: an implicit host->device copy inside it raises.
  with pytest.raises(Exception, match="[Dd]isallowed"):
    with jax.transfer_guard("disallow"):
      step(state, np.asarray(images), key)
