"""Real SIGKILLs at many moments of a training run, then resume: the run ends
bit-identical to an uninterrupted one, and each resume starts from the step
the files on disk say it must.

A child process trains the 12-step tiny SimCLR run of tests/helpers.py
(``reliability_config``: checkpoints at steps 4, 8 and 12) and prints each
phase the loop enters (``pretrain(on_event=...)``: ``restore``, ``start``,
``compile``, ``step``, ``save``). The test reads those lines and SIGKILLs the
child (no handler runs: it is the kill -9 of a pre-empted node) right at, or
a random few milliseconds after, the phase it aims at:

* during the first compile of a fresh run;
* just after a step and before the first checkpoint exists;
* during an asynchronous checkpoint write (right after ``save``; the Orbax tmp
  folder left on disk shows that the write was cut);
* during the resumed run's own restore;
* at a random moment.

After each kill the expected resume step is read from disk, independently of
the library: the largest step folder whose name is a number (Orbax renames a
step's tmp folder to its number only once it is complete). The next child
must report exactly that step (``start``). The last child runs to the end;
its final checkpoint must equal the uninterrupted run's byte for byte, and
``metrics.jsonl`` row for row (every logged value except the wall-clock
``images_per_sec``).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from helpers import reliability_config, tiny_dataset

from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain

STEPS = 12
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)

_CHILD = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    from helpers import reliability_config, tiny_dataset
    from ssljax.train.loop import pretrain

    def on_event(name, step):
      print("EVENT", name, step, flush=True)

    pretrain(reliability_config(), sys.argv[1], dataset=tiny_dataset(n=64),
             progress=False, resume="auto", on_event=on_event)
    print("FINISHED", flush=True)
""")


def _env():
  path = os.environ.get("PYTHONPATH")
  return dict(os.environ, PYTHONPATH=os.pathsep.join(
      [TESTS_DIR, REPO] + ([path] if path else [])))


def _complete_steps(workdir):
  """Step folders Orbax finished (named by a number), read from disk."""
  ckdir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckdir):
    return []
  return sorted(int(n) for n in os.listdir(ckdir) if n.isdigit())


def _tmp_folders(workdir):
  ckdir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckdir):
    return []
  return [n for n in os.listdir(ckdir) if "orbax-checkpoint-tmp" in n]


class Child:
  """One training process; ``events`` are the ``(name, step)`` it printed."""

  def __init__(self, workdir, log):
    self.log = log
    self.proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, workdir], cwd=REPO, env=_env(),
        stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
    self.events = []

  def run_until(self, name, step=None, delay=0.0, when=None, timeout=180):
    """Read events until ``(name, step)`` (any step when None), then until
    ``when()`` holds (polled), wait ``delay`` seconds and SIGKILL. Returns
    False if the child ended first."""
    deadline = time.time() + timeout
    for line in self.proc.stdout:
      parts = line.split()
      if parts[:1] == ["EVENT"]:
        event = (parts[1], int(parts[2]))
        self.events.append(event)
        if event[0] == name and (step is None or event[1] == step):
          while when is not None and not when():
            assert self.proc.poll() is None and time.time() < deadline
            time.sleep(0.0005)
          if delay:
            time.sleep(delay)
          self.proc.send_signal(signal.SIGKILL)
          self.proc.wait(timeout=60)
          return True
      assert time.time() < deadline, "child too slow"
    self.proc.wait(timeout=60)
    return False

  def finish(self, timeout=180):
    out, _ = self.proc.communicate(timeout=timeout)
    for line in out.splitlines():
      parts = line.split()
      if parts[:1] == ["EVENT"]:
        self.events.append((parts[1], int(parts[2])))
    return out

  def started_at(self):
    starts = [s for n, s in self.events if n == "start"]
    return starts[0] if starts else None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  _, state = pretrain(reliability_config(), workdir, dataset=tiny_dataset(n=64),
                      progress=False)
  return {"state": jax.tree.map(np.asarray, state),
          "rows": read_jsonl(os.path.join(workdir, "metrics.jsonl"))}


def _assert_same_bytes(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def _without_time(rows):
  return [{k: v for k, v in r.items() if k != "images_per_sec"} for r in rows]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_anywhere_then_resume_is_exact(reference, tmp_path, seed):
  rng = np.random.default_rng(seed)
  workdir = str(tmp_path / "run")
  log = open(tmp_path / "stderr", "w")
  hit = set()

  def expect_resume(child):
    """The step the next run must start from, from the files on disk."""
    done = _complete_steps(workdir)
    return done[-1] if done else 0

  def kill(name, step=None, delay=0.0, when=None):
    """Start a child; check it resumes where the disk says; kill it at
    ``(name, step)`` after ``delay``. Returns whether it was killed."""
    expected = expect_resume(None)
    child = Child(workdir, log)
    killed = child.run_until(name, step, delay, when)
    if child.started_at() is not None:
      assert child.started_at() == expected, (child.events, expected)
    if killed:
      assert child.proc.returncode == -signal.SIGKILL
      if _tmp_folders(workdir):
        hit.add("during a checkpoint write")
      if not _complete_steps(workdir):
        hit.add("before the first checkpoint")
    return child, killed

  # 1. A fresh run, killed during its first compile.
  child, killed = kill("compile", delay=float(rng.uniform(0, 0.05)))
  assert killed and child.started_at() == 0
  hit.add("during the first compile")
  # 2. Killed just after a step, before the first checkpoint (step 4).
  start = expect_resume(None)
  kill("step", start + int(rng.integers(1, 3)))
  # 3. Killed while a checkpoint is being written: once Orbax's tmp folder
  # of that step exists, and before it is renamed into place.
  start = expect_resume(None)
  target = [s for s in (4, 8) if s > start][0]
  _, killed = kill("save", target, delay=float(rng.uniform(0, 0.05)),
                   when=lambda: any(n.startswith(f"{target}.")
                                    for n in _tmp_folders(workdir)))
  assert killed
  if not _complete_steps(workdir):
    # Killed after step 9: the save of step 4 has finished by then.
    kill("step", 9)
  assert _complete_steps(workdir)
  # 4. Killed while the resumed run restores that checkpoint.
  _, killed = kill("restore", delay=float(rng.uniform(0, 0.03)))
  assert killed
  hit.add("during the resumed run's restore")
  # 5. At a random moment of the next run.
  child = Child(workdir, log)
  time.sleep(float(rng.uniform(1.0, 4.0)))
  if child.proc.poll() is None:
    child.proc.send_signal(signal.SIGKILL)
  child.finish()
  # 6. Resume to the end.
  expected = expect_resume(None)
  child = Child(workdir, log)
  out = child.finish()
  log.close()
  assert "FINISHED" in out, (tmp_path / "stderr").read_text()[-3000:]
  assert child.proc.returncode == 0
  if expected < STEPS:
    assert child.started_at() == expected, (child.events, expected)

  ck = Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    final = ck.restore(reference["state"], STEPS)
  finally:
    ck.close()
  _assert_same_bytes(final, reference["state"])
  rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert _without_time(rows) == _without_time(reference["rows"])
  assert {"during the first compile", "during the resumed run's restore",
          "before the first checkpoint", "during a checkpoint write"} <= hit, hit
  print(f"seed {seed}: kill points hit: {sorted(hit)}")
