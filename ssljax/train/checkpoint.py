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
* Checksums: once a save has finished, the SHA-256 and size of every file of
  the step go into ``<step>/ssljax_checksums.json`` (:data:`CHECKSUM_FILE`,
  written atomically); every restore verifies them first, so a bit flip or a
  truncated copy is caught (:class:`CheckpointCorruptError`) instead of
  restoring silently. A step saved by an older ssljax, or one whose process
  died between Orbax's rename and the checksum file, has none and is restored
  unverified.
* Only corruption sets a checkpoint aside: a checksum mismatch, missing files,
  or data Orbax cannot decode. An I/O error that says nothing about the
  checkpoint (permission denied, a network file system timing out, EIO) is
  raised as it is, and nothing is renamed.
* A failed save (a full disk, say) raises :class:`CheckpointSaveError`, which
  names the step, the cause and the last complete checkpoint, which is intact
  (Orbax never renames a half-written step into place).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

TMP_MARKER = ".orbax-checkpoint-tmp"
#: Per-step file of checksums (``{relative path: [size, sha256]}``).
CHECKSUM_FILE = "ssljax_checksums.json"


class CheckpointError(RuntimeError):
  """A checkpoint is missing, corrupt or does not match the state's structure."""


class CheckpointCorruptError(CheckpointError):
  """A step's files do not match the checksums written when it was saved."""


class CheckpointSaveError(CheckpointError):
  """A save failed (disk full, I/O error); the earlier checkpoints are intact.

  Attributes: ``step`` (the step that was being saved), ``last_good`` (the
  newest complete step, or None), ``cause`` (the original exception).
  """

  def __init__(self, step, directory, cause, last_good):
    self.step, self.last_good, self.cause = step, last_good, cause
    full = (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC,
                                                           errno.EDQUOT)
            or "No space left on device" in str(cause))
    detail = (f" ({cause.strerror})" if full and isinstance(cause, OSError)
              and cause.strerror and cause.errno == errno.ENOSPC
              and "free" in cause.strerror else "")
    what = ("the disk is full" + detail if full else
            f"{type(cause).__name__}: {str(cause)[:300]}")
    kept = (f"the checkpoint at step {last_good} is intact" if last_good
            is not None else "no earlier checkpoint exists")
    fix = ("free some space (or move --workdir to a larger disk)" if full else
           "fix the cause")
    super().__init__(
        f"saving the checkpoint at step {step} in {directory} failed "
        f"({what}); {kept} and nothing was deleted. {fix.capitalize()}, then "
        "run the same command to resume"
        + (f" from step {last_good}." if last_good is not None else "."))


