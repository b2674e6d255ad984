"""Side-by-side timing that survives noise: interleaved rounds, a median
ratio with a bootstrap interval, a load check and one JSON record per
comparison.

A comparison times two (or more) *sides* -- callables that each run some
steps of one implementation -- in the same process, round after round, so
that slow drifts of the machine (other jobs, thermal or frequency changes)
hit every side alike:

    from _compare import (check_load, finish_load, interleaved_rounds,
                          ratio_summary, results_record, write_record)

    load = check_load(0.5, allow_load=args.allow_load)    # exit 2 when busy
    rounds = interleaved_rounds({"jax": run_jax, "torch": run_torch},
                                rounds=10, steps_per_round=5, warmup=1)
    summary = ratio_summary(rounds.times["jax"], rounds.times["torch"])
    finish_load(load)
    write_record(path, results_record(benchmark="...", rounds=rounds,
                                      summaries={"jax_vs_torch": summary},
                                      load=load))

The ratio of a round is ``time_b / time_a`` of the same round, so a ratio
above 1 means side a is that many times faster (it did the same steps in
less time); the summary is the median of the per-round ratios and a
percentile-bootstrap interval of that median. ``parity`` is true when the
interval contains 1.0: the measurement cannot tell the two sides apart.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from _machine import cpu_model, malloc_name, write_result

REPO = Path(__file__).resolve().parents[1]

#: The fewest rounds a comparison should have: with fewer, the bootstrap
#: interval of a median is too coarse to mean much.
MIN_ROUNDS = 10

#: Exit status of a run refused because the machine was busy.
EXIT_BUSY = 2

#: Default load threshold: the 1-minute load average per available core
#: above which a run is refused (without ``--allow_load``).
DEFAULT_MAX_LOAD_PER_CORE = 0.5


@dataclasses.dataclass
class RoundTimes:
  """What :func:`interleaved_rounds` measured.

  Attributes:
    times: side name -> seconds of each round (``steps_per_round`` steps).
    orders: the order the sides ran in, per round.
    steps_per_round: steps each side ran in each timed call.
    warmup: untimed steps each side ran before the first round.
    order: the ordering scheme, ``"alternate"`` or ``"shuffle"``.
  """
  times: dict[str, list[float]]
  orders: list[list[str]]
  steps_per_round: int
  warmup: int
  order: str

  @property
  def rounds(self) -> int:
    return len(self.orders)

  def to_dict(self) -> dict:
    return {"rounds": self.rounds, "steps_per_round": self.steps_per_round,
            "warmup_steps": self.warmup, "order_scheme": self.order,
            "orders": self.orders,
            "seconds_per_round": {k: list(v) for k, v in self.times.items()}}


def round_orders(names: Sequence[str], rounds: int, order: str = "alternate",
                 seed: int = 0) -> list[list[str]]:
  """The order of the sides in each round.

  Args:
    names: the sides.
    rounds: how many rounds.
    order: ``"alternate"``: the given order in even rounds, reversed in odd
      ones (A B, B A, A B, ...: ABBA pairs of rounds, so no side always goes
      first or always follows the same one); ``"shuffle"``: a random
      permutation per round (``seed``).
    seed: for ``"shuffle"``.

  Returns:
    A list of ``rounds`` lists, each a permutation of ``names``.
  """
  names = list(names)
  if order == "alternate":
    return [names if r % 2 == 0 else names[::-1] for r in range(rounds)]
  if order == "shuffle":
    rng = np.random.default_rng(seed)
    return [[names[i] for i in rng.permutation(len(names))]
            for _ in range(rounds)]
  raise ValueError(f"order must be 'alternate' or 'shuffle'; got {order!r}")


def interleaved_rounds(sides: Mapping[str, Callable[[int], object]],
                       rounds: int = MIN_ROUNDS, steps_per_round: int = 5,
                       warmup: int = 1, *, order: str = "alternate",
                       seed: int = 0, self_timed: bool = False,
                       collect: bool = True,
                       clock: Callable[[], float] = time.perf_counter,
                       log: Callable[[str], None] | None = print) -> RoundTimes:
  """Times the sides in interleaved rounds.

  Every round runs every side once, ``steps_per_round`` steps each, in the
  order of :func:`round_orders`. The garbage collector runs before each
  timed call (``collect``), outside the timing.

  Args:
    sides: name -> callable ``fn(steps)`` that runs ``steps`` steps of that
      side and returns only when the work is done (``jax.block_until_ready``,
      ``torch.cuda.synchronize`` or a value read back to the host): the
      harness takes the wall time of the call.
    rounds: timed rounds (>= 1; use at least :data:`MIN_ROUNDS` for a ratio
      to report).
    steps_per_round: steps per side per round (>= 1).
    warmup: untimed steps per side before the first round (compilation,
      caches); 0 for none.
    order: ``"alternate"`` or ``"shuffle"`` (see :func:`round_orders`).
    seed: for ``"shuffle"``.
    self_timed: the callables time themselves: ``fn(steps)`` returns the
      seconds to record (e.g. from a log that leaves out compilation) instead
      of the wall time of the call.
    collect: run ``gc.collect()`` before each timed call, so that no side
      pays for the garbage of another.
    clock: the timer (tests pass a fake one).
    log: where a line per round goes (``None``: silent).

  Returns:
    A :class:`RoundTimes` with the seconds of every side in every round.
  """
  if not sides:
    raise ValueError("no sides to time")
  if rounds < 1 or steps_per_round < 1 or warmup < 0:
    raise ValueError(f"need rounds >= 1, steps_per_round >= 1, warmup >= 0; "
                     f"got {rounds}, {steps_per_round}, {warmup}")
  names = list(sides)
  if warmup:
    for name in names:
      sides[name](warmup)
  orders = round_orders(names, rounds, order, seed)
  times = {name: [] for name in names}
  if log:
    log(f"{rounds} rounds x {steps_per_round} steps ({order} order); "
        "seconds per round:")
    log(f"{'round':>5}  {'order':<40} " +
        " ".join(f"{n:>14}" for n in names))
  for r, names_r in enumerate(orders):
    for name in names_r:
      if collect:
        gc.collect()
      t0 = clock()
      out = sides[name](steps_per_round)
      wall = clock() - t0
      times[name].append(float(out) if self_timed else wall)
    if log:
      log(f"{r:>5}  {','.join(names_r):<40} " +
          " ".join(f"{times[n][-1]:>14.4f}" for n in names))
  return RoundTimes(times=times, orders=orders,
                    steps_per_round=steps_per_round, warmup=warmup,
                    order=order)


def bootstrap_median_interval(values: Sequence[float],
                              confidence: float = 0.95,
                              n_boot: int = 10_000,
                              seed: int = 0) -> tuple[float, float]:
  """Percentile-bootstrap interval of the median of ``values``.

  ``n_boot`` resamples with replacement (numpy's ``default_rng(seed)``: the
  same values and seed give the same interval), the median of each, and the
  ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those
  medians.
  """
  v = np.asarray(values, np.float64)
  if v.ndim != 1 or v.size == 0:
    raise ValueError("need a non-empty 1-d sequence of values")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1); got {confidence}")
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, v.size, size=(int(n_boot), v.size))
  medians = np.median(v[idx], axis=1)
  alpha = (1.0 - confidence) / 2.0
  lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
  return float(lo), float(hi)


def ratio_summary(times_a: Sequence[float], times_b: Sequence[float],
                  confidence: float = 0.95, n_boot: int = 10_000,
                  seed: int = 0) -> dict:
  """The per-round ratios ``time_b / time_a`` and their median with an
  interval.

  Direction: a ratio above 1 means side a is that many times faster than
  side b (a took less time for the same steps); below 1, b is faster. With
  throughputs instead of times, the same number is ``throughput_a /
  throughput_b``.

  Args:
    times_a, times_b: seconds of the same rounds (the same steps per round),
      side a and side b.
    confidence: of the interval (0.95: 95%).
    n_boot: bootstrap resamples.
    seed: of the bootstrap (deterministic for a seed).

  Returns:
    A dict: ``ratios`` (per round), ``median``, ``interval`` ``[lo, hi]``
    (percentile bootstrap of the median), ``confidence``, ``n_boot``,
    ``seed``, ``min``, ``max``, ``rounds``, ``parity`` (the interval contains
    1.0), ``faster`` (``"a"``, ``"b"`` or ``"parity"``), ``few_rounds``
    (fewer than :data:`MIN_ROUNDS`: the interval is too coarse for a
    verdict) and ``direction`` (the sentence above).
  """
  a = np.asarray(times_a, np.float64)
  b = np.asarray(times_b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or a.size == 0:
    raise ValueError(f"need two equally long, non-empty lists of times; got "
                     f"{a.shape} and {b.shape}")
  if np.any(a <= 0) or np.any(b <= 0):
    raise ValueError("times must be positive")
  ratios = b / a
  lo, hi = bootstrap_median_interval(ratios, confidence, n_boot, seed)
  parity = bool(lo <= 1.0 <= hi)
  return {
      "ratios": ratios.tolist(),
      "median": float(np.median(ratios)),
      "interval": [lo, hi],
      "confidence": float(confidence),
      "n_boot": int(n_boot),
      "seed": int(seed),
      "min": float(ratios.min()),
      "max": float(ratios.max()),
      "rounds": int(ratios.size),
      "parity": parity,
      "faster": "parity" if parity else ("a" if lo > 1.0 else "b"),
      "few_rounds": bool(ratios.size < MIN_ROUNDS),
      "direction": ("per-round time_b / time_a: above 1, side a is that many "
                    "times faster than side b"),
  }


def format_summary(summary: dict, name_a: str = "a",
                   name_b: str = "b") -> str:
  """One line for a :func:`ratio_summary`."""
  lo, hi = summary["interval"]
  verdict = ("parity (the interval contains 1)" if summary["parity"] else
             f"{name_a if summary['faster'] == 'a' else name_b} faster")
  if summary.get("few_rounds"):
    verdict = f"no verdict (fewer than {MIN_ROUNDS} rounds)"
  return (f"{name_a} vs {name_b}: median ratio {summary['median']:.3f} "
          f"({100 * summary['confidence']:.0f}% bootstrap interval "
          f"[{lo:.3f}, {hi:.3f}], per round {summary['min']:.3f}-"
          f"{summary['max']:.3f}, {summary['rounds']} rounds): {verdict}")


def available_cores() -> int:
  """Cores this process may run on (affinity), else the logical core count."""
  try:
    return len(os.sched_getaffinity(0)) or 1
  except AttributeError:
    return os.cpu_count() or 1


def check_load(threshold: float = DEFAULT_MAX_LOAD_PER_CORE,
               allow_load: bool = False, *,
               log: Callable[[str], None] | None = print) -> dict:
  """Reads the load average before a comparison and refuses a busy machine.

  Args:
    threshold: the most 1-minute load average per available core that counts
      as idle (0.5 on 2 cores: a load of 1.0).
    allow_load: run anyway above it; the record is then flagged.
    log: where the load line goes (``None``: silent).

  Returns:
    A dict for the record: ``start`` (the 1, 5 and 15-minute load averages),
    ``cores``, ``threshold_per_core``, ``limit`` (threshold x cores),
    ``load_flagged`` (true when the 1-minute load was above the limit and
    ``allow_load`` let the run go on); :func:`finish_load` adds ``end``.

  Raises:
    SystemExit: with status :data:`EXIT_BUSY` (2) when the 1-minute load is
      above the limit and ``allow_load`` is false.
  """
  start = list(os.getloadavg())
  cores = available_cores()
  limit = float(threshold) * cores
  busy = start[0] > limit
  record = {"start": start, "cores": cores,
            "threshold_per_core": float(threshold), "limit": limit,
            "load_flagged": bool(busy)}
  if log:
    log(f"load average {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} on "
        f"{cores} cores (limit {limit:.2f})")
  if busy and not allow_load:
    print(f"refusing to time: the 1-minute load average {start[0]:.2f} is "
          f"above {threshold:g} x {cores} cores = {limit:.2f}; the timings "
          f"would be noise. Wait for an idle machine, or pass --allow_load "
          f"to run anyway (the result is then flagged load_flagged).",
          file=sys.stderr)
    raise SystemExit(EXIT_BUSY)
  if busy and log:
    log("WARNING: busy machine (--allow_load): the result is flagged "
        "load_flagged")
  return record


def finish_load(record: dict) -> dict:
  """Adds the load averages at the end of the timing to a :func:`check_load`
  record (in place; returned too)."""
  record["end"] = list(os.getloadavg())
  return record


def git_state(root: Path | str = REPO) -> dict:
  """The commit checked out at ``root`` and whether tracked files differ
  from it (read-only git calls; ``None`` fields outside a git tree)."""
  env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}   # no index refresh
  def git(*args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True,
                          text=True, timeout=30, env=env, check=True).stdout
  try:
    commit = git("rev-parse", "HEAD").strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "dirty": None}
  return {"commit": commit, "dirty": dirty}


def machine_record() -> dict:
  """The machine, as ``_machine.py`` sees it, plus cores and platform."""
  import platform  # pylint: disable=import-outside-toplevel
  try:
    malloc = malloc_name()
  except Exception:  # noqa: BLE001  pylint: disable=broad-except
    malloc = None
  return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(),
          "cores_available_to_process": available_cores(),
          "platform": platform.platform(),
          "python": platform.python_version(), "malloc": malloc}


def results_record(*, benchmark: str, rounds: RoundTimes,
                   summaries: Mapping[str, dict], load: dict,
                   argv: Sequence[str] | None = None,
                   machine: Mapping | None = None,
                   extra: Mapping | None = None) -> dict:
  """The JSON record of one comparison.

  Args:
    benchmark: the script's name.
    rounds: what :func:`interleaved_rounds` measured (every raw time).
    summaries: name -> :func:`ratio_summary` (e.g. ``{"jax_vs_torch": ...}``).
    load: the :func:`check_load` record (after :func:`finish_load`).
    argv: the command line (default ``sys.argv``).
    machine: more machine facts (versions, devices), merged over
      :func:`machine_record`.
    extra: the benchmark's own fields (config, equivalence checks, ...),
      added at the top level; they may not replace the fields above.

  Returns:
    A JSON-ready dict: ``benchmark``, ``date`` (UTC), ``command``, ``git``
    (``commit``, ``dirty``), ``machine``, ``load`` (``start``, ``end``,
    ``cores``, ``limit``, ``load_flagged``), ``load_flagged``, ``rounds``
    (count, steps, orders, seconds per round per side), ``summary``.
  """
  argv = list(sys.argv if argv is None else argv)
  record = {
      "benchmark": benchmark,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "command": " ".join(shlex.quote(a) for a in argv),
      "git": git_state(),
      "machine": {**machine_record(), **dict(machine or {})},
      "load": dict(load),
      "load_flagged": bool(load.get("load_flagged", False)),
      "rounds": rounds.to_dict(),
      "summary": dict(summaries),
  }
  for key, value in dict(extra or {}).items():
    if key in record:
      raise ValueError(f"extra field {key!r} would replace a record field")
    record[key] = value
  return record


def plain_record(*, benchmark: str, argv: Sequence[str] | None = None,
                 machine: Mapping | None = None,
                 extra: Mapping | None = None) -> dict:
  """The JSON record of a benchmark that times no rounds (e.g. a memory
  measurement): ``benchmark``, ``date`` (UTC), ``command``, ``git``
  (``commit``, ``dirty``) and ``machine``, as in :func:`results_record`,
  plus ``extra`` at the top level (it may not replace those fields)."""
  argv = list(sys.argv if argv is None else argv)
  record = {
      "benchmark": benchmark,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "command": " ".join(shlex.quote(a) for a in argv),
      "git": git_state(),
      "machine": {**machine_record(), **dict(machine or {})},
  }
  for key, value in dict(extra or {}).items():
    if key in record:
      raise ValueError(f"extra field {key!r} would replace a record field")
    record[key] = value
  return record


def write_record(path: Path | str, record: dict) -> None:
  """Writes a :func:`results_record` (one JSON file per comparison)."""
  write_result(path, record)


def add_arguments(parser, *, rounds: int = MIN_ROUNDS) -> None:
  """The harness's command-line options: ``--rounds`` (default ``rounds``),
  ``--order``, ``--allow_load``, ``--max_load``, ``--confidence``,
  ``--n_boot``. Options spelled with ``_`` also take ``-``."""
  parser.add_argument("--rounds", type=int, default=rounds,
                      help=f"timed rounds (default {rounds}; at least "
                           f"{MIN_ROUNDS} for a ratio with an interval)")
  parser.add_argument("--order", choices=("alternate", "shuffle"),
                      default="alternate",
                      help="order of the sides in a round: alternate (A B, "
                           "B A, ...) or shuffle (a random order per round)")
  parser.add_argument("--allow_load", "--allow-load", action="store_true",
                      help="time even when the load average is above "
                           "--max_load per core (the result is flagged)")
  parser.add_argument("--max_load", "--max-load", type=float,
                      default=DEFAULT_MAX_LOAD_PER_CORE,
                      help="the most 1-minute load average per core to "
                           "start timing (default %(default)s)")
  parser.add_argument("--confidence", type=float, default=0.95,
                      help="of the bootstrap interval (default 0.95)")
  parser.add_argument("--n_boot", "--n-boot", type=int, default=10_000,
                      help="bootstrap resamples (default 10000)")


def layer_arguments(description: str, argv=None, *, steps: int, out: str,
                    quick_what: str):
  """``(args, load)`` of a per-layer comparison (``small_map_conv.py``,
  ``bn_layer.py``): the parsed options (``--steps`` calls per round,
  ``--out``, ``--quick``: a smoke run of 2 rounds of 1 call on
  ``quick_what``, no load check; and the harness's own,
  :func:`add_arguments`), then :func:`check_load`'s record."""
  import argparse  # pylint: disable=import-outside-toplevel
  p = argparse.ArgumentParser(description=description)
  p.add_argument("--steps", type=int, default=steps, help="calls per round")
  p.add_argument("--out", default=out)
  p.add_argument("--quick", action="store_true",
                 help=f"smoke run: 2 rounds of 1 call, {quick_what}, no load "
                      "check")
  add_arguments(p)
  args = p.parse_args(argv)
  if args.quick:
    args.rounds, args.steps, args.allow_load = 2, 1, True
  return args, check_load(args.max_load, args.allow_load)


