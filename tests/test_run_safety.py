"""What a run does with the wrong data, a second process, a flipped bit, a
transient I/O error, a full disk and a pre-emption, through the library and
through the real command line (``experiments/pretrain.py`` in a subprocess):
one clear message, the right exit status, nothing saved lost.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from helpers import reliability_config, tiny_dataset

from ssljax.train import checkpoint as checkpoint_lib
from ssljax.train.checkpoint import (CHECKSUM_FILE, CheckpointError,
                                     Checkpointer, CheckpointSaveError,
                                     CheckpointWarning)
from ssljax.train.lock import LOCK_FILE, WorkdirLockedError, holder, workdir_lock
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import ConfigMismatchError, StorageError, pretrain

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
STEPS = 12


def _ds(seed=0):
  return tiny_dataset(n=64, seed=seed)


def _run(workdir, **kwargs):
  return pretrain(reliability_config(), str(workdir), dataset=_ds(),
                  progress=False, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  _, state = _run(workdir)
  return {"workdir": str(workdir), "state": jax.tree.map(np.asarray, state),
          "rows": read_jsonl(os.path.join(workdir, "metrics.jsonl"))}


def _same(state, reference):
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reference["state"])):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def _copy(reference, tmp_path):
  dst = tmp_path / "run"
  shutil.copytree(reference["workdir"], dst)
  return dst


# ---------------------------------------------------------------------------
# One process per workdir.


_HOLD = textwrap.dedent("""
    import sys, time
    from ssljax.train.lock import workdir_lock
    with workdir_lock(sys.argv[1]):
      print("HELD", flush=True)
      time.sleep(600)
""")


@contextlib.contextmanager
def _holder_process(workdir):
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(workdir)],
                          cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == "HELD"
    yield proc
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def test_second_process_on_a_workdir_is_refused_naming_the_holder(
    reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  before = {p: os.path.getmtime(os.path.join(workdir, p))
            for p in ("metrics.jsonl", "config.json")}
  with _holder_process(workdir) as proc:
    with pytest.raises(WorkdirLockedError,
                       match=rf"in use by another training process: pid "
                             rf"{proc.pid} on host .*another --workdir") as e:
      _run(workdir, resume="auto")
    assert e.value.holder["pid"] == proc.pid
  # Nothing in the workdir was touched by the refused run.
  assert before == {p: os.path.getmtime(os.path.join(workdir, p))
                    for p in before}


def test_lock_of_a_killed_process_is_taken_over(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  with _holder_process(workdir) as proc:
    pid = proc.pid
    proc.send_signal(signal.SIGKILL)    # dies holding the lock
    proc.wait()
  assert holder(str(workdir))["pid"] == pid
  with workdir_lock(str(workdir)) as stale:
    assert stale["pid"] == pid
  assert holder(str(workdir)) == {}     # a clean release empties the file
  _, state = _run(workdir, resume="auto")
  _same(state, reference)


def test_lock_is_released_after_an_error(tmp_path):
  with pytest.raises(RuntimeError):
    with workdir_lock(str(tmp_path)):
      raise RuntimeError("boom")
  with workdir_lock(str(tmp_path)):
    with pytest.raises(WorkdirLockedError):
      with workdir_lock(str(tmp_path)):
        pass
  assert os.path.exists(tmp_path / LOCK_FILE)


# ---------------------------------------------------------------------------
# The right data on resume.


def test_resume_on_other_images_of_the_same_size_is_refused(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  other = _ds(seed=1)                  # same name, size and shapes
  with pytest.raises(ConfigMismatchError,
                     match=r"(?s)training data differs.*saved: num_examples=64,"
                           r".*sha256=[0-9a-f]{64}.*now:   num_examples=64,"
                           r".*sha256=[0-9a-f]{64}.*another --workdir"):
    pretrain(reliability_config(), str(workdir), dataset=other,
             resume="auto", progress=False)
  # The same images under another data_dir resume fine.
  config = reliability_config(data_dir="/somewhere/else")
  _, state = pretrain(config, str(workdir), dataset=_ds(), resume="auto",
                      progress=False)
  _same(state, reference)


# ---------------------------------------------------------------------------
# Checksums, and only corruption sets a checkpoint aside.


def _data_files(step_dir):
  out = []
  for root, _, files in os.walk(step_dir):
    for f in files:
      path = os.path.join(root, f)
      if f != CHECKSUM_FILE and "ocdbt" not in f and os.path.getsize(path) > 64:
        out.append(path)
  return sorted(out, key=os.path.getsize)


def test_checksums_are_written_and_a_flipped_bit_is_caught(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")
  for step in (4, 8, 12):
    assert checkpoint_lib.verify_checksums(os.path.join(ckdir, str(step)))
  target = _data_files(os.path.join(ckdir, "12"))[-1]
  data = bytearray(open(target, "rb").read())
  data[len(data) // 2] ^= 0x01                   # same size, one bit
  open(target, "wb").write(bytes(data))
  ck = Checkpointer(ckdir)
  with pytest.raises(CheckpointError, match="does not match its checksum"):
    ck.restore(reference["state"], 12)
  ck.close()
  with pytest.warns(CheckpointWarning, match=r"step 12 .*does not match its "
                                             r"checksum.*previous one"):
    _, state = _run(workdir, resume="auto")
  _same(state, reference)
  assert os.path.isdir(os.path.join(ckdir, "12.corrupt"))


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied"),
    OSError(5, "Input/output error"),
    ValueError("PERMISSION_DENIED: error opening file"),   # TensorStore style
])
def test_transient_errors_are_raised_and_nothing_set_aside(
    reference, tmp_path, monkeypatch, error):
  workdir = _copy(reference, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")

  def unreachable(step_dir):
    raise error
  monkeypatch.setattr(checkpoint_lib, "verify_checksums", unreachable)
  with pytest.raises(type(error), match=str(error.args[-1])):
    _run(workdir, resume="auto")
  assert sorted(os.listdir(ckdir)) == ["12", "4", "8"]    # nothing renamed


# ---------------------------------------------------------------------------
# A full disk.


@pytest.fixture
def small_disk(tmp_path):
  """A 4 MiB tmpfs (a real file system that fills up; needs root)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                        str(mount)], capture_output=True, text=True)
  if out.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()}): the "
                "full-disk tests need root")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory):
  """Write a file until the file system is full."""
  with open(os.path.join(directory, "filler"), "wb") as f:
    with contextlib.suppress(OSError):
      while True:
        f.write(b"\0" * 65536)
        f.flush()


