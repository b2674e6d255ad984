"""ssljax.models.conv: the convolution registry behind ResNet(conv_impl=...),
"auto" per platform, and the layering of the opt-in CPU layer (ssljax.cpu)."""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import ssljax.cpu.conv  # noqa: F401  (registers matmul, cpu, onednn)
from ssljax.cpu import conv as cpu_conv
from ssljax.cpu import onednn
from ssljax.models import SmallResNet
from ssljax.models import conv as registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_registry(monkeypatch):
  """The registry as ssljax ships it, without the CPU layer."""
  monkeypatch.setattr(registry, "CONV_IMPLS", {"xla": lax.conv_general_dilated})
  monkeypatch.setattr(registry, "_CPU_CANDIDATES", {"xla": (0, None)})


def test_cpu_layer_registers_its_convolutions():
  assert registry.CONV_IMPLS["xla"] is lax.conv_general_dilated
  assert registry.CONV_IMPLS["matmul"] is cpu_conv.conv_matmul_wgrad
  assert registry.CONV_IMPLS["cpu"] is cpu_conv.conv_cpu
  assert registry.CONV_IMPLS["onednn"] is cpu_conv.conv_onednn
  assert registry.conv_impl_names() == ["auto", "cpu", "matmul", "onednn", "xla"]


def test_auto_is_xla_off_cpu(monkeypatch):
  for platform in ("gpu", "tpu", "cuda", "rocm"):
    monkeypatch.setattr(registry, "platform", lambda p=platform: p)
    assert registry.resolve_conv_impl("auto") == "xla"
    assert registry.get_conv_impl("auto") is lax.conv_general_dilated


def test_auto_on_cpu_is_the_best_registered_available_one(monkeypatch):
  monkeypatch.setattr(registry, "platform", lambda: "cpu")
  # the set-up builds the oneDNN kernels here (tests/test_onednn.py)
  assert onednn.available(), onednn.unavailable_reason()
  assert registry.resolve_conv_impl("auto") == "onednn"
  assert registry.get_conv_impl("auto") is cpu_conv.conv_onednn
  monkeypatch.setattr(onednn, "available", lambda: False)   # e.g. no compiler
  assert registry.resolve_conv_impl("auto") == "cpu"
  monkeypatch.delitem(registry.CONV_IMPLS, "cpu")
  assert registry.resolve_conv_impl("auto") == "xla"        # matmul: no rank


def test_auto_without_the_cpu_layer_is_xla(monkeypatch, clean_registry):
  monkeypatch.setattr(registry, "platform", lambda: "cpu")
  assert registry.resolve_conv_impl("auto") == "xla"
  with pytest.raises(ValueError, match=r"\['auto', 'xla'\]; got 'onednn'.*import ssljax.cpu.conv"):
    registry.resolve_conv_impl("onednn")


def test_register_a_convolution(monkeypatch, clean_registry):
  monkeypatch.setattr(registry, "platform", lambda: "cpu")
  calls = []

  def mine(*args, **kwargs):
    calls.append(1)
    return lax.conv_general_dilated(*args, **kwargs)

  registry.register_conv_impl("mine", mine)
  assert registry.resolve_conv_impl("auto") == "xla"       # not a candidate
  registry.register_conv_impl("mine", mine, cpu_rank=5, available=lambda: True)
  assert registry.resolve_conv_impl("auto") == "mine"
  registry.register_conv_impl("mine", mine, cpu_rank=5, available=lambda: False)
  assert registry.resolve_conv_impl("auto") == "xla"
  with pytest.raises(ValueError, match="resolved per platform"):
    registry.register_conv_impl("auto", mine)
  # by name or as a function, in a ResNet: same values as XLA's
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  net = SmallResNet(widths=(4, 8), stage_sizes=(1, 1))
  variables = net.init(jax.random.key(1), x, train=False)
  ref = net.apply(variables, x, train=False)
  for impl in ("mine", mine):
    calls.clear()
    y = SmallResNet(widths=(4, 8), stage_sizes=(1, 1), conv_impl=impl).apply(
        variables, x, train=False)
    assert calls
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


