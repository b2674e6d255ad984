"""Orbax checkpoints of a method's state pytree.

Layout: ``workdir/checkpoints/<step>/`` (Orbax ``CheckpointManager``). A
checkpoint that cannot be read raises :class:`CheckpointError` naming the step
and what to do; nothing already saved is deleted.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint is missing, corrupt or does not match the state's structure."""


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
    return list(self._mngr.all_steps())

  def save(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Save ``state`` at ``step`` if the interval says so (or ``force``)."""
    return self._mngr.save(int(step), args=ocp.args.StandardSave(state),
                           force=force)

  def restore(self, target: Any, step: int | None = None) -> Any:
    """Restore into the structure (and shardings) of ``target``.

    ``target`` may be a concrete state or ``jax.eval_shape`` of one.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint under {self.directory}: train "
                            "first, or point --workdir at a finished run.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      return self._mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax raises several types for unreadable data.
      earlier = [s for s in self.all_steps() if s < step]
      hint = (f"move {os.path.join(self.directory, str(step))} aside to resume "
              f"from step {earlier[-1]}" if earlier else
              "start a new run in a fresh --workdir")
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} could not be restored "
          f"({type(e).__name__}: {str(e)[:300]}). It may be corrupt or from a "
          f"different model/config; {hint}. Nothing was deleted.") from e

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
