"""Reliability of training runs: pre-emption, resume, checkpoint safety,
numerical faults and determinism (ssljax.train.loop / checkpoint / logging).

All loop runs share one 12-step tiny SimCLR config (``reliability_config``) so
that, with JAX's persistent compilation cache (a per-session folder, also used
by the subprocesses), each distinct step program compiles once.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import struct

from helpers import reliability_config, tiny_dataset

from ssljax.config import build
from ssljax.methods import Method, register
from ssljax.train.checkpoint import CheckpointError, Checkpointer, CheckpointWarning
from ssljax.train.logging import read_jsonl, truncate_jsonl
from ssljax.train.loop import (ConfigMismatchError, KernelMismatchWarning,
                               NonFiniteError, Preempted, pretrain)

STEPS = 12
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
_CACHE_FLAGS = ("jax_compilation_cache_dir",
                "jax_persistent_cache_min_compile_time_secs",
                "jax_persistent_cache_min_entry_size_bytes")


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
  """A persistent compilation cache for this module (restored afterwards)."""
  from jax._src import compilation_cache  # pylint: disable=import-outside-toplevel
  old = {n: getattr(jax.config, n) for n in _CACHE_FLAGS}
  path = old["jax_compilation_cache_dir"] or str(tmp_path_factory.mktemp("jax_cache"))
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  compilation_cache.reset_cache()
  yield path
  for n, v in old.items():
    jax.config.update(n, v)
  compilation_cache.reset_cache()


def _ds():
  return tiny_dataset(n=64)


def _host(tree):
  return jax.tree.map(np.asarray, tree)


def _assert_tree_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, _host(a), _host(b))


def _steps(workdir):
  return [r["step"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """One uninterrupted 12-step run."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  _, state = pretrain(reliability_config(), workdir, dataset=_ds(), progress=False)
  return {"workdir": workdir, "state": state,
          "rows": read_jsonl(os.path.join(workdir, "metrics.jsonl"))}


def _ckpt_steps(directory):
  ck = Checkpointer(directory)
  try:
    return ck.all_steps()
  finally:
    ck.close()


def _copy(reference, tmp_path):
  dst = str(tmp_path / "run")
  shutil.copytree(reference["workdir"], dst)
  return dst


def _check_matches_reference(state, workdir, reference):
  """Bit-identical parameters/state and the same metrics rows, each step once."""
  assert int(state.step) == STEPS
  _assert_tree_equal(state, reference["state"])
  rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows] == list(range(2, STEPS + 1, 2))
  for r, ref in zip(rows, reference["rows"]):
    assert r["loss"] == ref["loss"] and r["lr"] == ref["lr"], (r, ref)


# ---------------------------------------------------------------------------
# Determinism and pre-emption.


def test_same_seed_and_config_give_bit_identical_params(reference, tmp_path):
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  _, state = pretrain(reliability_config(), str(tmp_path), dataset=_ds(),
                      progress=False)
  _check_matches_reference(state, str(tmp_path), reference)
  # pretrain's SIGTERM/SIGINT handlers are gone again.
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


_PREEMPT_SCRIPT = textwrap.dedent("""
    import sys, time
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from helpers import reliability_config, tiny_dataset
    from ssljax.train.loop import Preempted, pretrain

    class Slow:  # a monitor that only slows the loop, so the signal lands mid-run
      def due(self, step, last):
        return True
      def __call__(self, method, state):
        time.sleep(0.3)
        return {{}}

    try:
      pretrain(reliability_config(), sys.argv[1], dataset=tiny_dataset(n=64),
               progress=False, monitor=Slow())
    except Preempted as e:
      print("PREEMPTED", e.step, flush=True)
      sys.exit(0)
    print("FINISHED", flush=True)
""")


def _child_env() -> dict:
  """The environment of a child python: tests/ (helpers.py) on PYTHONPATH."""
  path = os.environ.get("PYTHONPATH")
  return dict(os.environ, PYTHONPATH=os.pathsep.join(
      [TESTS_DIR, REPO] + ([path] if path else [])))


