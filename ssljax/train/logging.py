"""Metric logging: TensorBoard event files (tensorboardX) plus ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np


class MetricWriter:
  """Writes scalars to ``workdir/tb`` (TensorBoard) and ``workdir/metrics.jsonl``.

  Only process 0 writes (pass ``enabled=False`` elsewhere). Each JSONL line is
  ``{"step": int, "name": float, ...}``.
  """

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    self._jsonl = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

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

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()
      self.enabled = False


def read_jsonl(path: str) -> list[dict]:
  """The rows of a ``metrics.jsonl`` file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
