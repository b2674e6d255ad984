"""Host batches, per-process sharding, prefetch, and global arrays.

A step's batch is a GLOBAL batch of ``batch_size`` examples. Every process
computes the same global order (one seeded permutation per epoch) and yields
its contiguous share, ``batch_size // process_count`` examples; the shares of
one step are disjoint and together make the global batch. :func:`to_global`
then assembles the per-process shares into one ``jax.Array`` sharded over the
mesh axis ``data``.

Order is a pure function of ``(seed, epoch)``, so ``batches(..., start_step=k)``
yields exactly what an uninterrupted iterator yields from step ``k`` on (resume
after a checkpoint) without touching the skipped batches.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np

from ssljax.data.dataset import ArrayDataset
from ssljax.data.sources import _local_batch
from ssljax.parallel.mesh import check_batch_divides, data_sharding

__all__ = [
    "batches",
    "device_prefetch",
    "epoch_permutation",
    "prefetch",
    "steps_per_epoch",
    "to_global",
]


def steps_per_epoch(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
  """Global steps in one pass over ``n`` examples at global ``batch_size``."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
  """The global example order of ``epoch``: ``default_rng([seed, epoch]).permutation(n)``."""
  if not shuffle:
    return np.arange(n)
  return np.random.default_rng([seed, epoch]).permutation(n)


def batches(dataset: ArrayDataset, *, batch_size: int, seed: int, shuffle: bool = True,
            drop_remainder: bool = True, epochs: int | None = None, start_step: int = 0,
            process_index: int | None = None, process_count: int | None = None,
            ) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of each global batch of ``dataset``.

  Args:
    dataset: the in-memory dataset (the same on every process).
    batch_size: the GLOBAL batch size; must divide by ``process_count``.
    seed: non-negative int; epoch ``e`` visits examples in the order
      ``np.random.default_rng([seed, e]).permutation(N)``.
    shuffle: ``False`` visits examples in stored order every epoch.
    drop_remainder: drop each epoch's incomplete last global batch. With
      ``False`` the last batch is short (its per-process shares split it as
      evenly as possible, the first processes taking one more).
    epochs: number of passes; ``None`` runs forever.
    start_step: first global step to yield (global steps count across epochs);
      skipped steps cost nothing.
    process_index, process_count: default ``jax.process_index()`` /
      ``jax.process_count()``.

  Yields:
    ``{"image": uint8 [b, H, W, C], "label": int32 [b]}``, ``b = batch_size //
    process_count``.
  """
  if process_index is None or process_count is None:
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  local = _local_batch(batch_size, int(process_count), int(process_index))
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}.")
  if epochs is not None and epochs < 0:
    raise ValueError(f"epochs must be >= 0 or None, got {epochs}.")
  n = len(dataset)
  spe = steps_per_epoch(n, batch_size, drop_remainder=drop_remainder)
  if spe == 0:
    raise ValueError(
        f"{dataset.name or 'dataset'} has {n} examples, fewer than one global batch "
        f"of {batch_size} (drop_remainder={drop_remainder}): lower batch_size.")
  return _batches(dataset, batch_size, local, int(seed), shuffle, epochs, start_step,
                  int(process_index), int(process_count), spe)


def _batches(dataset, batch_size, local, seed, shuffle, epochs, start_step, pi, pc, spe):
  # An image dataset's ``images``, or a sequence dataset's ``inputs``
  # (e.g. ``SpeechDataset`` waveforms): batched the same way under "image".
  images = dataset.images if hasattr(dataset, "images") else dataset.inputs
  labels, n = dataset.labels, len(dataset)
  epoch, step_in_epoch = divmod(start_step, spe)
  while epochs is None or epoch < epochs:
    order = epoch_permutation(n, seed, epoch, shuffle)
    for i in range(step_in_epoch, spe):
      start = i * batch_size
      size = min(batch_size, n - start)
      if size == batch_size:
        lo, hi = start + pi * local, start + (pi + 1) * local
      else:  # short last batch (drop_remainder=False)
        lo, hi = start + (size * pi) // pc, start + (size * (pi + 1)) // pc
      idx = order[lo:hi]
      yield {"image": images[idx], "label": labels[idx]}
    epoch, step_in_epoch = epoch + 1, 0


# ---------------------------------------------------------------------------
# Prefetch.


class _Raised:
  def __init__(self, error: BaseException):
    self.error = error


_END = object()


def prefetch(iterator: Iterable, size: int = 2) -> Iterator:
  """Produce ``iterator``'s items on a background thread, ``size`` ahead.

  An exception raised by ``iterator`` is re-raised to the consumer (at the
  position it occurred). Closing the returned generator (or dropping it)
  stops the thread once it finishes the item it is producing.
  """
  if size < 1:
    raise ValueError(f"prefetch size must be >= 1, got {size}.")
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for item in iterator:
        if not put(item):
          return
    except BaseException as e:  # pylint: disable=broad-except
      put(_Raised(e))
      return
    put(_END)

  thread = threading.Thread(target=produce, name="ssljax-prefetch", daemon=True)
  thread.start()

  def consume():
    try:
      while True:
        item = q.get()
        if item is _END:
          return
        if isinstance(item, _Raised):
          raise item.error
        yield item
    finally:
      stop.set()
      while True:  # unblock a producer waiting on a full queue
        try:
          q.get_nowait()
        except queue.Empty:
          break
      thread.join(timeout=1.0)

  return consume()


# ---------------------------------------------------------------------------
# Global arrays.


def _process_count_of(mesh) -> int:
  return len({d.process_index for d in mesh.devices.flat})


def to_global(batch: Any, mesh) -> Any:
  """Assemble each process's host batch into global arrays sharded over ``data``.

  Every leaf ``x`` (leading axis = this process's share of the batch) becomes
  ``jax.make_array_from_process_local_data(data_sharding(mesh, x.ndim), x)``,
  whose leading axis is the global batch. Raises the ``check_batch_divides``
  ValueError if the global batch does not split evenly over the mesh devices.
  """
  leaves = jax.tree.leaves(batch)
  if not leaves:
    return batch
  processes = _process_count_of(mesh)
  sizes = {np.shape(x)[0] for x in leaves}
  if len(sizes) != 1:
    raise ValueError(f"batch leaves disagree on the batch size: "
                     f"{jax.tree.map(np.shape, batch)}.")
  check_batch_divides(sizes.pop() * processes, mesh)

  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(data_sharding(mesh, x.ndim), x)

  return jax.tree.map(one, batch)


def device_prefetch(iterator: Iterable, mesh, size: int = 2) -> Iterator:
  """Yield :func:`to_global` of each batch, keeping ``size`` batches in flight.

  Transfers are asynchronous, so the next batches copy to the devices while the
  current step runs (double-buffering with ``size=2``).
  """
  if size < 1:
    raise ValueError(f"device_prefetch size must be >= 1, got {size}.")
  return _device_prefetch(iter(iterator), mesh, size)


def _device_prefetch(it: Iterator, mesh, size: int) -> Iterator:
  buffer: collections.deque = collections.deque()

  def fill():
    while len(buffer) < size:
      try:
        item = next(it)
      except StopIteration:
        return
      buffer.append(to_global(item, mesh))

  fill()
  while buffer:
    yield buffer.popleft()
    fill()