def _sigterm_child(script, workdir, tmp_path):
  """Run ``script`` (a ``_PREEMPT_SCRIPT``) on ``workdir`` in a child
  python and SIGTERM it once two metrics rows are written; returns its
  ``(returncode, stdout, stderr)``."""
  out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
  with open(out_path, "w") as out, open(err_path, "w") as err:
    proc = subprocess.Popen([sys.executable, "-c", script, workdir], cwd=REPO,
                            env=_child_env(), stdout=out, stderr=err)
  try:
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
      # two complete rows (steps 2 and 4) written: the run is under way
      if os.path.exists(metrics) and open(metrics).read().count("\n") >= 2:
        break
      time.sleep(0.05)
    assert proc.poll() is None, err_path.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  return proc.returncode, out_path.read_text(), err_path.read_text()


def test_sigterm_saves_exits_cleanly_and_resume_is_bit_identical(
    reference, compile_cache, tmp_path):
  workdir = str(tmp_path / "run")
  script = _PREEMPT_SCRIPT.format(cache=compile_cache)
  returncode, out, err = _sigterm_child(script, workdir, tmp_path)
  assert returncode == 0, err[-3000:]
  assert "SIGTERM received" in err
  stopped = int(out.split("PREEMPTED")[1].split()[0])
  assert 4 <= stopped < STEPS
  ck = Checkpointer(os.path.join(workdir, "checkpoints"))
  assert ck.latest_step() == stopped
  meta = ck.metadata(stopped)
  assert meta["data"]["step"] == stopped and meta["data"]["seed"] == 0
  assert meta["config"] == json.loads(reliability_config().to_json())
  ck.close()
  assert _steps(workdir) == list(range(2, stopped + 1, 2))

  _, state = pretrain(reliability_config(), workdir, dataset=_ds(),
                      resume="auto", progress=False)
  _check_matches_reference(state, workdir, reference)


def test_sigterm_resume_is_bit_identical_on_the_shipped_cpu_convolutions(
    compile_cache, tmp_path):
  """The same as above with ``conv_impl="auto"``, what the shipped configs
  name (oneDNN's convolutions on this CPU): the pre-empted part runs in a
  child process that imports ssljax.cpu as experiments/pretrain.py does, the
  resumed part and the reference here."""
  import ssljax.cpu.conv  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from ssljax.models.conv import resolve_conv_impl  # pylint: disable=import-outside-toplevel
  assert resolve_conv_impl("auto") == "onednn"
  config = reliability_config()
  config.encoder.conv_impl = "auto"
  ref_dir = str(tmp_path / "reference")
  _, ref_state = pretrain(config, ref_dir, dataset=_ds(), progress=False)
  reference = {"workdir": ref_dir, "state": ref_state,
               "rows": read_jsonl(os.path.join(ref_dir, "metrics.jsonl"))}
  workdir = str(tmp_path / "run")
  script = _PREEMPT_SCRIPT.format(cache=compile_cache).replace(
      "try:\n", "import ssljax.cpu.conv\n\ndef _auto(c):\n"
      "  c.encoder.conv_impl = 'auto'\n  return c\n\ntry:\n", 1).replace(
          "pretrain(reliability_config(),", "pretrain(_auto(reliability_config()),")
  assert "pretrain(_auto(" in script
  returncode, out, err = _sigterm_child(script, workdir, tmp_path)
  assert returncode == 0, err[-3000:]
  stopped = int(out.split("PREEMPTED")[1].split()[0])
  assert 4 <= stopped < STEPS
  ck = Checkpointer(os.path.join(workdir, "checkpoints"))
  assert ck.metadata(stopped)["conv_kernels"] == "onednn"
  ck.close()
  with warnings.catch_warnings():
    warnings.simplefilter("error", KernelMismatchWarning)
    _, state = pretrain(config, workdir, dataset=_ds(), resume="auto",
                        progress=False)
  _check_matches_reference(state, workdir, reference)