class _FillDiskAt:
  """A monitor that fills the disk at ``step``, once the checkpoint of step
  ``after`` is complete on disk (saves are asynchronous), and raises at
  ``boom``."""

  def __init__(self, directory, step, after=None, boom=None):
    self.directory, self.step, self.boom = directory, step, boom
    self.after = after

  def due(self, step, last):
    return step in (self.step, self.boom)

  def __call__(self, method, state):
    if self.boom is not None and int(state.step) == self.boom:
      raise RuntimeError("boom: an error already on its way")
    if self.after is not None:
      done = os.path.join(self.directory, "run", "checkpoints", str(self.after))
      deadline = time.time() + 60
      while not os.path.isdir(done) and time.time() < deadline:
        time.sleep(0.01)
    _fill(self.directory)
    return {}


def test_full_disk_names_the_intact_checkpoint_and_resume_is_exact(
    reference, small_disk):
  workdir = small_disk / "run"
  with pytest.raises((CheckpointSaveError, StorageError)) as e:
    _run(workdir, monitor=_FillDiskAt(str(small_disk), 7, after=4))
  message = str(e.value)
  assert ("disk is full" in message or "No space left" in message), message
  assert "checkpoint at step 4 is intact" in message, message
  assert "resume" in message
  ckdir = os.path.join(workdir, "checkpoints")
  assert [n for n in os.listdir(ckdir) if n.isdigit()] == ["4"]
  assert not [n for n in os.listdir(workdir) if ".tmp" in n]
  os.remove(small_disk / "filler")
  _, state = _run(workdir, resume="auto")
  _same(state, reference)
  rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows] == list(range(2, STEPS + 1, 2))


def test_a_failed_save_does_not_hide_the_error_in_flight(small_disk, capsys):
  # The disk fills at step 4, before its save; the error at step 5 is the
  # one the user must see, with the save's failure reported beside it.
  workdir = small_disk / "run"
  with pytest.raises((RuntimeError, CheckpointSaveError)) as e:
    _run(workdir, monitor=_FillDiskAt(str(small_disk), 4, boom=5))
  if isinstance(e.value, CheckpointSaveError):
    # The save failed at once, at step 4: then it is the error in flight.
    assert "step 4" in str(e.value) and "disk is full" in str(e.value)
  else:
    assert "boom" in str(e.value)
    assert "also: saving the checkpoint at step 4" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The command line: exit statuses and one message.


_CONFIG_FILE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import tiny_config

    def get_config():
      return tiny_config(dataset="digits", num_steps={steps}, log_every=1,
                         checkpoint_every=2)
