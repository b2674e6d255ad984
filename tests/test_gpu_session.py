"""The GPU session (benchmarks/gpu_session.sh, gpu_session_step.py): its plan
fits the device allowance, and a section's dry run (tiny model, CPU) goes
through every code path -- the ssljax sides in process without torch, the
PyTorch sides (eager, whole-step compile, AMP) in a subprocess, skipped
where torch is not installed."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gpu_session_step as gs  # benchmarks/ is on pytest's pythonpath

REPO = Path(__file__).resolve().parents[1]


def test_plan_fits_the_device_allowance():
  """Limits under 9 minutes, and under 8 even if every section runs to its
  limit and is then killed (5 s grace each)."""
  out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"),
                        "--plan"], capture_output=True, text=True, timeout=30,
                       check=True).stdout
  limits = dict(re.findall(r"^(\S+)\s+(\d+) s$", out, re.M))
  assert set(limits) == {"env", "resnet50", "resnet18", "summary"}
  total = sum(int(v) for v in limits.values())
  worst = int(re.search(r"worst case: (\d+) s", out).group(1))
  assert worst == total + 5 * len(limits)
  assert total < 9 * 60 and worst < 8 * 60


def test_peaks_and_deadline_alarm():
  assert gs.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == (989.4, "H100")
  assert gs.peak_tflops("NVIDIA H100 80GB HBM3", "float32") == (494.7, "H100")
  assert gs.peak_tflops("NVIDIA H100 PCIe", "bfloat16")[0] == 756.0
  assert gs.peak_tflops("NVIDIA H200", "bfloat16")[0] == 989.4
  assert gs.peak_tflops("cpu", "float32") == (None, None)
  t0 = time.monotonic()
  with pytest.raises(TimeoutError):
    with gs.Deadline(60).limit(0.05):
      while time.monotonic() - t0 < 5:
        pass
  assert time.monotonic() - t0 < 1


def _tiny_resnet18_flops(views=8, d=128):
  """By hand: the dry run's ResNet-18 (stages (1, 1), widths 4-8, CIFAR
  stem) on 16x16x3 views, head 8 -> 8 -> 128, NT-Xent's [8, 8] logits;
  multiply-adds per view, x2 FLOPs, x3 for forward + backward."""
  macs = (16 * 16 * 4 * 27                  # stem 3x3, 3 -> 4
          + 2 * 16 * 16 * 4 * 36            # block 1: two 3x3, 4 -> 4
          + 8 * 8 * 8 * 36 + 8 * 8 * 8 * 72  # block 2: 3x3 4 -> 8 (stride 2), 8 -> 8
          + 8 * 8 * 8 * 4                   # its 1x1 projection, 4 -> 8
          + 8 * 8 + 8 * 128)                # head
  return 3 * 2 * (views * macs + views * views * d)


def test_ssljax_side_dry_run(tmp_path, monkeypatch):
  """Without torch (as where the device image lacks it): both compute
  dtypes of the library's step built from a config with ``compute_dtype``,
  compiled, checked against each other, timed through the harness, MFU
  fields, the record and the summary; then a deadline that leaves no time
  still writes a record."""
  monkeypatch.setitem(sys.modules, "torch", None)    # import torch fails
  out = tmp_path / "resnet18.json"
  rec = gs.main(["--encoder", "resnet18", "--dry_run", "--out", str(out)])
  assert rec == json.loads(out.read_text())
  assert rec["status"] == "partial: torch" and rec["dry_run"] is True
  assert rec["torch_skipped"].startswith("torch not importable")
  assert rec["rounds"]["rounds"] == 2
  assert set(rec["rounds"]["seconds_per_round"]) == {"ssljax_bf16",
                                                      "ssljax_f32"}
  assert set(rec["summary"]) == {"ssljax_bf16_vs_ssljax_f32"}
  assert rec["flops"]["per_step"] == _tiny_resnet18_flops()
  bad = {k: v for k, v in rec["checks"].items() if not v["passed"]}
  assert not bad
  check = rec["checks"]["first_loss_ssljax_bf16_vs_ssljax_f32"]
  assert 0 < check["rel_diff"] < 5e-2      # bf16 really ran, and close
  for side in ("ssljax_bf16", "ssljax_f32"):
    assert rec["sides"][side]["finite_after_rounds"]
    assert rec["mfu"][side]["achieved_tflops"] > 0
    assert rec["mfu"][side]["mfu"] is None      # no peak known for a CPU
  text = gs.summarize(tmp_path)
  assert "resnet18" in text and "checks: all passed" in text

  late = tmp_path / "late.json"
  rec = gs.main(["--encoder", "resnet18", "--dry_run", "--no-torch",
                 "--dtypes", "bfloat16", "--deadline-s", "0.001",
                 "--out", str(late)])
  assert rec["status"].startswith("failed")
  assert "skipped" in json.loads(late.read_text())["sides"]["ssljax_bf16"]


def test_torch_side_dry_run(tmp_path):
  """ResNet-50 (bottleneck blocks, ImageNet stem): eager and whole-step
  compiled PyTorch, float32 and AMP bf16, from ssljax's weights; in float32
  on the CPU the mirror's first loss and first update equal ssljax's. The
  compiled sides use the aot_eager backend (dynamo's capture and
  AOTAutograd without inductor's code generation)."""
  if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed (the bench extra: pip install -e "
                "'.[bench]'); the session's PyTorch sides need it, its "
                "ssljax sides are tested without it")
  out = tmp_path / "resnet50.json"
  # XLA:CPU without its costly optimizations, as gpu_session.sh --dry_run
  # runs it (nothing here is timed).
  env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0 "
         "--xla_llvm_disable_expensive_passes=true"}
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / "gpu_session_step.py"),
       "--encoder", "resnet50", "--dry_run", "--out", str(out)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  rec = json.loads(out.read_text())
  sides = {f"{p}_{d}" for p in ("ssljax", "torch_eager", "torch_compiled")
           for d in ("f32", "bf16")}
  assert rec["status"] == "complete"
  assert set(rec["rounds"]["seconds_per_round"]) == sides
  bad = {k: v for k, v in rec["checks"].items() if not v["passed"]}
  assert not bad
  for mode in ("eager", "compiled"):
    name = f"torch_{mode}_f32"
    assert rec["checks"][f"first_loss_{name}_vs_ssljax_f32"]["rel_diff"] < 1e-5
    assert rec["checks"][f"first_update_{name}_vs_ssljax_f32"][
        "rel_diff"] < 1e-4
    assert rec["sides"][f"torch_{mode}_bf16"]["amp"] is True
  assert rec["sides"]["torch_compiled_f32"]["backend"] == "aot_eager"
  assert {"ssljax_bf16_vs_torch_eager_bf16",
          "ssljax_bf16_vs_torch_compiled_bf16"} <= set(rec["summary"])