def test_resume_on_other_convolution_kernels_warns(monkeypatch, tmp_path):
  """A run saved on XLA's convolutions ("auto" without ssljax.cpu) and
  resumed where "auto" is oneDNN's: one warning that names the cause and
  the fix; the run continues."""
  from ssljax.train import loop  # pylint: disable=import-outside-toplevel
  config = reliability_config()
  config.encoder.conv_impl = "auto"
  workdir = str(tmp_path)
  monkeypatch.setattr(loop, "resolve_conv_impl", lambda name: "xla")
  pretrain(config, workdir, dataset=_ds(), stop_at=4, progress=False)
  monkeypatch.setattr(loop, "resolve_conv_impl", lambda name: "onednn")
  with pytest.warns(KernelMismatchWarning) as record:
    _, state = pretrain(config, workdir, dataset=_ds(), resume="auto",
                        progress=False)
  assert int(state.step) == STEPS
  assert len(record) == 1
  msg = str(record[0].message)
  for words in ("saved with the 'xla' convolutions", "runs 'onednn'",
                "not bit-identical", "import ssljax.cpu.conv"):
    assert words in msg, msg


# SIGKILL at many moments (compile, save, restore, ...): tests/test_kill.py.


def test_sigint_in_process_raises_preempted_after_saving(tmp_path):
  class Interrupt:
    def due(self, step, last):
      return step == 5

    def __call__(self, method, state):
      os.kill(os.getpid(), signal.SIGINT)
      return {}

  before = signal.getsignal(signal.SIGINT)
  with pytest.raises(Preempted, match="SIGINT.*step 5") as e:
    pretrain(reliability_config(), str(tmp_path), dataset=_ds(), progress=False,
             monitor=Interrupt())
  assert e.value.step == 5
  assert signal.getsignal(signal.SIGINT) is before
  assert _ckpt_steps(str(tmp_path / "checkpoints")) == [4, 5]
  assert _steps(str(tmp_path)) == [2, 4]


# ---------------------------------------------------------------------------
# Resume checks and checkpoint safety.