""")


def _cli(args, timeout=300, **popen):
  env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
  env.update(PYTHONPATH=os.pathsep.join([REPO, TESTS_DIR]),
             SSLJAX_MALLOC="off")
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "experiments", "pretrain.py"), *args],
      env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, **popen)


def _one_message(proc, *words):
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 1, (proc.returncode, err[-3000:])
  assert "Traceback" not in err, err[-3000:]
  lines = [l for l in err.splitlines() if l.startswith("pretrain: ")]
  assert len(lines) == 1, err[-3000:]
  for w in words:
    assert w in err, (w, err[-3000:])
  return err


def _config(tmp_path, steps=6):
  path = tmp_path / "cfg.py"
  path.write_text(_CONFIG_FILE.format(tests=TESTS_DIR, steps=steps))
  return str(path)


def test_cli_user_mistakes_are_one_message_and_status_1(tmp_path):
  cfg = _config(tmp_path)
  (tmp_path / "syntax.py").write_text("def get_config(:\n")
  work = str(tmp_path / "w")
  cases = [
      (["--config", str(tmp_path / "missing.py"), "--workdir", work],
       ["missing.py", "No such file"]),
      (["--config", str(tmp_path / "syntax.py"), "--workdir", work],
       ["SyntaxError", "syntax.py"]),
      (["--config", cfg, "--workdir", work, "--config.no_such_key=1"],
       ["--config.no_such_key=1", "no key 'no_such_key'"]),
      (["--config", cfg, "--workdir", work, "--config.batch_size=abc"],
       ["batch_size", "abc"]),
      (["--config", cfg, "--workdir", work, "--config.method=nope"],
       ["unknown method 'nope'"]),
      (["--config", cfg, "--workdir", work, "--config.dataset=cifar100"],
       ["cifar100", "not available"]),
  ]
  procs = [(_cli(a), w) for a, w in cases]    # at once: each is start-up bound
  for proc, words in procs:
    _one_message(proc, *words)
  ckdir = os.path.join(work, "checkpoints")
  assert not os.path.exists(ckdir) or not os.listdir(ckdir)


def test_cli_locked_workdir_and_refused_resume(tmp_path):
  cfg = _config(tmp_path)
  work = tmp_path / "w"
  # The run to refuse, trained in this process (the CLI's own runs are
  # tested above and below); its config is the file's.
  from helpers import load_module  # pylint: disable=import-outside-toplevel
  pretrain(load_module(cfg, "cli_cfg").get_config(), str(work), progress=False)
  with _holder_process(work) as holder_proc:
    _one_message(_cli(["--config", cfg, "--workdir", str(work)]),
                 f"pid {holder_proc.pid}", "another --workdir")
  _one_message(_cli(["--config", cfg, "--workdir", str(work),
                     "--config.temperature=0.9"]),
               "temperature: saved 0.5, now 0.9")


def test_cli_preemption_exits_75_and_resumes(tmp_path):
  cfg = _config(tmp_path, steps=400)
  work = tmp_path / "w"
  proc = _cli(["--config", cfg, "--workdir", str(work)])
  metrics = work / "metrics.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if metrics.exists() and metrics.read_text().count("\n") >= 3:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-3000:]
  assert "Traceback" not in err
  assert "Run the same command" in out
  assert not (work / "finished.json").exists()
  ck = Checkpointer(str(work / "checkpoints"))
  stopped = ck.latest_step()
  ck.close()
  assert 3 <= stopped < 400


def test_cli_full_disk_is_one_message(small_disk, tmp_path):
  cfg = _config(tmp_path)
  _fill(small_disk)
  os.truncate(small_disk / "filler", os.path.getsize(small_disk / "filler")
              - 16384)                     # 16 KiB left: not a checkpoint
  _one_message(_cli(["--config", cfg, "--workdir", str(small_disk / "w")]),
               "the disk is full", "run the same command to resume")
  assert not [n for n in os.listdir(small_disk / "w") if ".tmp" in n]


@pytest.mark.parametrize("script", ["simclr_fashion_mnist.sh",
                                    "compare_fashion_mnist.sh"])
def test_launch_scripts_stop_on_preemption_without_evaluating(tmp_path, script):
  """The shipped scripts, with set-up and python replaced by stubs: a
  pre-empted pre-training (status 75) stops the script with the resume
  message; nothing is evaluated."""
  root = tmp_path / "repo"
  (root / "experiments").mkdir(parents=True)
  (root / "scripts").mkdir()
  (root / ".venv" / "bin").mkdir(parents=True)
  shutil.copy(os.path.join(REPO, "experiments", script), root / "experiments")
  (root / "scripts" / "setup.sh").write_text("exit 0\n")
  calls = tmp_path / "calls"
  python = root / ".venv" / "bin" / "python"
  python.write_text(f"#!/bin/sh\necho \"$1\" >> {calls}\n"
                    "case \"$1\" in *pretrain.py) exit 75;; esac\nexit 0\n")
  python.chmod(0o755)
  out = subprocess.run(["bash", str(root / "experiments" / script)],
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 75, out.stderr
  assert "run this same command again to resume" in out.stderr
  assert calls.read_text().split() == ["experiments/pretrain.py"]
