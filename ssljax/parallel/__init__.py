"""Mesh and sharding helpers: one 1-D mesh over all devices, axis ``data``;
multi-host start-up (``maybe_initialize_distributed``); ``map_batches`` (a
jitted function over a large host array, batch by batch on the mesh)."""

from ssljax.parallel.batched import map_batches
from ssljax.parallel.distributed import (
    DistributedInfo,
    maybe_initialize_distributed,
    process_rows,
    process_rows_are_contiguous,
)
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
    "DistributedInfo",
    "check_batch_divides",
    "data_sharding",
    "make_data_mesh",
    "map_batches",
    "maybe_initialize_distributed",
    "process_rows",
    "process_rows_are_contiguous",
    "replicate",
    "replicated_sharding",
]