def rel_diff(a, b) -> float:
  """``||a - b|| / ||a||`` (Frobenius), for checking two sides agree."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + 1e-30))


def time_calls(fns: Mapping[str, Callable], inputs: Sequence, args, a: str,
               b: str) -> tuple[RoundTimes, dict, dict]:
  """Interleaved rounds of ``fns[k](*inputs)`` (``args.steps`` calls per
  side per round, one warm-up call); returns the rounds, the
  :func:`ratio_summary` of ``b``'s time over ``a``'s and the median seconds
  per call of each side."""
  import jax  # pylint: disable=import-outside-toplevel

  def side(f):
    def run(n):
      for _ in range(n):
        out = f(*inputs)
      jax.block_until_ready(out)
    return run
  rounds = interleaved_rounds({k: side(f) for k, f in fns.items()},
                              rounds=args.rounds, steps_per_round=args.steps,
                              warmup=1, order=args.order)
  summary = ratio_summary(rounds.times[a], rounds.times[b],
                          confidence=args.confidence, n_boot=args.n_boot)
  per_call = {k: sorted(t)[len(t) // 2] / args.steps
              for k, t in rounds.times.items()}
  return rounds, summary, per_call


def finish_layer_record(args, argv, *, benchmark: str, load: dict,
                        **fields) -> int:
  """Closes the load check and, unless ``--quick``, writes the per-layer
  comparison's record (:func:`plain_record` with ``load`` and ``fields``)
  to ``args.out``; returns 0 (the script's exit status)."""
  finish_load(load)
  record = plain_record(
      benchmark=benchmark,
      argv=[f"benchmarks/{benchmark}.py",
            *(sys.argv[1:] if argv is None else argv)],
      extra={"load": dict(load),
             "load_flagged": bool(load.get("load_flagged", False)), **fields})
  if not args.quick:
    write_record(args.out, record)
    print(f"wrote {args.out}")
  return 0