def test_cpu_comparison_defaults_and_dry_run(tmp_path, monkeypatch):
  """resnet_cpu_step.py: the CPU defaults (conv_impl "auto" as the shipped
  configs, float32, the issue's ResNet-18 setting, a small ResNet-50 one),
  overridable flag by flag; its dry run builds the ssljax side with
  conv_impl "auto" and records it."""
  import resnet_cpu_step as rc   # pylint: disable=import-outside-toplevel
  a18 = gs.parse_args(rc.cpu_argv([]))
  assert (a18.encoder, a18.batch_size, a18.image_size) == ("resnet18", 128, 32)
  assert a18.conv_impl == "auto" and a18.dtypes == ["float32"]
  assert a18.torch_modes == ["eager", "compiled"] and a18.rounds >= 10
  a50 = gs.parse_args(rc.cpu_argv(["--encoder", "resnet50", "--rounds", "12",
                                   "--conv-impl", "xla"]))
  assert (a50.batch_size, a50.image_size, a50.stage_sizes) == (
      16, 160, (3, 4, 6, 3))
  assert a50.rounds == 12 and a50.conv_impl == "xla"
  assert gs.parse_args([]).conv_impl == "xla"      # the GPU session's

  monkeypatch.setitem(sys.modules, "torch", None)    # import torch fails
  out = tmp_path / "r18_cpu.json"
  rec = rc.main(["--dry_run", "--batch-size", "4", "--image-size", "16",
                 "--out", str(out)])
  assert rec["config"]["conv_impl"] == "auto"
  assert rec["config"]["dtypes"] == ["float32"]
  assert set(rec["rounds"]["seconds_per_round"]) == {"ssljax_f32"}
  assert rec["sides"]["ssljax_f32"]["finite_after_rounds"]
