"""A 1-D device mesh over all devices with the batch axis ``data``.

``jax.make_mesh`` builds *explicit* sharding axes in current JAX: inside a jitted
function every array carries its sharding in its type (``jax.typeof(x).sharding``)
and an operation whose operands disagree (``vmap`` over replicated keys and a
sharded batch, ``z @ z.T`` over a sharded batch) is a type error rather than a
silent all-gather. The helpers here make the two resharding moves a step needs
explicit: give per-example arrays the batch's sharding (:func:`like_batch`) and
gather a sharded operand to every device (:func:`replicate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# The losses (the bottom layer) own the axis name and the gather; they are
# re-exported here for every other user of the mesh.
from ssljax.losses._sharding import DATA_AXIS, replicate
from ssljax.losses._sharding import spec_of as _spec

__all__ = ["DATA_AXIS", "check_batch_divides", "data_sharding", "like_batch",
           "make_data_mesh", "replicate", "replicated_sharding"]


def make_data_mesh(devices: Sequence[jax.Device] | None = None, *,
                   explicit: bool = False) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all global devices).

  The axis is ``Auto`` by default: the compiler propagates the batch sharding
  through the model and inserts the collectives (global BatchNorm statistics,
  all-gathered logits). ``explicit=True`` gives JAX's explicit-sharding axis,
  which the losses and augmentations here accept too; Flax Linen convolutions
  do not yet differentiate under explicit axes (JAX 0.10 raises a
  ``ShardingTypeError`` asking for ``out_sharding`` in the weight-gradient
  convolution), so train steps run on the ``Auto`` mesh.
  """
  devices = list(jax.devices() if devices is None else devices)
  kind = jax.sharding.AxisType.Explicit if explicit else jax.sharding.AxisType.Auto
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(kind,),
                       devices=devices)


def data_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
  """Shard the leading (batch) axis over ``data``; replicate the rest."""
  return NamedSharding(mesh, P(DATA_AXIS, *([None] * (ndim - 1))))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_divides(batch_size: int, mesh_or_count) -> None:
  """Raise a ValueError if ``batch_size`` does not split evenly over devices."""
  count = mesh_or_count if isinstance(mesh_or_count, int) else mesh_or_count.size
  if batch_size % count:
    lower = (batch_size // count) * count
    raise ValueError(
        f"global batch size {batch_size} does not divide over {count} devices "
        f"(mesh axis '{DATA_AXIS}'): use a multiple of {count}, e.g. "
        f"{max(lower, count)} or {lower + count} (--config.batch_size=...).")


def like_batch(x: jax.Array, batch: jax.Array) -> jax.Array:
  """Give ``x`` (leading axis = batch) the batch sharding of ``batch``.

  A no-op outside an explicit mesh or when ``batch`` is not sharded.
  """
  spec = _spec(batch)
  if spec is None or len(spec) == 0 or spec[0] is None:
    return x
  if _spec(x) is not None and len(_spec(x)) and _spec(x)[0] == spec[0]:
    return x
  return jax.reshard(x, P(spec[0], *([None] * (x.ndim - 1))))
