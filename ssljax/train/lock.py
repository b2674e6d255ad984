"""One training process per workdir: an advisory file lock.

:func:`workdir_lock` takes an exclusive ``fcntl.flock`` on
``workdir/.ssljax.lock`` (:data:`LOCK_FILE`) for the duration of a ``with``
block and writes the holder's pid, host and start time into the file. A second
process (a job launched twice, a scheduler retry while the old job still
saves) gets :class:`WorkdirLockedError`, naming the holder, before it touches
anything in the workdir.

Stale locks: the kernel drops a ``flock`` when its process dies (SIGKILL, a
crash, a lost node's local disk), so a lock file left behind by a dead process
never blocks: the next run takes the lock and says whose stale lock it took
over (a clean exit empties the file; a holder still written there died
holding it). The file itself is left in place (deleting it on exit would race
with a process that has just opened it).

File systems without working ``flock`` (some network mounts): the lock is
taken when the file system grants it; where ``flock`` is refused with an
error other than "held" the run goes on with a warning, since a lock that
cannot be taken must not stop training.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator

__all__ = ["LOCK_FILE", "WorkdirLockedError", "holder", "workdir_lock"]

#: The lock file, in the workdir.
LOCK_FILE = ".ssljax.lock"


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir (``holder``: its pid/host/...)."""

  def __init__(self, workdir: str, info: dict):
    self.workdir, self.holder = workdir, info
    who = (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
           + (f" (started {info['started']})" if info.get("started") else ""))
    super().__init__(
        f"{workdir} is in use by another training process: {who}. Two runs in "
        "one --workdir would overwrite each other's checkpoints and metrics, "
        "so nothing was changed. Wait for that process to finish (or stop it "
        "and run this command again to resume), or choose another --workdir.")


def holder(workdir: str) -> dict:
  """What the lock file of ``workdir`` says about its last holder (``{}`` if
  there is none or it cannot be read)."""
  try:
    with open(os.path.join(workdir, LOCK_FILE)) as f:
      return json.loads(f.read() or "{}")
  except (OSError, ValueError):
    return {}


@contextlib.contextmanager
def workdir_lock(workdir: str, enabled: bool = True) -> Iterator[dict]:
  """Hold the exclusive lock of ``workdir`` for the ``with`` body.

  Yields the previous holder's info when a stale lock (of a process that is
  gone) was taken over, else ``{}``. Raises :class:`WorkdirLockedError` when a
  live process holds it. ``enabled=False`` (processes other than 0 of a
  multi-process run, which share the workdir with process 0) takes nothing.
  """
  if not enabled:
    yield {}
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirLockedError(workdir, holder(workdir)) from None
      warnings.warn(f"cannot lock {path} ({e}); going on without the "
                    "one-process-per-workdir check.", RuntimeWarning,
                    stacklevel=3)
      yield {}
      return
    stale = holder(workdir)
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.fsync(fd)
    try:
      yield stale
    finally:
      # An empty file marks a clean release: a holder left in the file by a
      # process that died is reported as a stale lock by the next run.
      with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
  finally:
    os.close(fd)    # closing the file releases the flock