def test_resume_refuses_a_different_config_and_accepts_bookkeeping_changes(
    reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  saved = open(os.path.join(workdir, "config.json")).read()
  changed = reliability_config(temperature=0.2)
  changed.optimizer.base_lr = 2.0
  for resume in ("auto", True):
    with pytest.raises(ConfigMismatchError,
                       match=r"(?s)optimizer\.base_lr: saved 1\.0, now 2\.0.*"
                             r"temperature: saved 0\.5, now 0\.2.*--workdir") as e:
      pretrain(changed, workdir, dataset=_ds(), resume=resume, progress=False)
  assert [k for k, _, _ in e.value.differences] == ["optimizer.base_lr", "temperature"]
  assert open(os.path.join(workdir, "config.json")).read() == saved
  with pytest.raises(FileExistsError, match="--resume"):
    pretrain(reliability_config(), workdir, dataset=_ds(), progress=False)
  # Another dataset size: the data position of the checkpoint does not match.
  with pytest.raises(ConfigMismatchError, match="num_examples saved 64, now 48"):
    pretrain(reliability_config(), workdir, dataset=tiny_dataset(n=48),
             resume="auto", progress=False)
  # log_every / checkpoint_every may change: the finished run is resumed as is.
  _, state = pretrain(reliability_config(log_every=3), workdir, dataset=_ds(),
                      resume="auto", progress=False)
  _assert_tree_equal(state, reference["state"])
  assert _steps(workdir) == list(range(2, STEPS + 1, 2))


def _truncate_data_files(step_dir):
  for root, _, files in os.walk(step_dir):
    for f in files:
      if not f.startswith("_") and f != "commit_success.txt":
        open(os.path.join(root, f), "wb").close()


def test_corrupt_latest_checkpoint_falls_back_to_previous_good_one(
    reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")
  _truncate_data_files(os.path.join(ckdir, "12"))
  with pytest.warns(CheckpointWarning,
                    match=r"step 12 \(.*checkpoints/12\) cannot be restored"):
    _, state = pretrain(reliability_config(), workdir, dataset=_ds(),
                        resume="auto", progress=False)
  _check_matches_reference(state, workdir, reference)
  # The unreadable folder is kept (renamed), and step 12 was written again.
  assert os.path.isdir(os.path.join(ckdir, "12.corrupt"))
  assert _ckpt_steps(ckdir) == [4, 8, 12]


def test_interrupted_save_leaves_the_last_good_checkpoint_latest(
    reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  ckdir = os.path.join(workdir, "checkpoints")
  # What a save killed before Orbax's final rename leaves behind.
  os.rename(os.path.join(ckdir, "12"),
            os.path.join(ckdir, "12.orbax-checkpoint-tmp-1700000000"))
  assert _ckpt_steps(ckdir) == [4, 8]
  with pytest.warns(CheckpointWarning, match="unfinished checkpoint save"):
    _, state = pretrain(reliability_config(), workdir, dataset=_ds(),
                        resume="auto", progress=False)
  _check_matches_reference(state, workdir, reference)


def test_half_written_step_folder_is_reported_and_skipped(tmp_path):
  ck = Checkpointer(str(tmp_path))
  ck.save(1, {"w": jnp.arange(4.0)}, force=True, metadata={"step": 1})
  ck.save(2, {"w": jnp.arange(4.0) + 1}, force=True, metadata={"step": 2})
  ck.wait()
  assert ck.metadata(2) == {"step": 2}
  shutil.rmtree(tmp_path / "2" / "default")       # files missing
  os.makedirs(tmp_path / "3")                     # an empty step folder
  ck._mngr.reload()  # pylint: disable=protected-access
  with pytest.warns(CheckpointWarning) as record:
    restored = ck.restore_last_good({"w": jnp.zeros(4)})
  messages = [str(w.message) for w in record]
  assert any(f"step 3 ({tmp_path / '3'})" in m for m in messages), messages
  assert any(f"step 2 ({tmp_path / '2'})" in m for m in messages), messages
  assert restored.step == 1 and restored.bad_steps == [3, 2]
  assert restored.metadata == {"step": 1}
  np.testing.assert_array_equal(restored.state["w"], np.arange(4.0))
  assert ck.all_steps() == [1, 2, 3]              # nothing deleted
  # Without an earlier good checkpoint: a clear error.
  shutil.rmtree(tmp_path / "1" / "default")
  ck._mngr.reload()  # pylint: disable=protected-access
  with pytest.warns(CheckpointWarning):
    with pytest.raises(CheckpointError, match="no checkpoint .* can be restored"):
      ck.restore_last_good({"w": jnp.zeros(4)})
  assert ck.set_aside([3, 2]) == [str(tmp_path / "3.corrupt"),
                                  str(tmp_path / "2.corrupt")]
  assert ck.all_steps() == [1]
  ck.close()


def test_truncate_jsonl_drops_later_and_cut_lines(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.5}\n'
                  '{"step": 6, "loss": 0.2}\n{"step": 8, "lo')
  assert truncate_jsonl(str(path), 4) == 2
  assert read_jsonl(str(path)) == [{"step": 2, "loss": 1.0},
                                   {"step": 4, "loss": 0.5}]
  assert truncate_jsonl(str(path), 4) == 0
  assert os.listdir(tmp_path) == ["metrics.jsonl"]   # no temporary left over


# ---------------------------------------------------------------------------
# Numerical faults.


@struct.dataclass
class _ToyState:
  step: jax.Array
  params: dict
  opt_state: dict


@register("toy_nonfinite")
@dataclasses.dataclass(frozen=True)
class _ToyMethod(Method):
  """A method with a fast-compiling step (momentum SGD pulling ``w`` towards
  the batch's channel means) whose step ``at`` (1-based) goes non-finite:
  ``kind="loss"``: NaN loss and parameters; ``kind="params"``: parameters only.
  Registered, so that ``pretrain`` builds it from a config (``toy.at``,
  ``toy.kind``) like any method.
  """
  at: int = 5
  kind: str = "loss"

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    del tx, schedule, data
    return build(cls, config.get("toy"))

  def init(self, key, image_shape):
    w = jax.random.normal(key, (image_shape[-1],))
    return _ToyState(step=jnp.zeros((), jnp.int32), params={"w": w},
                     opt_state={"m": jnp.zeros_like(w)})

  def train_step(self, state, images, key):
    x = images.astype(jnp.float32).mean(axis=(0, 1, 2)) / 255.0
    noise = jax.random.normal(jax.random.fold_in(key, state.step), x.shape)
    loss_fn = lambda p: jnp.sum((p["w"] - x - 0.01 * noise) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    m = 0.9 * state.opt_state["m"] + grads["w"]
    w = state.params["w"] - 0.1 * m
    nan = jnp.where(state.step + 1 == self.at, jnp.nan, 0.0)
    if self.kind == "loss":
      loss = loss + nan
    w = w + nan
    metrics = {"loss": loss, "lr": jnp.float32(0.1)}
    return state.replace(step=state.step + 1, params={"w": w},
                         opt_state={"m": m}), metrics

  def encode(self, variables_or_state, images):
    del variables_or_state
    return images.reshape(images.shape[0], -1).astype(jnp.float32)


def toy_config(at=5, kind="loss", **overrides):
  """A config of ``_ToyMethod`` with ``reliability_config``'s loop settings."""
  base = reliability_config()
  c = ml_collections.ConfigDict({
      "method": "toy_nonfinite", "dataset": base.dataset, "seed": base.seed,
      "batch_size": base.batch_size, "num_steps": base.num_steps,
      "log_every": base.log_every, "checkpoint_every": base.checkpoint_every,
      "keep_checkpoints": base.keep_checkpoints,
      "toy": {"at": at, "kind": kind}})
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.mark.parametrize("kind, log_every, checkpoint_every, last_good", [
    ("loss", 2, 4, 4),     # found at log step 6
    ("params", 4, 3, 3),   # found before the save at step 6 (not a log step)
])
def test_nonfinite_stop_names_step_and_keeps_last_good_checkpoint(
    tmp_path, kind, log_every, checkpoint_every, last_good):
  config = toy_config(at=5, kind=kind, log_every=log_every,
                      checkpoint_every=checkpoint_every)
  with pytest.raises(NonFiniteError,
                     match=rf"non-finite {kind} at step 5 \(detected at step 6\)"
                           rf".*last good checkpoint is step {last_good}") as e:
    pretrain(config, str(tmp_path), dataset=_ds(), progress=False)
  assert (e.value.step, e.value.metric) == (5, kind)
  assert e.value.last_good_checkpoint == last_good
  ckdir = str(tmp_path / "checkpoints")
  assert _ckpt_steps(ckdir) == list(range(checkpoint_every, 6, checkpoint_every))
  ck = Checkpointer(ckdir)
  restored = ck.restore_last_good(_ToyMethod(5).init(jax.random.key(0), (8, 8, 1)))
  ck.close()
  assert restored.step == last_good and np.isfinite(restored.state.params["w"]).all()


def test_nonfinite_skip_discards_the_update_and_counts_it(tmp_path):
  config = toy_config(at=5, nonfinite="skip", checkpoint_every=1)
  _, state = pretrain(config, str(tmp_path), dataset=_ds(), progress=False,
                      stop_at=8)
  # Resumed: the count carries over (checkpoint metadata).
  _, state = pretrain(config, str(tmp_path), dataset=_ds(), progress=False,
                      resume="auto")
  assert int(state.step) == STEPS and np.isfinite(state.params["w"]).all()
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [(r["step"], r["skipped_steps"]) for r in rows] == [
      (2, 0), (4, 0), (6, 1), (8, 1), (10, 1), (12, 1)]
  assert all(np.isfinite(r["loss"]) for r in rows)
  ck = Checkpointer(str(tmp_path / "checkpoints"))
  s4, s5, s6 = (_host(ck.restore(state, step=s)) for s in (4, 5, 6))
  assert [ck.metadata(s)["skipped_steps"] for s in (4, 5, 6)] == [0, 1, 1]
  ck.close()
  # Step 5's update was discarded: everything but the step counter is kept.
  assert int(s5.step) == 5
  _assert_tree_equal(s5.replace(step=s4.step), s4)
  assert not np.array_equal(s6.params["w"], s5.params["w"])
