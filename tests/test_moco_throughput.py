"""benchmarks/moco_throughput.py: the PyTorch MoCo step matches ssljax's
(the script's own equivalence checks, in its --quick mode), and its split
BatchNorm groups the shuffled keys as ssljax does."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "moco_throughput.py")


def test_split_bn_groups_like_ssljax():
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  try:
    import moco_throughput as mt  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  torch.manual_seed(0)
  n, groups = 16, 4
  x = torch.randn(n, 3, 5, 5)
  perm = torch.randperm(n)
  bn = torch.nn.BatchNorm2d(3)
  with torch.no_grad():
    bn.weight.uniform_(0.5, 1.5)
    bn.bias.uniform_(-1, 1)
  split = mt.split_bn_(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), groups)
  split.load_state_dict({f"0.{k}": v for k, v in bn.state_dict().items()})
  # ssljax: sub-batch g is x[perm[g*n/G:(g+1)*n/G]], outputs unshuffled.
  want = torch.empty_like(x)
  for g in range(groups):
    rows = perm[g * n // groups:(g + 1) * n // groups]
    want[rows] = torch.nn.functional.batch_norm(
        x[rows], None, None, bn.weight, bn.bias, True, 0.1, bn.eps)
  # The trainer's path: strided sub-batches of the reordered permutation.
  p = perm.view(groups, n // groups).t().reshape(-1)
  got = split(x.index_select(0, p)).index_select(0, torch.argsort(p))
  np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(),
                             atol=1e-5)


def test_quick_mode_matches_ssljax(tmp_path):
  out = tmp_path / "moco_throughput_quick.json"
  proc = subprocess.run(
      [sys.executable, SCRIPT, "--quick", "--torch-memory-format", "contiguous",
       "--torch-threads", "1", "--out", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  result = json.loads(out.read_text())
  eq = result["equivalence"]
  assert eq["param_count_jax"] == eq["param_count_torch"]
  assert eq["same_weights_loss_rel_diff"] < 1e-4
  assert eq["second_step_loss_rel_diff"] < 1e-4
  assert eq["same_weights_enqueued_keys_max_abs_diff"] < 1e-4
  assert eq["same_weights_update_max_rel_diff"] < 1e-2
  assert eq["two_steps_key_momentum_update_max_rel_diff"] < 1e-2
  assert eq["jax_model_step_vs_train_step_max_rel_diff"] < 1e-4
  assert eq["jax_compiled_queue_copies"] == {"jax_model": 0, "jax_full": 0}
  assert result["config"]["batch_size"] == 16
  assert result["config"]["queue_size"] == 4096
  assert result["ratio_jax_over_torch"] > 0
  assert "same weights/queue/views/shuffle" in proc.stdout
