"""benchmarks/step_profile.py's grouping of a compiled train step's XLA
operations into model parts (the PyTorch side needs torch; not run here)."""

import collections
import json
from pathlib import Path

import jax
import jax.numpy as jnp
from helpers import load_module

import ssljax.cpu.conv  # noqa: F401  (registers the CPU convolutions)
from ssljax.models.conv import resolve_conv_impl
from ssljax.train.build import build_method, load_config_file

REPO = Path(__file__).resolve().parents[1]


def test_parts_of_a_compiled_simclr_step():
  sp = load_module(REPO / "benchmarks" / "step_profile.py", "step_profile")
  config = load_config_file(str(REPO / "experiments/configs/simclr_fashion_mnist.py"))
  config.batch_size = 8
  config.encoder.widths = (8, 16, 32)
  config.encoder.conv_impl = "cpu"   # (the config's "auto", "onednn" here: the test below)
  method, _ = build_method(config, 60_000)
  state = method.init(jax.random.key(0), (28, 28, 1))
  images = jnp.zeros((8, 28, 28, 1), jnp.uint8)
  text = jax.jit(method.train_step).lower(state, images, jax.random.key(1)).compile().as_text()
  names = sp.hlo_op_names(text)
  assert len(names) > 100
  parts = collections.defaultdict(list)
  for op_name in names.values():
    parts[sp.part_of(op_name)].append(op_name)
  forward = parts["conv forward"]
  # the 3x3 / 1x1 convolutions of every block, nothing else
  assert forward and all(p.endswith("conv_general_dilated") and "transpose(" not in p
                         for p in forward)
  assert {p.split("/")[-2] for p in forward} >= {"Conv_0", "Conv_1", "proj_conv"}
  # conv_impl="cpu": the stem's forward pass is broadcast products
  taps = next(k for k in parts if k.startswith("conv forward, other"))
  assert any("/stem_conv/" in p for p in parts[taps])
  wgrad = next(k for k in parts if k.startswith("conv gradients outside"))
  assert any(p.endswith("dot_general") for p in parts[wgrad])
  assert all("transpose(" in p for p in parts[wgrad])
  bn = parts["batch norm (forward and backward)"]
  assert any("/stem_bn/" in p for p in bn) and any("/BatchNorm_1/" in p for p in bn)
  assert any(k.startswith("augmentation") for k in parts)
  # a hand-written path per rule
  assert sp.part_of("jit(train_step)/jvp(EncoderWithHead)/head/Dense_0/dot_general") \
      == "projection head"
  assert sp.part_of("jit(train_step)/jit(norm)/sqrt") == "LARS parameter and update norms"
  assert sp.part_of("jit(train_step)/mul").startswith("other")


def test_onednn_custom_calls_are_their_own_part(monkeypatch):
  """conv_impl="auto" (the command-1 config's), which is "onednn" on this
  CPU with ssljax.cpu imported: the few-channel layers' custom calls (forward, input and weight gradients) are grouped as oneDNN
  convolutions; the wide layers stay XLA convolutions."""
  sp = load_module(REPO / "benchmarks" / "step_profile.py", "step_profile")
  config = load_config_file(str(REPO / "experiments/configs/simclr_fashion_mnist.py"))
  assert config.encoder.conv_impl == "auto"
  assert resolve_conv_impl("auto") == "onednn"
  import ssljax.cpu.conv as cpu_conv  # pylint: disable=import-outside-toplevel
  # a limit below the last stage's width: wide layers stay XLA convolutions
  # (the default sends every layer to oneDNN)
  assert cpu_conv.ONEDNN_MAX_COUT >= 2048
  monkeypatch.setattr(cpu_conv, "ONEDNN_MAX_COUT", 64)
  config.batch_size = 8
  config.encoder.widths = (8, 16, 128)          # last stage wider than 64
  method, _ = build_method(config, 60_000)
  state = method.init(jax.random.key(0), (28, 28, 1))
  images = jnp.zeros((8, 28, 28, 1), jnp.uint8)
  text = jax.jit(method.train_step).lower(state, images, jax.random.key(1)).compile().as_text()
  parts = collections.defaultdict(list)
  for op_name in sp.hlo_op_names(text).values():
    parts[sp.part_of(op_name)].append(op_name)
  onednn = parts[next(k for k in parts if k.startswith("conv on oneDNN"))]
  layers = {p.split("/")[-2] for p in onednn}
  assert {"stem_conv", "Conv_0", "Conv_1", "proj_conv"} <= layers
  assert not any("/BasicBlock_2/" in p or "/out_conv/" in p for p in onednn)
  assert any("/BasicBlock_2/" in p for p in parts["conv forward"])


def test_layer_of_names_the_block_and_module():
  sp = load_module(REPO / "benchmarks" / "step_profile.py", "step_profile")
  p = "jit(step)/transpose(jvp(EncoderWithHead))/encoder/BasicBlock_3/Conv_1/ffi_call"
  assert sp.layer_of(p) == "BasicBlock_3/Conv_1"
  assert sp.layer_of("jit(step)/jvp(EncoderWithHead)/encoder/BottleneckBlock_12/"
                     "proj_bn/reduce_sum") == "BottleneckBlock_12/proj_bn"
  assert sp.layer_of("jit(step)/jvp(EncoderWithHead)/encoder/stem_conv/"
                     "conv_general_dilated") == "stem_conv"
  assert sp.layer_of("jit(step)/jvp(EncoderWithHead)/head/Dense_0/dot_general") == "head"
  assert sp.layer_of("jit(step)/mul") == "-"


def test_resnet_step_profile_quick_without_torch(tmp_path):
  """benchmarks/resnet_step_profile.py --quick: the ResNet-18 step (tiny
  widths) profiled, its oneDNN convolutions found per layer."""
  rp = load_module(REPO / "benchmarks" / "resnet_step_profile.py",
                   "resnet_step_profile")
  assert rp.torch_part("aten::convolution_backward") == "conv backward"
  assert rp.torch_part("aten::native_batch_norm_backward").startswith("batch norm")
  assert rp.torch_part("aten::_foreach_mul_") == "other"
  out = tmp_path / "p.json"
  rec = rp.main(["--quick", "--no-torch", "--out", str(out)])
  saved = json.loads(out.read_text())
  assert saved["encoder"] == "resnet18" and saved["git"]["commit"]
  jx = rec["ssljax"]
  assert jx["wall_ms_per_step"] > 0
  assert any(k.startswith("conv on oneDNN") for k in jx["parts_ms"])
  assert {"stem_conv", "BasicBlock_0/Conv_0", "BasicBlock_2/proj_conv",
          "BasicBlock_0/BatchNorm_0"} <= set(jx["layers_ms"])
