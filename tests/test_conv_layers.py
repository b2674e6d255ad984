"""benchmarks/conv_layers.py: the encoder's convolutions found by interception
(checked against the command-1 architecture written out by hand), and a
JAX-only quick run (PyTorch is not installed for the tests)."""

import json
from pathlib import Path

from helpers import load_module

from ssljax.train.build import load_config_file

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "experiments/configs/simclr_fashion_mnist.py")


def test_layers_of_the_command_1_encoder():
  cl = load_module(REPO / "benchmarks" / "conv_layers.py", "conv_layers")
  layers = cl.conv_layers(load_config_file(CONFIG))
  got = [(l["in_shape"][1:], l["kernel"], l["strides"][0], l["padding"][0])
         for l in layers]
  p1, p0 = (1, 1), (0, 0)
  # SmallResNet(16, 64, 256), one BasicBlock per stage, first stage strided,
  # then the 1x1 head convolution to 512 channels (out_width)
  assert got == [
      ((28, 28, 1), (3, 3, 1, 16), 1, p1),        # stem
      ((28, 28, 16), (3, 3, 16, 16), 2, p1),      # block 0
      ((14, 14, 16), (3, 3, 16, 16), 1, p1),
      ((28, 28, 16), (1, 1, 16, 16), 2, p0),      # its projection shortcut
      ((14, 14, 16), (3, 3, 16, 64), 2, p1),      # block 1
      ((7, 7, 64), (3, 3, 64, 64), 1, p1),
      ((14, 14, 16), (1, 1, 16, 64), 2, p0),
      ((7, 7, 64), (3, 3, 64, 256), 2, p1),       # block 2
      ((4, 4, 256), (3, 3, 256, 256), 1, p1),
      ((7, 7, 64), (1, 1, 64, 256), 2, p0),
      ((4, 4, 256), (1, 1, 256, 512), 1, p0),     # head convolution
  ]
  assert layers[0]["name"].endswith("stem_conv")
  assert layers[-1]["name"].endswith("out_conv")
  assert len({l["name"] for l in layers}) == len(layers)


def test_quick_run_without_torch(tmp_path):
  cl = load_module(REPO / "benchmarks" / "conv_layers.py", "conv_layers")
  out = tmp_path / "conv_layers.json"
  result = cl.main(["--quick", "--no-torch", "--batch-size", "2", "--out", str(out)])
  saved = json.loads(out.read_text())
  assert saved["views"] == 4 and len(saved["layers"]) == 11
  assert set(saved["totals_ms"]) == {"jax_fwd", "jax_train_xla", "jax_train_matmul",
                                     "jax_train_cpu", "jax_train_onednn"}
  assert all(v > 0 for row in saved["layers"] for v in row["ms"].values())
  # every conv_impl gives XLA's gradients
  for impl in ("matmul", "cpu", "onednn"):
    assert max(c[f"jax_{impl}_vs_xla_gradients"] for c in saved["checks"].values()) < 1e-5
  # the first layer's input (the image) gets no gradient, the others do
  assert [row["input_gradient"] for row in result["layers"]] == [False] + [True] * 10


def test_conv_impl_benchmark_quick(tmp_path):
  """benchmarks/conv_impl.py --quick: the gradient check at perturbed
  parameters runs (and passes), every impl is timed, ratios are to the
  first."""
  ci = load_module(REPO / "benchmarks" / "conv_impl.py", "conv_impl")
  out = tmp_path / "conv_impl.json"
  result = ci.main(["--quick", "--impls", "xla,cpu", "--out", str(out)])
  saved = json.loads(out.read_text())
  assert saved["reference"] == "xla"
  assert set(saved["median_images_per_s"]) == {"xla", "cpu"}
  assert set(saved["ratios_over_reference"]) == {"cpu"}
  # perturbed parameters: the blocks' convolutions have gradients, which
  # agree across impls to float rounding
  assert 0 <= saved["grad_max_rel_diff"]["cpu"] < 1e-4
  assert saved["loss_rel_diff"]["cpu"] < 1e-5
  assert result["per_round_ratios"]["cpu"] and all(
      r > 0 for r in result["per_round_ratios"]["cpu"])
