"""Reproduce the README methods table: pre-train and evaluate every image
method on Fashion-MNIST with its shipped config, then write the table and the
few-label picture.

    python experiments/reproduce.py                       # everything
    python experiments/reproduce.py --only simclr,rotation --seeds 0
    python experiments/reproduce.py --stage table         # table + picture only
    python experiments/reproduce.py --parallel 8          # a GPU: 8 runs at once

Each run is ``experiments/pretrain.py`` (it resumes a cut run; a finished one,
with ``finished.json`` in its workdir, is not started again) then ``experiments/evaluate.py`` (skipped when the
run's results file already holds that checkpoint step), with the workdir
``WORKDIRS/<method>_s<seed>``. Results: one file per run,
``RESULTS/<method>_s<seed>.json`` (the evaluation, the command, commit, date
and machine), then ``RESULTS/table.md``, ``RESULTS/table.json`` and
``RESULTS/few_labels.png``. Seed-0 runs go first; SimCLR, MoCo v2 and
rotation (the best pretext method) also run seeds 1 and 2.

``--parallel N`` runs N runs at once; on a GPU each gets 1/N of its memory
(``XLA_PYTHON_CLIENT_MEM_FRACTION``). On a CPU one at a time is fastest.
``--set key=value`` adds ``--config.key=value`` to every pre-training (for
a quick dry run: ``--set num_steps=2``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from ssljax.cli import flags_parser  # pylint: disable=wrong-import-position

#: experiments/pretrain.py's exit status when pre-empted (checkpoint saved).
PREEMPTED_EXIT_STATUS = 75

_WORKDIRS = flags.DEFINE_string("workdirs", "workdirs/reproduce",
                                "Folder of the runs' workdirs.")
_RESULTS = flags.DEFINE_string("results", "benchmarks/results/reproduce",
                               "Folder of the results files, table and picture.")
_ONLY = flags.DEFINE_list("only", [], "Methods to run (default: all).")
_SEEDS = flags.DEFINE_list("seeds", [], "Seeds to run (default: each "
                           "method's own, see RUNS).")
_STAGE = flags.DEFINE_enum("stage", "all", ["all", "pretrain", "evaluate",
                                            "table"], "What to do.")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at once.")
_SET = flags.DEFINE_multi_string("set", [], "key=value added to every "
                                 "pre-training as --config.key=value.")
_EVAL_FLAGS = flags.DEFINE_multi_string("eval_flag", [], "A flag passed to "
                                        "every evaluate.py (e.g. --finetune_steps=10).")
_DRY = flags.DEFINE_bool("dry_run", False, "Print the commands only.")


@dataclasses.dataclass(frozen=True)
class Run:
  method: str                 # the table row
  config: str                 # experiments/configs/<config>
  seeds: tuple[int, ...] = (0,)


#: The table's rows, in order: name, shipped config, seeds.
RUNS = (
    Run("simclr", "simclr_fashion_mnist.py", (0, 1, 2)),
    Run("moco_v2", "moco_v2_fashion_mnist.py", (0, 1, 2)),
    Run("moco_v1", "moco_v1_fashion_mnist.py"),
    Run("rotation", "rotation_fashion_mnist.py", (0, 1, 2)),
    Run("jigsaw", "jigsaw_fashion_mnist.py"),
    Run("relpos", "relpos_fashion_mnist.py"),
    Run("inpainting", "inpainting_fashion_mnist.py"),
    Run("cpc_image", "cpc_fashion_mnist.py"),
    Run("byol", "byol_fashion_mnist.py"),
    Run("simsiam", "simsiam_fashion_mnist.py"),
    Run("barlow_twins", "barlow_twins_fashion_mnist.py"),
    Run("vicreg", "vicreg_fashion_mnist.py"),
    Run("dino", "dino_fashion_mnist.py"),
)


def _python() -> str:
  venv = os.path.join(ROOT, ".venv", "bin", "python")
  return venv if os.path.exists(venv) else sys.executable


def jobs(runs=RUNS, only=(), seeds=()) -> list[tuple[Run, int]]:
  """``(run, seed)`` pairs to do: seed 0 of every method first."""
  unknown = set(only) - {r.method for r in runs}
  if unknown:
    raise app.UsageError(f"--only: unknown methods {sorted(unknown)}; known: "
                         f"{[r.method for r in runs]}")
  chosen = [r for r in runs if not only or r.method in only]
  pairs = [(r, s) for r in chosen
           for s in ([int(x) for x in seeds] if seeds else r.seeds)]
  return sorted(pairs, key=lambda p: (p[1] != 0, p[1]))


def run_name(run: Run, seed: int) -> str:
  return f"{run.method}_s{seed}"


def pretrain_command(run: Run, seed: int, workdir: str, sets=()) -> list[str]:
  return [_python(), "experiments/pretrain.py", "--config",
          f"experiments/configs/{run.config}", "--workdir", workdir,
          f"--config.seed={seed}", *[f"--config.{s}" for s in sets]]


def evaluate_command(workdir: str, out: str, extra=()) -> list[str]:
  return [_python(), "experiments/evaluate.py", "--workdir", workdir,
          "--results", out, *extra]


def _finished(workdir: str) -> bool:
  """Whether the run reached its last step (its finished.json)."""
  return os.path.exists(os.path.join(workdir, "finished.json"))


def _do(run: Run, seed: int, stage: str, env: dict) -> str:
  name = run_name(run, seed)
  workdir = os.path.join(_WORKDIRS.value, name)
  out = os.path.join(_RESULTS.value, f"{name}.json")
  log_path = os.path.join(_WORKDIRS.value, f"{name}.log")
  steps = []
  if stage in ("all", "pretrain") and not _finished(workdir):
    steps.append(pretrain_command(run, seed, workdir, _SET.value))
  if stage in ("all", "evaluate"):
    steps.append(evaluate_command(workdir, out, _EVAL_FLAGS.value))
  for cmd in steps:
    if _DRY.value:
      print(" ".join(cmd))
      continue
    t0 = time.time()
    print(f"[{name}] {' '.join(cmd[1:3])} ...", flush=True)
    os.makedirs(_WORKDIRS.value, exist_ok=True)
    with open(log_path, "a") as log:
      rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    if rc == PREEMPTED_EXIT_STATUS:
      return (f"{name}: pre-empted; its checkpoint is saved: run the same "
              f"command again to resume (see {log_path})")
    if rc != 0:
      return f"{name}: {cmd[1]} exited {rc} (see {log_path})"
    if cmd[1].endswith("pretrain.py") and not _finished(workdir):
      return f"{name}: pre-training stopped before its last step (rerun to resume)"
    print(f"[{name}] {cmd[1]} done in {time.time() - t0:.0f} s", flush=True)
  # Only after this call's evaluation (or its check that the results hold
  # the run's step): with --stage pretrain the results file, if any, is an
  # older evaluation's, and the new run's speed does not belong in it.
  if not _DRY.value and stage in ("all", "evaluate") and os.path.exists(out):
    _annotate(out, run, seed, workdir)
  return f"{name}: ok"


def _annotate(out: str, run: Run, seed: int, workdir: str) -> None:
  """Add the pre-training's command and speed to a run's results file."""
  with open(out) as f:
    result = json.load(f)
  rates, last = [], 0
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    with open(metrics) as f:
      for line in f:
        row = json.loads(line)
        if "images_per_sec" in row:
          rates.append(row["images_per_sec"])
          last = max(last, row.get("step", 0))
  result["pretrain"] = {
      "command": " ".join(pretrain_command(run, seed, workdir,
                                           _SET.value)[1:]),
      "config": f"experiments/configs/{run.config}", "seed": seed,
      "steps": last,
      "median_images_per_sec": float(sorted(rates)[len(rates) // 2])
      if rates else None}
  with open(out, "w") as f:
    json.dump(result, f, indent=1)


def main(argv):
  del argv
  from ssljax.eval.table import write_table   # after flags: no JAX start-up cost
  os.chdir(ROOT)
  todo = jobs(only=_ONLY.value, seeds=_SEEDS.value)
  if _STAGE.value != "table":
    env = dict(os.environ)
    if _PARALLEL.value > 1:
      env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / _PARALLEL.value:.3f}"
    with concurrent.futures.ThreadPoolExecutor(_PARALLEL.value) as pool:
      for msg in pool.map(lambda p: _do(*p, _STAGE.value, env), todo):
        print(msg, flush=True)
  if not _DRY.value:
    try:
      path = write_table(_RESULTS.value, order=[r.method for r in RUNS])
    except FileNotFoundError as e:
      print(f"reproduce: {e}", file=sys.stderr)
      return 1
    print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=flags_parser("reproduce"))
