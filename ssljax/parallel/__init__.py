"""Mesh and sharding helpers: one 1-D mesh over all devices, axis ``data``."""

from ssljax.parallel.mesh import (
    DATA_AXIS,
    check_batch_divides,
    data_sharding,
    make_data_mesh,
    replicate,
    replicated_sharding,
)

__all__ = [
    "DATA_AXIS",
    "check_batch_divides",
    "data_sharding",
    "make_data_mesh",
    "replicate",
    "replicated_sharding",
]
