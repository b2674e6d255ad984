"""Multi-host training on JAX's own runtime, on CPU (ssljax.parallel.distributed).

Two local processes x 4 CPU devices each join one job through
``jax.distributed`` (coordinator on localhost, gloo collectives) and pre-train
the tiny SimCLR config for a few steps into ONE shared workdir; a one-process
run over 8 CPU devices of the same config is the reference. Both are
``tests/multihost_worker.py``: the only difference is the process layout.

Tolerance. The global batch is row for row the same in both runs (contiguous
per-process shares, checked), so the programs compute the same sums; only the
all-reduces differ (XLA's in-process CPU all-reduce vs gloo's ring across the
processes), which may add float32 terms in another order: about 1 ulp
(~1e-7 relative) per reduction, grown over a few LARS steps. Losses are
compared to rtol 1e-5 and parameters to rtol 1e-5 / atol 1e-6 (observed:
losses within 2e-7 relative, parameters within 2.4e-7 absolute), far below any
real divergence (a wrong batch share or a missing cross-process reduction
changes the loss in the 2nd-3rd digit). The two processes' replicas of the
parameters must be bitwise equal (one SPMD program).

The workers compile with LLVM's expensive passes off
(``--xla_backend_optimization_level=0``), which cuts compile time ~3x on a
busy 2-core machine; all three subprocesses use the same flags. The restore
of the two-process checkpoint happens in this (one-process, 8-device) test
process.
"""

import functools
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from helpers import tiny_dataset
from ssljax.parallel import (make_data_mesh, maybe_initialize_distributed,
                             process_rows, process_rows_are_contiguous,
                             replicated_sharding)
from ssljax.parallel.distributed import _detect_cluster
from ssljax.train.build import build_method
from ssljax.train.checkpoint import TMP_MARKER, Checkpointer
from ssljax.train.logging import read_jsonl

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
WORKER = os.path.join(TESTS_DIR, "multihost_worker.py")
STEPS = 4
TIMEOUT_S = 400  # per run on a loaded machine; normally well under 90 s


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SSLJAX_", "JAX_", "SLURM_", "OMPI_", "TPU_"))}
  env.update(
      JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([REPO, TESTS_DIR]),
      XLA_FLAGS=(f"--xla_force_host_platform_device_count={devices} "
                 "--xla_backend_optimization_level=0 "
                 "--xla_llvm_disable_expensive_passes=true"),
      **extra)
  return env


def _launch(workdir, outdir, env, log):
  return subprocess.Popen(
      [sys.executable, WORKER, str(workdir), str(outdir), str(STEPS)],
      env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _params(npz) -> dict:
  return {k[len("param:"):]: npz[k] for k in npz.files if k.startswith("param:")}


def _info(npz) -> dict:
  return {k[len("info:"):]: npz[k].item() for k in npz.files
          if k.startswith("info:")}


def test_maybe_initialize_distributed_decisions():
  """No-op for one process; explicit settings must be complete; clusters."""
  assert not maybe_initialize_distributed(env={}).initialized
  assert maybe_initialize_distributed(
      env={"SSLJAX_NUM_PROCESSES": "1"}).how == "single"
  assert maybe_initialize_distributed(
      env={"SSLJAX_DISTRIBUTED": "off", "SSLJAX_NUM_PROCESSES": "2"}).how == "off"
  with pytest.raises(ValueError, match="missing SSLJAX_COORDINATOR, SSLJAX_PROCESS_ID"):
    maybe_initialize_distributed(env={"SSLJAX_NUM_PROCESSES": "2"})
  with pytest.raises(ValueError, match=r"SSLJAX_PROCESS_ID=2 is not in \[0"):
    maybe_initialize_distributed(env={"SSLJAX_COORDINATOR": "h:1",
                                      "SSLJAX_NUM_PROCESSES": "2",
                                      "SSLJAX_PROCESS_ID": "2"})
  with pytest.raises(ValueError, match="SSLJAX_DISTRIBUTED='yes please'"):
    maybe_initialize_distributed(env={"SSLJAX_DISTRIBUTED": "yes please"})
  slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
  assert _detect_cluster({**slurm, "SLURM_NTASKS": "8"}) == "slurm"
  assert _detect_cluster({**slurm, "SLURM_NTASKS": "1"}) is None
  assert _detect_cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) is None  # sbatch, no srun
  assert _detect_cluster({"OMPI_MCA_orte_hnp_uri": "x", "OMPI_COMM_WORLD_SIZE": "4"}) == "mpi"
  assert _detect_cluster({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}) == "tpu"
  assert _detect_cluster({"TPU_WORKER_HOSTNAMES": "localhost"}) is None
  assert _detect_cluster({"SSLJAX_DISTRIBUTED": "auto"}) == "auto"
  # This process: one process, 8 devices, rows [0, 16) all its own.
  mesh = make_data_mesh()
  assert process_rows(mesh, 16) == list(range(16))
  assert process_rows_are_contiguous(mesh, 16)