def test_resnet_auto_on_this_cpu_matches_xla():
  """conv_impl="auto" in a ResNet: oneDNN here, XLA's values."""
  x = jax.random.normal(jax.random.key(0), (2, 12, 12, 1))
  kw = dict(widths=(8, 16), stage_sizes=(1, 1), first_stage_stride=2)
  variables = SmallResNet(**kw).init(jax.random.key(1), x)
  loss = lambda net: lambda v: jnp.sum(net.apply(
      v, x, train=True, mutable=["batch_stats"])[0] ** 2)
  f_ref = jax.jit(jax.value_and_grad(loss(SmallResNet(**kw))))
  f_auto = jax.jit(jax.value_and_grad(loss(SmallResNet(conv_impl="auto", **kw))))
  assert "ssljax_onednn_conv" in f_auto.lower(variables).compile().as_text()
  (l0, g0), (l1, g1) = f_ref(variables), f_auto(variables)
  np.testing.assert_allclose(l1, l0, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def _imports_of(path: Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  return names


def test_nothing_in_ssljax_imports_the_cpu_layer():
  """Layering: ssljax.cpu is opt-in. No module of ssljax outside ssljax/cpu
  imports it (the scripts in experiments/ and benchmarks/, and tests, may);
  the CPU-only modules all live in ssljax/cpu."""
  offenders = []
  for path in sorted((REPO / "ssljax").rglob("*.py")):
    if (REPO / "ssljax" / "cpu") in path.parents:
      continue
    bad = sorted(n for n in _imports_of(path)
                 if n == "ssljax.cpu" or n.startswith("ssljax.cpu."))
    if bad:
      offenders.append(f"{path.relative_to(REPO)}: {bad}")
  assert not offenders, offenders
  for old in ("malloc.py", "xla_cpu.py", "startup.py", "kernels"):
    assert not (REPO / "ssljax" / old).exists(), f"ssljax/{old} belongs in ssljax/cpu/"


@pytest.mark.parametrize("impl", ["cpu", "onednn"])
def test_cpc_patch_encoder_takes_conv_impl(impl):
  """Image CPC's patch encoder (stem, stride-2 and residual 3x3 convolutions
  on 8x8 patches) with a CPU convolution: the same parameters and, up to
  float rounding, the same outputs and gradients as with XLA's."""
  from ssljax.models.cpc import PatchEncoder
  x = jax.random.normal(jax.random.key(0), (12, 8, 8, 1))
  ref = PatchEncoder(widths=(8, 16), blocks=(0, 1), features=8)
  variables = ref.init(jax.random.key(1), x)
  # the residual block's last conv starts at zero: perturb so every conv
  # carries gradient
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  variables = jax.tree.unflatten(tree, [
      a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
  other = PatchEncoder(widths=(8, 16), blocks=(0, 1), features=8,
                       conv_impl=impl)
  assert (jax.tree.structure(other.init(jax.random.key(1), x))
          == jax.tree.structure(variables))

  def loss(model):
    return jax.jit(jax.value_and_grad(
        lambda v, x: jnp.sum(jnp.sin(model.apply(v, x))), argnums=(0, 1)))
  (l_ref, (g_ref, gx_ref)) = loss(ref)(variables, x)
  (l_imp, (g_imp, gx_imp)) = loss(other)(variables, x)
  np.testing.assert_allclose(l_imp, l_ref, rtol=1e-5)
  np.testing.assert_allclose(gx_imp, gx_ref, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_imp), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cpc_patch_encoder_routes_every_conv_through_conv_impl():
  """Every convolution of the patch encoder goes through ``conv_impl`` (a
  spy function): stem, the stride-2 convolution and both of the residual
  block's."""
  from ssljax.models.cpc import PatchEncoder
  calls = []

  def spy(*args, **kwargs):
    calls.append(kwargs.get("window_strides", args[2] if len(args) > 2 else None))
    return lax.conv_general_dilated(*args, **kwargs)
  model = PatchEncoder(widths=(8, 16), blocks=(0, 1), features=8, conv_impl=spy)
  model.init(jax.random.key(1), jnp.zeros((2, 8, 8, 1)))
  assert len(calls) == 4, calls
  assert sum(tuple(s) == (2, 2) for s in calls) == 1, calls


def test_every_shipped_image_config_names_auto():
  """Every shipped config whose encoder takes a conv_impl names "auto" (the
  model's own default is "xla": the MoCo and pretext configs once ran XLA's
  convolutions on the CPU because they named none), and it resolves to
  oneDNN here."""
  from ssljax.methods.base import build_encoder  # pylint: disable=import-outside-toplevel
  from ssljax.config import ConfigReader, field_names  # pylint: disable=import-outside-toplevel
  from ssljax.models import ENCODERS, PATCH_ENCODERS  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import load_config_file  # pylint: disable=import-outside-toplevel
  checked = []
  for path in sorted((REPO / "experiments" / "configs").glob("*.py")):
    config = load_config_file(str(path))
    encoder = config.get("encoder")
    name = encoder.get("name") if encoder is not None else None
    cls = ENCODERS.get(name) or PATCH_ENCODERS.get(name)
    if cls is None or "conv_impl" not in field_names(cls):
      continue
    if path.stem == "simclr_fashion_mnist_long":   # the GPU sweep's, on purpose
      assert encoder.conv_impl == "xla"
      continue
    assert encoder.get("conv_impl") == "auto", path.name
    checked.append(path.stem)
  assert {"moco_v2_fashion_mnist", "moco_v1_fashion_mnist", "rotation_fashion_mnist",
          "jigsaw_fashion_mnist", "relpos_fashion_mnist", "simclr_fashion_mnist",
          "cpc_fashion_mnist"} <= set(checked), checked
  moco = load_config_file(str(REPO / "experiments/configs/moco_v2_fashion_mnist.py"))
  enc = build_encoder(ConfigReader(moco.to_dict()))
  assert registry.get_conv_impl(enc.conv_impl) is cpu_conv.conv_onednn
