"""Multi-host start-up on JAX's own runtime (``jax.distributed``).

A multi-host run starts the SAME program once per process (one per TPU VM
worker, one per GPU under SLURM, or several on one machine for tests); each
process drives its local devices and reads its own share of every global
batch (``ssljax.data.batches``), and ``jax.distributed.initialize`` connects
the processes so that ``jax.devices()`` lists every device of the job and one
``jax.jit`` step runs over all of them.

:func:`maybe_initialize_distributed` must run before anything touches a
device (``jax.devices()``, creating an array, ``jax.jit`` execution).
``experiments/pretrain.py`` calls it first thing in ``main``. It decides, in
this order:

1. ``SSLJAX_DISTRIBUTED=off`` (or ``0``/``false``/``no``): never initialize.
2. Explicit settings (keyword arguments, else the environment):
   ``SSLJAX_COORDINATOR=host:port`` (process 0's address, reachable from every
   process), ``SSLJAX_NUM_PROCESSES``, ``SSLJAX_PROCESS_ID`` and optionally
   ``SSLJAX_LOCAL_DEVICE_IDS=0,1``. ``SSLJAX_NUM_PROCESSES=1`` is a no-op.
3. A cluster JAX detects itself, initialized with
   ``jax.distributed.initialize()`` and no arguments: a SLURM job step with
   more than one task (``srun``), an Open MPI launch with more than one rank,
   a Cloud TPU slice with several workers (``TPU_WORKER_HOSTNAMES`` or
   ``MEGASCALE_COORDINATOR_ADDRESS`` set), or ``SSLJAX_DISTRIBUTED=auto``
   (always call it; use this on TPU VMs, where the worker list comes from the
   metadata server).
4. Otherwise one process: nothing is done.

On CPU, cross-process collectives need an implementation: the option
``jax_cpu_collectives_implementation`` ("gloo", "mpi" or "megascale" in JAX
0.10; its default there is "gloo") is set to "gloo" when it is unset.

Global batch order. Every process computes the same global permutation and
takes the contiguous share ``[i * b, (i + 1) * b)`` of each global batch
(``b = batch_size // process_count``); ``ssljax.data.to_global`` places a
process's share on that process's devices with
``jax.make_array_from_process_local_data``. When the mesh lists each
process's devices as one block in process order (CPU and GPU meshes from
``jax.devices()``; :func:`process_rows_are_contiguous` checks it), the global
batch is row for row the batch a single process would build, so a
multi-process run computes what a one-process run over the same number of
devices computes (up to the order of floating-point all-reduces).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

import jax

from ssljax.parallel.mesh import data_sharding

__all__ = [
    "DistributedInfo",
    "maybe_initialize_distributed",
    "process_rows",
    "process_rows_are_contiguous",
]

ENV_MODE = "SSLJAX_DISTRIBUTED"
ENV_COORDINATOR = "SSLJAX_COORDINATOR"
ENV_NUM_PROCESSES = "SSLJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "SSLJAX_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "SSLJAX_LOCAL_DEVICE_IDS"

_OFF = ("off", "0", "false", "no")
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
  """What :func:`maybe_initialize_distributed` did.

  Attributes:
    initialized: whether ``jax.distributed`` is initialized (by this call or
      before it).
    how: ``"single"`` (one process, nothing done), ``"off"``
      (``SSLJAX_DISTRIBUTED=off``), ``"explicit"`` (SSLJAX_* settings or
      arguments), ``"slurm"``, ``"mpi"``, ``"tpu"``, ``"auto"``
      (``SSLJAX_DISTRIBUTED=auto``) or ``"already"`` (initialized before).
    process_index, process_count: this process and the number of processes
      (0 and 1 for a single process).
    coordinator: the coordinator address when it was given explicitly.
  """
  initialized: bool
  how: str
  process_index: int = 0
  process_count: int = 1
  coordinator: str | None = None


def _int_env(env: Mapping[str, str], name: str) -> int | None:
  value = env.get(name, "").strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name}={value!r} is not an integer.") from None


def _detect_cluster(env: Mapping[str, str]) -> str | None:
  """The multi-process cluster JAX can auto-detect here, if any."""
  mode = env.get(ENV_MODE, "").strip().lower()
  if mode == "auto":
    return "auto"
  if mode and mode not in _OFF:
    raise ValueError(f"{ENV_MODE}={env[ENV_MODE]!r}: use 'auto' (always call "
                     "jax.distributed.initialize()) or 'off'; leave it unset "
                     "to detect SLURM / Open MPI / TPU slices.")
  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
           "SLURM_PROCID", "SLURM_LOCALID")
  if all(v in env for v in slurm) and (_int_env(env, "SLURM_NTASKS") or 1) > 1:
    return "slurm"
  if ("OMPI_MCA_orte_hnp_uri" in env
      and (_int_env(env, "OMPI_COMM_WORLD_SIZE") or 1) > 1):
    return "mpi"
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  if len(hosts) > 1 or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return "tpu"
  return None


def _use_gloo_on_cpu() -> None:
  """Give CPU devices a cross-process collective implementation."""
  try:
    if jax.config.jax_cpu_collectives_implementation is None:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except AttributeError:  # pragma: no cover - option renamed in another JAX
    _log.warning("this JAX has no jax_cpu_collectives_implementation option; "
                 "multi-process CPU collectives may be unavailable.")


def maybe_initialize_distributed(
    *, coordinator: str | None = None, num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
    initialization_timeout: int = 300,
    env: Mapping[str, str] | None = None) -> DistributedInfo:
  """Call ``jax.distributed.initialize`` when launched as several processes.

  Call it once, before anything touches a device; calling it again, or after
  another ``jax.distributed.initialize``, is a no-op. See the module doc for
  the order of the checks.

  Args:
    coordinator, num_processes, process_id, local_device_ids: explicit
      settings; each defaults to its ``SSLJAX_*`` environment variable.
    initialization_timeout: seconds to wait for every process to connect.
    env: the environment to read (default ``os.environ``).

  Returns:
    A :class:`DistributedInfo`.

  Raises:
    ValueError: incomplete or inconsistent explicit settings (naming what is
      missing), or an unknown ``SSLJAX_DISTRIBUTED``.
    RuntimeError: devices were already in use (JAX's message, with a hint).
  """
  env = os.environ if env is None else env
  if jax.distributed.is_initialized():
    return DistributedInfo(True, "already", jax.process_index(),
                           jax.process_count())
  if env.get(ENV_MODE, "").strip().lower() in _OFF:
    return DistributedInfo(False, "off")

  coordinator = coordinator or env.get(ENV_COORDINATOR) or None
  if num_processes is None:
    num_processes = _int_env(env, ENV_NUM_PROCESSES)
  if process_id is None:
    process_id = _int_env(env, ENV_PROCESS_ID)
  if local_device_ids is None and env.get(ENV_LOCAL_DEVICE_IDS, "").strip():
    local_device_ids = [int(i) for i in env[ENV_LOCAL_DEVICE_IDS].split(",")]

  explicit = (coordinator, num_processes, process_id)
  if any(v is not None for v in explicit):
    if num_processes == 1 and process_id in (None, 0):
      return DistributedInfo(False, "single")
    missing = [name for name, v in zip(
        (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID), explicit)
               if v is None]
    if missing:
      raise ValueError(
          "multi-process settings are incomplete: missing "
          + ", ".join(missing) + f" (given: {ENV_COORDINATOR}={coordinator!r}, "
          f"{ENV_NUM_PROCESSES}={num_processes!r}, {ENV_PROCESS_ID}="
          f"{process_id!r}). Every process needs the same coordinator "
          "host:port and process count and its own id in [0, count).")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"{ENV_PROCESS_ID}={process_id} is not in [0, "
                       f"{ENV_NUM_PROCESSES}={num_processes}).")
    how, kwargs = "explicit", dict(
        coordinator_address=coordinator, num_processes=num_processes,
        process_id=process_id, local_device_ids=local_device_ids)
  else:
    how = _detect_cluster(env)
    if how is None:
      return DistributedInfo(False, "single")
    kwargs = ({"local_device_ids": local_device_ids}
              if local_device_ids is not None else {})

  _use_gloo_on_cpu()
  try:
    jax.distributed.initialize(initialization_timeout=initialization_timeout,
                               **kwargs)
  except RuntimeError as e:
    if "before" in str(e).lower():
      raise RuntimeError(
          f"{e} Call ssljax.parallel.maybe_initialize_distributed() first "
          "thing in the program, before jax.devices() or any array is "
          "created.") from e
    raise
  info = DistributedInfo(True, how, jax.process_index(), jax.process_count(),
                         coordinator)
  _log.info("jax.distributed initialized (%s): process %d of %d, %d local / "
            "%d global devices.", how, info.process_index, info.process_count,
            jax.local_device_count(), jax.device_count())
  return info


def process_rows(mesh, global_batch: int,
                 process_index: int | None = None) -> list[int]:
  """Global batch rows held by ``process_index``'s devices when a batch of
  ``global_batch`` rows is sharded over ``mesh``'s ``data`` axis (sorted)."""
  pi = jax.process_index() if process_index is None else process_index
  rows = set()
  for device, index in data_sharding(mesh, 1).devices_indices_map(
      (global_batch,)).items():
    if device.process_index == pi:
      rows.update(range(global_batch)[index[0]])
  return sorted(rows)


def process_rows_are_contiguous(mesh, global_batch: int) -> bool:
  """Whether process ``i`` holds rows ``[i * b, (i + 1) * b)`` for every
  process ``i`` (``b = global_batch // process_count``): then the shares of
  ``ssljax.data.batches`` land in the global batch in a one-process run's
  order (module doc)."""
  processes = sorted({d.process_index for d in mesh.devices.flat})
  b = global_batch // len(processes)
  return all(process_rows(mesh, global_batch, p) == list(range(i * b, (i + 1) * b))
             for i, p in enumerate(processes))
