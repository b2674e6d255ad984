"""The train step: mixed precision switch, and no host<->device copies inside."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_config, tiny_dataset
from ssljax.config import ConfigReader
from ssljax.methods.base import build_encoder, build_head
from ssljax.models import EncoderWithHead
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


def _conv_and_dot_dtypes(fn, *args):
  """The operand dtypes of the convolutions and matmuls in ``fn``'s jaxpr."""
  dtypes = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
        dtypes.update(str(v.aval.dtype) for v in eqn.invars)
      for value in eqn.params.values():
        for sub in (value if isinstance(value, (tuple, list)) else [value]):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            walk(inner)
  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return dtypes


def test_bfloat16_resnet_from_config_agrees_with_float32():
  """ResNet-50's blocks (bottleneck, ImageNet stem and max-pool; one block a
  stage at widths 4-8) and the projection head, built from a config with
  ``compute_dtype="bfloat16"``: every convolution and matmul takes bf16
  operands, the parameters and BN statistics stay float32, and the float32
  features of a training-mode forward agree with the float32 model's to bf16
  precision. (ResNet-18 in bf16 from a config: tests/test_gpu_session.py's
  dry run.)"""
  key = jax.random.key(0)
  x = jax.random.normal(key, (8, 16, 16, 3))
  for name, stem in (("resnet50", "imagenet"),):
    section = {"encoder": {"name": name, "stage_sizes": (1, 1),
                           "widths": (4, 8), "stem": stem},
               "head": {"out_dim": 16}}
    models = {}
    for dtype in ("float32", "bfloat16"):
      config = ConfigReader({**section, "compute_dtype": dtype})
      models[dtype] = EncoderWithHead(encoder=build_encoder(config),
                                      head=build_head(config))
    # (threefry_partitionable=False: XLA:CPU compiles this init ~6x faster.)
    with jax.threefry_partitionable(False):
      variables = jax.jit(models["bfloat16"].init)(key, x)
    for leaf in jax.tree.leaves(variables):
      assert leaf.dtype == jnp.float32, (name, leaf.dtype)
    out = {}
    for dtype, model in models.items():
      fwd = functools.partial(model.apply, mutable=["batch_stats"])
      (h, z), stats = jax.jit(fwd)(variables, x)
      assert h.dtype == z.dtype == jnp.float32
      for leaf in jax.tree.leaves(stats):
        assert leaf.dtype == jnp.float32, (name, dtype, leaf.dtype)
      ops = _conv_and_dot_dtypes(fwd, variables, x)
      assert ops == {dtype}, (name, dtype, ops)
      out[dtype] = (np.asarray(h), np.asarray(z))
    for a, b in zip(out["bfloat16"], out["float32"]):
      err = np.linalg.norm(a - b) / np.linalg.norm(b)
      assert 0 < err < 3e-2, (name, err)


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
