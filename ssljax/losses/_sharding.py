"""The two sharding facts the losses need, written with ``jax.sharding`` only.

The losses sit at the bottom of ssljax (they import no other ssljax
package), so the batch axis name and the gather-to-every-device move live
here; :mod:`ssljax.parallel.mesh` re-exports them for everything else.
"""

from __future__ import annotations

import jax
from jax.sharding import PartitionSpec as P

#: The batch axis of the device mesh (``ssljax.parallel.make_data_mesh``).
DATA_AXIS = "data"


def spec_of(x) -> P | None:
  """The explicit PartitionSpec of a traced or concrete array, if any."""
  try:
    sharding = jax.typeof(x).sharding
  except Exception:  # pragma: no cover - very old JAX
    return None
  if sharding is None or getattr(sharding, "mesh", None) is None:
    return None
  if sharding.mesh.empty:
    return None
  return sharding.spec


def replicate(x: jax.Array) -> jax.Array:
  """All-gather a (possibly batch-sharded) array so every device holds it all.

  A no-op outside an explicit mesh or when ``x`` is not sharded (on an
  ``Auto`` mesh the compiler inserts the all-gather itself).
  """
  spec = spec_of(x)
  if spec is None or all(s is None for s in spec):
    return x
  return jax.reshard(x, P())