def test_two_processes_match_one_process_and_share_checkpoints(tmp_path):
  t0 = time.perf_counter()
  port = _free_port()
  multi_wd, ref_wd = tmp_path / "multi", tmp_path / "single"
  out = tmp_path / "out"
  out_ref = tmp_path / "out_ref"
  out.mkdir()
  out_ref.mkdir()
  runs = []
  for i in range(2):
    log = open(tmp_path / f"proc{i}.log", "wb")
    env = _env(4, SSLJAX_COORDINATOR=f"localhost:{port}",
               SSLJAX_NUM_PROCESSES="2", SSLJAX_PROCESS_ID=str(i))
    runs.append((f"process {i}", _launch(multi_wd, out, env, log), log))
  log = open(tmp_path / "single.log", "wb")
  runs.append(("one-process reference", _launch(ref_wd, out_ref, _env(8), log), log))
  try:
    deadline = time.monotonic() + TIMEOUT_S
    for _, proc, _ in runs:
      proc.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    pass
  finally:
    for _, proc, log in runs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()
  for name, proc, log in runs:
    if proc.returncode != 0:
      text = open(log.name, errors="replace").read()[-4000:]
      pytest.fail(f"{name} exited with {proc.returncode}:\n{text}")
  elapsed = time.perf_counter() - t0

  procs = [np.load(out / f"proc{i}.npz", allow_pickle=False) for i in range(2)]
  ref = np.load(out_ref / "proc0.npz", allow_pickle=False)
  infos = [_info(p) for p in procs]
  for i, info in enumerate(infos):
    assert info == dict(how="explicit", process_index=i, process_count=2,
                        local_devices=4, devices=8, step=STEPS,
                        params_replicated=True, rows_contiguous=True), info
  assert _info(ref)["process_count"] == 1 and _info(ref)["devices"] == 8

  # The same losses at every step (process 0 alone writes metrics.jsonl).
  rows = read_jsonl(str(multi_wd / "metrics.jsonl"))
  ref_rows = read_jsonl(str(ref_wd / "metrics.jsonl"))
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  np.testing.assert_allclose([r["loss"] for r in rows],
                             [r["loss"] for r in ref_rows], rtol=1e-5)

  # The same parameters; both processes hold bitwise-equal replicas.
  p0, p1, pref = _params(procs[0]), _params(procs[1]), _params(ref)
  assert p0.keys() == p1.keys() == pref.keys() and p0
  for k in p0:
    np.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
    np.testing.assert_allclose(p0[k], pref[k], rtol=1e-5, atol=1e-6, err_msg=k)

  # One coherent checkpoint directory: steps 2 and 4 finalized, no leftovers,
  # metadata written once; it restores in this one-process, 8-device process.
  ckpt_dir = multi_wd / "checkpoints"
  assert not [n for n in os.listdir(ckpt_dir) if TMP_MARKER in n]
  ck = Checkpointer(str(ckpt_dir))
  try:
    assert ck.all_steps() == [2, 4]
    meta = ck.metadata(4)
    assert meta["step"] == 4 and meta["data"]["batch_size"] == 16
    assert meta["config"]["num_steps"] == STEPS
    from multihost_worker import multihost_config  # pylint: disable=import-outside-toplevel
    method, _ = build_method(multihost_config(STEPS), 64)
    ds = tiny_dataset(n=64)
    rep = replicated_sharding(make_data_mesh())
    target = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep),
        jax.eval_shape(functools.partial(method.init, image_shape=ds.image_shape),
                       jax.random.key(0)))
    restored = ck.restore(target)
  finally:
    ck.close()
  assert int(restored.step) == STEPS
  for path, leaf in jax.tree_util.tree_leaves_with_path(restored.params):
    np.testing.assert_array_equal(np.asarray(leaf), p0[jax.tree_util.keystr(path)])
  print(f"2x4-process and 1x8-process runs of {STEPS} steps: {elapsed:.1f} s")
