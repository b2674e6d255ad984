"""Orbax checkpoints of a method's state pytree.

Layout: ``workdir/checkpoints/<step>/`` (Orbax ``CheckpointManager``), each
step with an optional JSON ``metadata`` dict (Orbax ``custom_metadata``; the
training loop records the config and the data-pipeline position there).

Safety:

* A save is atomic on local and network file systems: Orbax writes the step
  into ``<step>.orbax-checkpoint-tmp-<n>`` and renames it to ``<step>`` only
  once every file (and the metadata) is written. A process that dies while
  saving leaves the tmp folder, which is never listed as a step, so the last
  good checkpoint stays the latest one. (Leftover tmp folders are reported by
  :meth:`Checkpointer.unfinished` and left in place.)
* :meth:`Checkpointer.restore_last_good` restores the newest checkpoint that
  can be read, warning (:class:`CheckpointWarning`, naming the step and path)
  about each newer one that cannot; it raises :class:`CheckpointError` only
  when none can be read. :meth:`Checkpointer.set_aside` renames an unreadable
  step folder to ``<step>.corrupt`` so that training can write that step again;
  nothing is ever deleted except by Orbax's ``max_to_keep``.
* :meth:`Checkpointer.restore` of one given (or the latest) step raises
  :class:`CheckpointError` naming the step and what to do.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

TMP_MARKER = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
  """A checkpoint is missing, corrupt or does not match the state's structure."""


class CheckpointWarning(UserWarning):
  """A checkpoint was skipped (unreadable) or an unfinished save was found."""


class Restored(NamedTuple):
  """What :meth:`Checkpointer.restore_last_good` restored.

  Attributes:
    state: the restored pytree.
    step: its checkpoint step.
    metadata: the step's ``metadata`` dict (``{}`` when none was saved).
    bad_steps: newer steps that could not be restored (newest first).
  """
  state: Any
  step: int
  metadata: dict
  bad_steps: list[int]


class Checkpointer:
  """Saves/restores a state pytree every ``every`` steps under ``directory``."""

  def __init__(self, directory: str, *, max_to_keep: int | None = 3,
               every: int = 1):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, save_interval_steps=max(1, every),
            create=True))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(int(step)))

  def unfinished(self) -> list[str]:
    """Paths of interrupted saves (Orbax tmp folders) under the directory."""
    if not os.path.isdir(self.directory):
      return []
    return sorted(os.path.join(self.directory, n)
                  for n in os.listdir(self.directory) if TMP_MARKER in n)

  def save(self, step: int, state: Any, *, force: bool = False,
           metadata: dict | None = None) -> bool:
    """Save ``state`` at ``step`` if the interval says so (or ``force``).

    ``metadata``: a JSON-serializable dict stored with the step (atomically,
    inside the step folder); read it back with :meth:`metadata`.
    """
    return self._mngr.save(int(step), args=ocp.args.StandardSave(state),
                           force=force,
                           custom_metadata=dict(metadata) if metadata else None)

  def metadata(self, step: int) -> dict:
    """The ``metadata`` dict saved with ``step`` (``{}`` if none)."""
    return dict(self._mngr.metadata(int(step)).custom_metadata or {})

  def restore(self, target: Any, step: int | None = None) -> Any:
    """Restore into the structure (and shardings) of ``target``.

    ``target`` may be a concrete state or ``jax.eval_shape`` of one. Raises
    :class:`CheckpointError` when there is no checkpoint or the step cannot be
    read (use :meth:`restore_last_good` to fall back to an earlier step).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint under {self.directory}: train "
                            "first, or point --workdir at a finished run.")
    try:
      return self._restore(target, step)
    except Exception as e:  # Orbax raises several types for unreadable data.
      earlier = [s for s in self.all_steps() if s < step]
      hint = (f"move {self.step_path(step)} aside to resume "
              f"from step {earlier[-1]}" if earlier else
              "start a new run in a fresh --workdir")
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} could not be restored "
          f"({type(e).__name__}: {str(e)[:300]}). It may be corrupt or from a "
          f"different model/config; {hint}. Nothing was deleted.") from e

  def _restore(self, target: Any, step: int) -> Any:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def restore_last_good(
      self, target: Any, *,
      verify: Callable[[int, Any, dict], None] | None = None) -> Restored:
    """Restore the newest step that can be read, falling back to older ones.

    Each newer step that fails (Orbax cannot read it, its metadata cannot be
    read, or ``verify(step, state, metadata)`` raises :class:`CheckpointError`)
    is reported with a :class:`CheckpointWarning` naming the step and its path,
    and left on disk. Raises :class:`CheckpointError` when there is no
    checkpoint or none can be restored.
    """
    steps = self.all_steps()
    if not steps:
      raise CheckpointError(f"no checkpoint under {self.directory}: train "
                            "first, or point --workdir at a finished run.")
    bad, errors = [], []
    for step in reversed(steps):
      reason = None
      try:
        state = self._restore(target, step)
        meta = self.metadata(step)
      except Exception as e:  # pylint: disable=broad-except
        reason = e            # Orbax raises several types for unreadable data.
      if reason is None and verify is not None:
        try:
          verify(step, state, meta)
        except CheckpointError as e:  # anything else propagates
          reason = e
      if reason is not None:
        reason = f"{type(reason).__name__}: {str(reason)[:300]}"
        errors.append(f"step {step} ({self.step_path(step)}): {reason}")
        bad.append(step)
        msg = (f"checkpoint at step {step} ({self.step_path(step)}) cannot be "
               f"restored ({reason}); trying the previous one. Nothing was "
               "deleted.")
        warnings.warn(msg, CheckpointWarning, stacklevel=2)
        logging.warning(msg)
        continue
      return Restored(state, step, meta, bad)
    raise CheckpointError(
        f"no checkpoint under {self.directory} can be restored: "
        + "; ".join(errors) + ". Start a new run in a fresh --workdir. "
        "Nothing was deleted.")

  def set_aside(self, steps) -> list[str]:
    """Rename the folders of ``steps`` to ``<step>.corrupt[-n]`` (kept on disk,
    no longer listed as steps) so those steps can be written again. Process 0
    renames; every process reloads. Returns the new paths."""
    moved = []
    if jax.process_index() == 0:
      for step in steps:
        src = self.step_path(step)
        if not os.path.exists(src):
          continue
        dst, n = src + ".corrupt", 0
        while os.path.exists(dst):
          n += 1
          dst = f"{src}.corrupt-{n}"
        os.rename(src, dst)
        moved.append(dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      multihost_utils.sync_global_devices("ssljax_checkpoint_set_aside")
    self._mngr.reload()
    return moved

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
