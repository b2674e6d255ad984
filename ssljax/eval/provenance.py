"""Where a figure comes from: command, commit, date and machine, written into
every results file (``benchmarks/results/``) so that a figure can be traced
and re-made."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys

import jax


def _git(*args: str) -> str | None:
  try:
    return subprocess.run(["git", *args], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine() -> dict:
  return {"cpu": cpu_model(), "cores": os.cpu_count(),
          "backend": jax.default_backend(),
          "devices": [d.device_kind for d in jax.devices()],
          "jax": jax.__version__, "python": platform.python_version()}


def provenance(command: str | None = None) -> dict:
  """``{"command", "commit", "uncommitted_changes", "date", "machine"}``;
  ``command`` defaults to this process's command line."""
  status = _git("status", "--porcelain", "--untracked-files=no")
  return {
      "command": command or " ".join(shlex.quote(a) for a in [
          os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
          *sys.argv[1:]]),
      "commit": _git("rev-parse", "--short", "HEAD"),
      "uncommitted_changes": bool(status) if status is not None else None,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "machine": machine()}
