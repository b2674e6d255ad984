"""Metric logging: TensorBoard event files (tensorboardX) plus ``metrics.jsonl``."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping

import numpy as np

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Writes scalars to ``workdir/tb`` (TensorBoard) and ``workdir/metrics.jsonl``.

  Only process 0 writes (pass ``enabled=False`` elsewhere). Each JSONL line is
  ``{"step": int, "name": float, ...}``.

  ``start_step``: the step the run (re)starts from. Rows of an earlier run in
  the same ``workdir`` with a step ``> start_step`` are dropped from
  ``metrics.jsonl`` first (:func:`truncate_jsonl`), and TensorBoard is told to
  hide events after ``start_step`` (tensorboardX ``purge_step``), so a resumed
  run logs every step exactly once. ``None`` appends without touching old rows.
  """

  def __init__(self, workdir: str, *, enabled: bool = True,
               start_step: int | None = None):
    self.enabled = enabled
    self._tb = None
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, METRICS_FILE)
      if start_step is not None:
        truncate_jsonl(path, int(start_step))
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(
          os.path.join(workdir, "tb"),
          purge_step=None if start_step is None else int(start_step) + 1)
      self._jsonl = open(path, "a")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    for name, value in scalars.items():
      value = float(np.asarray(value))
      row[name] = value
      self._tb.add_scalar(name, value, global_step=int(step))
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()

  def flush(self) -> None:
    if self.enabled:
      self._tb.flush()
      self._jsonl.flush()
      os.fsync(self._jsonl.fileno())

  def close(self) -> None:
    """Flush and close; the files are closed even when the flush fails (a
    full disk), and that error is raised after."""
    if self.enabled:
      self.enabled = False
      try:
        self._tb.flush()
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())
      finally:
        try:
          self._tb.close()
        finally:
          self._jsonl.close()


def read_jsonl(path: str) -> list[dict]:
  """The rows of a ``metrics.jsonl`` file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_jsonl(path: str, max_step: int) -> int:
  """Drop the rows of ``path`` whose ``step`` is ``> max_step``.

  Also drops unreadable lines (a line cut short by a killed process). The file
  is rewritten atomically (a temporary file in the same folder, then
  ``os.replace``) and only if something changes. Returns the number of lines
  dropped (0 when ``path`` does not exist).
  """
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = f.readlines()
  keep, dropped_bad = [], 0
  for line in lines:
    if not line.strip():
      continue
    try:
      row = json.loads(line)
      step = int(row["step"])
    except (ValueError, KeyError, TypeError):
      dropped_bad += 1
      continue
    if step <= max_step:
      keep.append(line if line.endswith("\n") else line + "\n")
  dropped = len([l for l in lines if l.strip()]) - len(keep)
  if dropped == 0:
    return 0
  if dropped_bad:
    logging.warning("%s: dropped %d unreadable line(s).", path, dropped_bad)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                             prefix=".metrics-", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.writelines(keep)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return dropped