def _is_corruption(e: BaseException) -> bool:
  """Whether a restore error says the checkpoint itself is bad (rather than
  the storage being unreachable right now)."""
  if isinstance(e, CheckpointCorruptError | FileNotFoundError | EOFError):
    return True
  if isinstance(e, OSError):          # permission, EIO, timeouts: transient
    return False
  text = str(e)
  transient = ("PERMISSION_DENIED", "Permission denied", "UNAVAILABLE",
               "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
  if any(t in text for t in transient):
    return False
  # Orbax and TensorStore report undecodable or missing data as these.
  return isinstance(e, ValueError | KeyError | IndexError | TypeError |
                    AssertionError) or type(e).__module__.startswith(
                        ("tensorstore", "orbax"))


def _file_digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _step_files(step_dir: str) -> list[str]:
  out = []
  for root, _, files in os.walk(step_dir):
    for name in files:
      rel = os.path.relpath(os.path.join(root, name), step_dir)
      if rel != CHECKSUM_FILE and not rel.startswith(CHECKSUM_FILE + ".tmp"):
        out.append(rel)
  return sorted(out)


def write_checksums(step_dir: str) -> dict:
  """Write ``step_dir/ssljax_checksums.json`` for the files under it now
  (atomically: a temporary file, then a rename). Returns the checksums."""
  sums = {rel: [os.path.getsize(os.path.join(step_dir, rel)),
                _file_digest(os.path.join(step_dir, rel))]
          for rel in _step_files(step_dir)}
  path = os.path.join(step_dir, CHECKSUM_FILE)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      json.dump(sums, f, indent=0, sort_keys=True)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return sums


def verify_checksums(step_dir: str) -> bool:
  """Check the files of ``step_dir`` against its checksum file.

  Returns False when there is no checksum file (nothing to verify), True when
  every file matches; raises :class:`CheckpointCorruptError` naming the first
  file that is missing, has another size or other bytes.
  """
  path = os.path.join(step_dir, CHECKSUM_FILE)
  if not os.path.exists(path):
    return False
  try:
    with open(path) as f:
      sums = json.load(f)
  except ValueError as e:
    raise CheckpointCorruptError(f"{path} cannot be read ({e})") from e
  for rel, (size, digest) in sorted(sums.items()):
    file = os.path.join(step_dir, rel)
    if not os.path.exists(file):
      raise CheckpointCorruptError(f"{file} is missing")
    if os.path.getsize(file) != size:
      raise CheckpointCorruptError(
          f"{file} has {os.path.getsize(file)} bytes, {size} when saved")
    if _file_digest(file) != digest:
      raise CheckpointCorruptError(
          f"{file} does not match its checksum (its bytes changed after the "
          "save: disk or copy corruption)")
  return True


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
    self._unsummed: list[int] = []     # saved here, checksums not yet written
    self._last_complete: int | None = self._mngr.latest_step()
    self._failed: CheckpointSaveError | None = None
    self._pending: int | None = None

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def complete_steps(self) -> list[int]:
    """The steps whose folders are complete on disk now (a save in flight or
    one that failed is not among them), read from the directory."""
    if not os.path.isdir(self.directory):
      return []
    return sorted(int(n) for n in os.listdir(self.directory) if n.isdigit())

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

    The save runs in the background; a failure of the previous one is raised
    here (:class:`CheckpointSaveError`), or by :meth:`wait` / :meth:`close`.
    """
    self._finish()
    step = int(step)
    self._pending = step
    if force or self._mngr.should_save(step):
      self._check_space(step, state)
    try:
      saved = self._mngr.save(step, args=ocp.args.StandardSave(state),
                              force=force, custom_metadata=dict(metadata)
                              if metadata else None)
    except Exception as e:  # pylint: disable=broad-except
      self._fail(step, e)
    if saved:
      self._unsummed.append(step)
    return saved

  def _check_space(self, step, state) -> None:
    """Refuse a save that cannot fit, before Orbax writes a byte (a save cut
    by a full disk leaves a partial tmp folder and noisy errors)."""
    need = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state))
    need += 1 << 20                       # metadata, checksums, margin
    try:
      free = shutil.disk_usage(self.directory).free
    except OSError:
      return
    if free < need:
      self._fail(step, OSError(errno.ENOSPC, f"{free / 2**20:.1f} MiB free, "
                               f"the checkpoint needs about "
                               f"{need / 2**20:.1f} MiB"))

  def _fail(self, step, e):
    self._failed = CheckpointSaveError(step, self.directory, e,
                                       self._last_complete)
    raise self._failed from e

  def _finish(self) -> None:
    """Wait for the save in flight; write the checksums of finished steps."""
    if self._failed is not None:
      raise self._failed
    try:
      self._mngr.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._fail(self._pending, e)
    if jax.process_index() == 0:
      for step in self._unsummed:
        if os.path.isdir(self.step_path(step)):
          try:
            write_checksums(self.step_path(step))
          except OSError as e:   # the step itself is complete and readable
            msg = (f"the checkpoint at step {step} is complete, but its "
                   f"checksums could not be written ({e}); it will be "
                   "restored unverified.")
            warnings.warn(msg, CheckpointWarning, stacklevel=3)
            logging.warning(msg)
    if self._unsummed:
      self._last_complete = self._unsummed[-1]
    self._unsummed = []

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
      if not _is_corruption(e):
        raise
      earlier = [s for s in self.all_steps() if s < step]
      hint = (f"move {self.step_path(step)} aside to resume "
              f"from step {earlier[-1]}" if earlier else
              "start a new run in a fresh --workdir")
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} could not be restored "
          f"({type(e).__name__}: {str(e)[:300]}). It may be corrupt or from a "
          f"different model/config; {hint}. Nothing was deleted.") from e

  def _restore(self, target: Any, step: int) -> Any:
    verify_checksums(self.step_path(step))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def restore_last_good(
      self, target: Any, *,
      verify: Callable[[int, Any, dict], None] | None = None) -> Restored:
    """Restore the newest step that can be read, falling back to older ones.

    Each newer step that is corrupt (its checksums do not match, files are
    missing, Orbax cannot decode it or its metadata, or ``verify(step, state,
    metadata)`` raises :class:`CheckpointError`) is reported with a
    :class:`CheckpointWarning` naming the step and its path, and left on disk.
    Any other error (an ``OSError`` such as permission denied or EIO, which
    says nothing about the checkpoint) is raised as it is. Raises
    :class:`CheckpointError` when there is no checkpoint or none can be
    restored.
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
        if not _is_corruption(e):
          raise
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
    """Wait for the save in flight (raises :class:`CheckpointSaveError` if it
    failed) and write its checksums."""
    self._finish()

  def close(self) -> None:
    """Finish the save in flight and release Orbax's threads. A failed save
    is raised (once) after the manager is closed."""
    already_raised = self._failed is not None
    try:
      if not already_raised:
        self._finish()
    finally:
      try:
        self._mngr.close()
      except Exception:  # pylint: disable=broad-except
        if self._failed is None:
          raise
