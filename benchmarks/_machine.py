"""What the benchmarks record about the machine they ran on."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
  """The CPU's model name (lscpu, else /proc/cpuinfo, else platform)."""
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True,
                         timeout=10).stdout
    for line in out.splitlines():
      if line.lower().startswith("model name"):
        return line.split(":", 1)[1].strip()
  except (OSError, subprocess.SubprocessError):
    pass
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.lower().startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def malloc_name() -> str:
  """The memory allocator this process runs with (ssljax/cpu/malloc.py): the
  preloaded tcmalloc/jemalloc library, or glibc's when none is."""
  from ssljax.cpu.malloc import loaded_malloc  # pylint: disable=import-outside-toplevel
  return loaded_malloc() or "glibc malloc (system)"


def write_result(out_path, result: dict) -> None:
  """Write a benchmark's JSON result (creating its folder) and say where."""
  import json  # pylint: disable=import-outside-toplevel
  out_path = Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  out_path.write_text(json.dumps(result, indent=1))
  print(f"wrote {out_path}")
