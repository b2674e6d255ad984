"""SimCLR training throughput: ssljax (JAX) vs. an equivalent PyTorch step (CPU or GPU).

Launch (on an otherwise idle machine)::

    python benchmarks/simclr_throughput.py
    python benchmarks/simclr_throughput.py --torch-compile none,step  # + compiled
    python benchmarks/simclr_throughput.py --dry_run  # every code path, no timing
    python benchmarks/simclr_throughput.py --quick --out /tmp/quick.json  # smoke test
    python benchmarks/simclr_throughput.py --torch-device cuda --batch-size 1024 \
        --out benchmarks/results/simclr_throughput_h200_b1024.json      # on a GPU
    python benchmarks/simclr_throughput.py --torch-device cuda \
        --compute-dtype bfloat16 --torch-compile none,step   # bf16 / PyTorch AMP

On a GPU, JAX runs on its default backend and torch on ``cuda`` with TF32
allowed (XLA's default float32 precision there); the equivalence checks are
computed at full float32 precision on both sides.

What is compared. The model is the Fashion-MNIST SimCLR configuration of
``experiments/configs/simclr_fashion_mnist.py``: its ``SmallResNet`` (widths and
strides read from the config) + the 2-layer projection MLP, NT-Xent (T from the
config), LARS (optax.lars semantics) with the config's learning-rate schedule,
at the config's batch size (256 source images = 512 views a step).

* JAX side: the library itself (``ssljax.train.build.build_method``), no
  re-implementation.
* PyTorch side: the same architecture, loss and optimizer written in torch in
  this file (channels_last or contiguous, whichever is faster), in one or
  more modes (``--torch-compile``): eager, ``torch.compile`` of the model, or
  ``torch.compile`` of the whole step (forward, loss, backward, LARS). No
  step reads a value from the host that changes every step: the learning
  rate comes from a device table indexed by a device step counter, and the
  loss's mask and positive indices are made once, on the device.

Timed region. For the side-by-side comparison ONLY the train step is timed
(forward of both views in one batch, NT-Xent, backward, LARS update) on views
that were augmented beforehand, as float32 ``[B, 28, 28, 1]``; the very same
view tensors feed both frameworks. With ``--compute-dtype bfloat16`` the
JAX steps compute in bf16 (``config.compute_dtype``) and the torch steps run
their forward under ``torch.autocast(dtype=torch.bfloat16)`` (AMP), the loss
in float32 on both sides; the equivalence checks below stay float32.
Separately, the full ssljax step
(``SimCLR.train_step``: uint8 images in, augmentation on the fly) is timed too.
"images/s" counts source images (each yields 2 views). Compile time and
warm-up steps are excluded; JAX timings end with ``jax.block_until_ready``.

The measurements are interleaved in one process (``_compare.py``): every
round times the JAX step, each torch step and the full ssljax step (the order
alternates from round to round), 10 rounds by default. For each torch side
the per-round ratio ``torch seconds / JAX seconds`` (> 1: JAX faster) is
summarized by its median and a 95% bootstrap interval of the median; parity
means the interval contains 1. A busy machine (load average above
``--max_load`` per core) is refused with exit status 2 unless
``--allow_load``, which flags the record.

Before timing, equivalence is checked: equal parameter counts (and equal
per-tensor sizes), and the JAX initial weights copied into the torch model give
the same loss and the same one-step LARS update; each compiled torch step
must match the eager one over its first three steps.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import contextlib
import copy
import datetime
import gc
import importlib.util
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

import _compare as cmp  # noqa: E402
from _machine import cpu_model, malloc_name  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ssljax  # noqa: E402
import ssljax.cpu.conv  # noqa: E402,F401  (registers the CPU convolutions)
import ssljax.train.build  # noqa: E402
from ssljax.train.optim import make_optimizer  # noqa: E402

CONFIG_PATH = REPO / "experiments" / "configs" / "simclr_fashion_mnist.py"
NUM_EXAMPLES = 60000          # Fashion-MNIST train split (sets the lr schedule)
IMAGE_SHAPE = (28, 28, 1)
DEFAULT_OUT = REPO / "benchmarks" / "results" / "simclr_throughput.json"
QUICK_OUT = REPO / "benchmarks" / "results" / "simclr_throughput_quick.json"
DRY_RUN_OUT = Path(tempfile.gettempdir()) / "simclr_throughput_dry_run.json"


def load_config():
  spec = importlib.util.spec_from_file_location("simclr_fashion_mnist_config",
                                                CONFIG_PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# --------------------------------------------------------------------------
# PyTorch equivalent of ssljax's SmallResNet + ProjectionMLP, NT-Xent and LARS
# --------------------------------------------------------------------------

def _bn2d(c):
  # Flax momentum 0.9 (decay of the running average) == torch momentum 0.1.
  return tnn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class TorchBasicBlock(tnn.Module):
  """ssljax.models.resnet.BasicBlock: 3x3 conv-BN-ReLU, 3x3 conv-BN (scale
  initialized to 0), projection shortcut 1x1 conv + BN when the shape changes."""

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = tnn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
    self.bn1 = _bn2d(cout)
    self.conv2 = tnn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
    self.bn2 = _bn2d(cout)
    tnn.init.zeros_(self.bn2.weight)
    self.has_proj = stride != 1 or cin != cout
    if self.has_proj:
      self.proj_conv = tnn.Conv2d(cin, cout, 1, stride, bias=False)
      self.proj_bn = _bn2d(cout)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    r = self.proj_bn(self.proj_conv(x)) if self.has_proj else x
    return F.relu(r + y)


class TorchSmallResNet(tnn.Module):
  """ResNet(stage_sizes=(1,1,1), BasicBlock, CIFAR stem); pooled features;
  ``out_width``: the final 1x1 conv + BN + ReLU before the pooling."""

  def __init__(self, in_ch: int, widths=(32, 64, 128), stage_sizes=(1, 1, 1),
               first_stage_stride: int = 2, out_width: int = 0):
    super().__init__()
    self.stem_conv = tnn.Conv2d(in_ch, widths[0], 3, 1, padding=1, bias=False)
    self.stem_bn = _bn2d(widths[0])
    blocks, cin = [], widths[0]
    for i, (n, w) in enumerate(zip(stage_sizes, widths)):
      for j in range(n):
        stride = (first_stage_stride if i == 0 else 2) if j == 0 else 1
        blocks.append(TorchBasicBlock(cin, w, stride))
        cin = w
    self.blocks = tnn.Sequential(*blocks)
    self.out_conv = self.out_bn = None
    if out_width:
      self.out_conv = tnn.Conv2d(cin, out_width, 1, bias=False)
      self.out_bn = _bn2d(out_width)
      cin = out_width
    self.features = cin
    for m in self.modules():
      if isinstance(m, tnn.Conv2d):   # variance_scaling(2.0, fan_out, normal)
        tnn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x):
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    x = self.blocks(x)
    if self.out_conv is not None:
      x = F.relu(self.out_bn(self.out_conv(x)))
    return x.mean(dim=(2, 3))


class TorchProjectionMLP(tnn.Module):
  """ProjectionMLP(num_layers=2): Linear(no bias)-BN1d-ReLU, Linear(+bias);
  with ``use_bn=False`` (MoCo v2's head) Linear(+bias)-ReLU, Linear(+bias)."""

  def __init__(self, features: int, hidden: int, out_dim: int,
               use_bn: bool = True):
    super().__init__()
    self.fc1 = tnn.Linear(features, hidden, bias=not use_bn)
    self.bn1 = (tnn.BatchNorm1d(hidden, eps=1e-5, momentum=0.1) if use_bn
                else None)
    self.fc2 = tnn.Linear(hidden, out_dim, bias=True)
    for fc in (self.fc1, self.fc2):   # flax Dense: lecun_normal, zero bias
      tnn.init.trunc_normal_(fc.weight, std=1.0 / math.sqrt(fc.in_features)
                             / 0.87962566103423978, a=-2 / math.sqrt(
                                 fc.in_features) / 0.87962566103423978,
                             b=2 / math.sqrt(fc.in_features) / 0.87962566103423978)
    tnn.init.zeros_(self.fc2.bias)
    if not use_bn:
      tnn.init.zeros_(self.fc1.bias)

  def forward(self, h):
    if self.bn1 is None:
      return self.fc2(F.relu(self.fc1(h)))
    return self.fc2(F.relu(self.bn1(self.fc1(h))))


class TorchSimCLRModel(tnn.Module):

  def __init__(self, config, in_ch: int):
    super().__init__()
    enc = config.encoder
    if enc.name != "small_resnet":
      raise ValueError(f"this benchmark mirrors small_resnet only; got {enc.name}")
    self.encoder = TorchSmallResNet(
        in_ch, widths=tuple(enc.widths),
        stage_sizes=tuple(enc.get("stage_sizes", (1, 1, 1))),
        first_stage_stride=enc.get("first_stage_stride", 1),
        out_width=enc.get("out_width", 0) or 0)
    head = config.head
    if head.num_layers != 2 or head.get("final_bn", False):
      raise ValueError("this benchmark mirrors the 2-layer projection head "
                       "(with or without BN, no final BN)")
    hidden = head.hidden_dim or self.encoder.features
    self.head = TorchProjectionMLP(self.encoder.features, hidden, head.out_dim,
                                   use_bn=head.get("use_bn", True))

  def forward(self, x):
    return self.head(self.encoder(x))


def nt_xent_targets(n: int, device) -> tuple:
  """The diagonal mask ``[2N, 2N]`` and each anchor's positive ``[2N]`` of
  NT-Xent, made on ``device``. Made once per trainer, not in every step: an
  index built on the host each step is a host-to-device copy (a sync) on an
  accelerator."""
  eye = torch.eye(2 * n, dtype=torch.bool, device=device)
  positive = (torch.arange(2 * n, device=device) + n) % (2 * n)
  return eye, positive


def torch_nt_xent(z1, z2, temperature: float, targets=None):
  """ssljax.losses.nt_xent: 2N x 2N cosine similarities / T, diagonal masked,
  mean over the 2N anchors of logsumexp - positive (the cross-entropy with
  the other view as the target).

  ``targets``: :func:`nt_xent_targets` for this batch size and device (made
  here when not given: the checks; the trainers pass theirs)."""
  n = z1.shape[0]
  eye, positive = targets if targets is not None else nt_xent_targets(
      n, z1.device)
  z = torch.cat([z1, z2], 0)
  # l2_normalize: x * rsqrt(max(|x|^2, 1e-12)) == x / max(|x|, 1e-6)
  z = z * torch.rsqrt(torch.clamp((z * z).sum(1, keepdim=True), min=1e-12))
  logits = ((z @ z.T) / temperature).masked_fill(eye, float("-inf"))
  return F.cross_entropy(logits, positive)


class TorchLARS:
  """optax.lars with ssljax's mask, in torch.

  For weights (ndim > 1): g <- g + wd * w; g <- g * r with
  r = eta * |w| / |g| (1 when either norm is 0). Biases and BN parameters
  (ndim <= 1): neither weight decay nor trust ratio. Then for all:
  u = -lr * g; m <- u + momentum * m; w <- w + m (optax.trace after the lr).
  ``step(lr)`` takes the learning rate as a number or a 0-d tensor on the
  parameters' device (no host sync, and no recompilation per value under
  ``torch.compile``).
  """

  def __init__(self, params, weight_decay: float, momentum: float,
               trust_coefficient: float):
    params = [p for p in params if p.requires_grad]
    self.adapt = [p for p in params if p.ndim > 1]
    self.plain = [p for p in params if p.ndim <= 1]
    self.buf_adapt = [torch.zeros_like(p) for p in self.adapt]
    self.buf_plain = [torch.zeros_like(p) for p in self.plain]
    self.wd = float(weight_decay)
    self.momentum = float(momentum)
    self.eta = float(trust_coefficient)

  def zero_grad(self):
    for p in self.adapt + self.plain:
      p.grad = None

  @torch.no_grad()
  def step(self, lr):
    g = [p.grad for p in self.adapt]
    if self.wd:
      torch._foreach_add_(g, self.adapt, alpha=self.wd)
    wn = torch.stack(torch._foreach_norm(self.adapt))
    gn = torch.stack(torch._foreach_norm(g))
    ratio = torch.where((wn == 0) | (gn == 0), torch.ones_like(wn),
                        self.eta * wn / gn)
    # A list of 0-d tensors, not .tolist(): no host sync on an accelerator.
    torch._foreach_mul_(g, list((ratio * -lr).unbind()))
    torch._foreach_mul_(self.buf_adapt, self.momentum)
    torch._foreach_add_(self.buf_adapt, g)
    torch._foreach_add_(self.adapt, self.buf_adapt)
    gp = [p.grad for p in self.plain]
    torch._foreach_mul_(self.buf_plain, self.momentum)
    torch._foreach_add_(self.buf_plain, torch._foreach_mul(gp, -lr))
    torch._foreach_add_(self.plain, self.buf_plain)


def autocast(device, enabled: bool):
  """``torch.autocast(dtype=torch.bfloat16)`` on ``device``'s type when
  ``enabled`` (AMP: convolutions and matmuls in bf16, parameters and the
  optimizer in float32), else nothing."""
  if not enabled:
    return contextlib.nullcontext()
  return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def float32_twin(config):
  """A copy of ``config`` computing in float32: the equivalence checks
  compare float32 arithmetic on both sides whatever ``--compute-dtype``
  times."""
  twin = copy.deepcopy(config)
  twin.compute_dtype = "float32"
  return twin


#: The PyTorch step's modes: ``none``: eager; ``model``: ``torch.compile`` of
#: the model's forward (AOTAutograd compiles its backward), loss and
#: optimizer eager; ``step``: ``torch.compile`` of the whole step (forward,
#: loss, backward, optimizer and, for MoCo, the momentum update and the
#: enqueue): dynamo breaks the graph only at ``loss.backward()``, whose
#: backward graph AOTAutograd compiled with the forward.
TORCH_COMPILE_MODES = ("none", "model", "step")


def compile_step(fn, backend: str = "inductor"):
  """``torch.compile`` of a whole train step ``fn``.

  Where this torch's dynamo has ``trace_autograd_ops``, it is switched on
  for the step's calls: dynamo then traces ``loss.backward()`` into the same
  graph, and forward, backward and the updates compile as one program.
  Elsewhere dynamo breaks the graph at ``loss.backward()`` (the backward is
  then AOTAutograd's compiled one, and the updates after it a second
  graph); :func:`step_capture` says which.
  """
  compiled = torch.compile(fn, backend=backend)
  config = torch._dynamo.config  # pylint: disable=protected-access
  if not hasattr(config, "trace_autograd_ops"):
    return compiled

  def step(*args, **kwargs):
    with config.patch(trace_autograd_ops=True):
      return compiled(*args, **kwargs)
  return step


def step_capture() -> str:
  """How :func:`compile_step` captures the backward with this torch."""
  config = torch._dynamo.config  # pylint: disable=protected-access
  return ("one graph (dynamo trace_autograd_ops)"
          if hasattr(config, "trace_autograd_ops")
          else "graph break at loss.backward()")


class _StepCounter:
  """The step count on the device, for the trainers: the learning rate (and
  key momentum) of a step is read from a device table there, so neither the
  eager nor the compiled step reads a host value that changes every step."""

  def _init_counter(self, device, **tables):
    self._count = torch.zeros(1, dtype=torch.long, device=device)
    for name, values in tables.items():
      setattr(self, name, torch.as_tensor(np.array(values, np.float32),
                                          device=device))
    self._table_len = min(len(v) for v in tables.values())

  def _at(self, table):
    """``table[min(count, len - 1)]`` as a 0-d tensor, on the device."""
    i = torch.clamp(self._count, max=self._table_len - 1)
    return table.index_select(0, i).squeeze(0)

  @property
  def count(self) -> int:
    """Steps taken (reads the device: not for the timed loop)."""
    return int(self._count.item())

  @count.setter
  def count(self, value: int):
    self._count.fill_(int(value))


class TorchTrainer(_StepCounter):
  """One SimCLR train step on pre-augmented views (NCHW float32).

  Args:
    model: a :class:`TorchSimCLRModel` on the device the step runs on.
    opt_config: the config's optimizer (LARS).
    temperature: NT-Xent's T.
    lrs: the learning rate of each step (the last one repeats).
    memory_format: ``torch.channels_last`` or ``torch.contiguous_format``
      (the model's weights; the views should be in the same one).
    compile: one of :data:`TORCH_COMPILE_MODES`.
    backend: ``torch.compile``'s backend (``inductor``).
    amp: the forward under ``torch.autocast(dtype=torch.bfloat16)`` (AMP;
      ``--compute-dtype bfloat16``), the loss in float32 after it, as
      ssljax's ``compute_dtype="bfloat16"`` does.
  """

  def __init__(self, model, opt_config, temperature, lrs, memory_format,  # pylint: disable=redefined-builtin
               compile="none", backend="inductor", amp=False):
    if compile not in TORCH_COMPILE_MODES:
      raise ValueError(f"compile must be one of {TORCH_COMPILE_MODES}; got "
                       f"{compile!r}")
    self.model = model.to(memory_format=memory_format).train()
    device = next(self.model.parameters()).device
    self.compile = compile
    self.forward = (torch.compile(self.model, backend=backend)
                    if compile == "model" else self.model)
    self.opt = TorchLARS(self.model.parameters(), opt_config.weight_decay,
                         opt_config.get("momentum", 0.9),
                         opt_config.get("trust_coefficient", 1e-3))
    self.temperature = temperature
    self.amp = bool(amp)
    self._init_counter(device, lrs=lrs)
    self._targets = None
    self._step_fn = (compile_step(self._step, backend)
                     if compile == "step" else self._step)

  def _step(self, v1, v2):
    n = v1.shape[0]
    with autocast(v1.device, self.amp):
      z = self.forward(torch.cat([v1, v2], 0))
    z = z.float()
    loss = torch_nt_xent(z[:n], z[n:], self.temperature, self._targets)
    self.opt.zero_grad()
    loss.backward()
    self.opt.step(self._at(self.lrs))
    self._count += 1
    return loss.detach()

  def state_tensors(self) -> list:
    """The tensors a step changes that the compiled-vs-eager check compares
    (the parameters)."""
    return list(self.model.parameters())

  def step(self, v1, v2):
    n = v1.shape[0]
    if self._targets is None or self._targets[1].shape[0] != 2 * n:
      self._targets = nt_xent_targets(n, v1.device)
    return self._step_fn(v1, v2)


def load_flax_into_torch(model: TorchSimCLRModel, params, batch_stats):
  """Copy ssljax EncoderWithHead variables into the torch model (for the
  equivalence check)."""
  t = lambda a: torch.from_numpy(np.array(a))   # a writable copy

  def conv(m, p):
    m.weight.copy_(t(np.asarray(p["kernel"]).transpose(3, 2, 0, 1)))

  def bn(m, p, s):
    m.weight.copy_(t(p["scale"]))
    m.bias.copy_(t(p["bias"]))
    m.running_mean.copy_(t(s["mean"]))
    m.running_var.copy_(t(s["var"]))

  with torch.no_grad():
    ep, es = params["encoder"], batch_stats["encoder"]
    conv(model.encoder.stem_conv, ep["stem_conv"])
    bn(model.encoder.stem_bn, ep["stem_bn"], es["stem_bn"])
    for i, blk in enumerate(model.encoder.blocks):
      p, s = ep[f"BasicBlock_{i}"], es[f"BasicBlock_{i}"]
      conv(blk.conv1, p["Conv_0"])
      bn(blk.bn1, p["BatchNorm_0"], s["BatchNorm_0"])
      conv(blk.conv2, p["Conv_1"])
      bn(blk.bn2, p["BatchNorm_1"], s["BatchNorm_1"])
      if blk.has_proj:
        conv(blk.proj_conv, p["proj_conv"])
        bn(blk.proj_bn, p["proj_bn"], s["proj_bn"])
    if model.encoder.out_conv is not None:
      conv(model.encoder.out_conv, ep["out_conv"])
      bn(model.encoder.out_bn, ep["out_bn"], es["out_bn"])
    hp = params["head"]
    model.head.fc1.weight.copy_(t(np.asarray(hp["Dense_0"]["kernel"]).T))
    if model.head.bn1 is None:
      model.head.fc1.bias.copy_(t(hp["Dense_0"]["bias"]))
    else:
      bn(model.head.bn1, hp["BatchNorm_0"], batch_stats["head"]["BatchNorm_0"])
    model.head.fc2.weight.copy_(t(np.asarray(hp["Dense_1"]["kernel"]).T))
    model.head.fc2.bias.copy_(t(hp["Dense_1"]["bias"]))


def flax_to_torch_order(model: TorchSimCLRModel, tree):
  """The leaves of a flax ``params``-shaped tree in torch parameter order,
  converted to torch layout (numpy arrays)."""
  ep, hp = tree["encoder"], tree["head"]
  k = lambda p: np.asarray(p["kernel"]).transpose(3, 2, 0, 1)
  out = [k(ep["stem_conv"]), ep["stem_bn"]["scale"], ep["stem_bn"]["bias"]]
  for i, blk in enumerate(model.encoder.blocks):
    p = ep[f"BasicBlock_{i}"]
    out += [k(p["Conv_0"]), p["BatchNorm_0"]["scale"], p["BatchNorm_0"]["bias"],
            k(p["Conv_1"]), p["BatchNorm_1"]["scale"], p["BatchNorm_1"]["bias"]]
    if blk.has_proj:
      out += [k(p["proj_conv"]), p["proj_bn"]["scale"], p["proj_bn"]["bias"]]
  if model.encoder.out_conv is not None:
    out += [k(ep["out_conv"]), ep["out_bn"]["scale"], ep["out_bn"]["bias"]]
  out += [np.asarray(hp["Dense_0"]["kernel"]).T]
  if model.head.bn1 is None:
    out += [hp["Dense_0"]["bias"]]
  else:
    out += [hp["BatchNorm_0"]["scale"], hp["BatchNorm_0"]["bias"]]
  out += [np.asarray(hp["Dense_1"]["kernel"]).T, hp["Dense_1"]["bias"]]
  return [np.asarray(x) for x in out]


# --------------------------------------------------------------------------
# Machine information
# --------------------------------------------------------------------------

def machine_info() -> dict:
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = None
  return {
      "cpu_model": cpu_model(),
      "malloc": malloc_name(),
      "platform_processor": platform.processor(),
      "platform": platform.platform(),
      "logical_cores": os.cpu_count(),
      "cores_available_to_process": affinity,
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "flax": importlib.import_module("flax").__version__,
      "optax": optax.__version__,
      "torch": torch.__version__,
      "torch_num_threads": torch.get_num_threads(),
      "torch_num_interop_threads": torch.get_num_interop_threads(),
      "torch_mkldnn": torch.backends.mkldnn.is_available(),
      "jax_device_kind": jax.devices()[0].device_kind,
      "torch_cuda_device": (torch.cuda.get_device_name(0)
                            if torch.cuda.is_available() else None),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }


# --------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------

def param_sizes_jax(params):
  return sorted(int(x.size) for x in jax.tree_util.tree_leaves(params))


def param_sizes_torch(model):
  return sorted(p.numel() for p in model.parameters())


def list_max_rel_diff(a, b) -> float:
  """max over pairs of |x - y| / |y| (Frobenius norms), over the pairs with
  |y| > 0 (0.0 when there are none)."""
  return max((float(np.linalg.norm(x - y) / np.linalg.norm(y))
              for x, y in zip(a, b) if np.linalg.norm(y) > 0), default=0.0)


def timed_torch(trainer, v1, v2, steps):
  """Seconds for ``steps`` steps of ``trainer`` (the memory-format probe)."""
  gc.collect()
  if v1.is_cuda:
    torch.cuda.synchronize()
  t0 = time.perf_counter()
  loss = None
  for _ in range(steps):
    loss = trainer.step(v1, v2)
  float(loss)   # waits for the device (CUDA) / final barrier (CPU)
  return time.perf_counter() - t0


def jax_side(fn, states: dict, which: str, args_):
  """A side for ``_compare.interleaved_rounds``: ``steps`` calls of the
  jitted ``fn(state, *args_)`` from ``states[which]`` (donated, so the new
  state is stored back), blocking until the device is done."""
  def run(steps):
    state, out = states[which], None
    for _ in range(steps):
      state, out = fn(state, *args_)
    jax.block_until_ready((state, out))
    states[which] = state
  return run


def torch_side(trainer, inputs):
  """A side for ``_compare.interleaved_rounds``: ``steps`` torch steps,
  ending with the last loss read back to the host (waits for the device)."""
  def run(steps):
    loss = None
    for _ in range(steps):
      loss = trainer.step(*inputs)
    float(loss)
  return run


#: The name of the torch side for each compile mode.
TORCH_SIDE_NAMES = {"none": "torch_eager", "model": "torch_compiled_model",
                    "step": "torch_compiled_step"}

#: Tolerances of the compiled-vs-eager check (relative): the losses; the
#: change of all state tensors together; the change of any one tensor (a
#: looser bound: a tensor whose gradient is small against its weight decay
#: can differ by a few thousandths through rounding alone, while a step that
#: misses or repeats an operation is off by order one). The update bound was
#: 1e-3 until an AVX-512 Xeon gave 1.3e-3 after 3 LARS steps (inductor's
#: reductions round differently there; the losses agreed to 7e-8): 1e-2
#: still catches any missed or repeated operation.
COMPILED_LOSS_TOL = 1e-3
COMPILED_UPDATE_TOL = 1e-2
COMPILED_TENSOR_TOL = 1e-1
#: The same under AMP (bf16), where the compiled step may round at other
#: places than the eager one (fused kernels keep float32 intermediates):
#: losses and the update of all tensors together; no bound per tensor.
COMPILED_TOLS_AMP = (2e-2, 1e-1, math.inf)


def compiled_tolerances(args) -> tuple:
  """(loss, update, one tensor) tolerances of the compiled-vs-eager check."""
  if getattr(args, "compute_dtype", "float32") == "bfloat16":
    return COMPILED_TOLS_AMP
  return COMPILED_LOSS_TOL, COMPILED_UPDATE_TOL, COMPILED_TENSOR_TOL


def compare_first_steps(ref, trainer, inputs, steps: int = 3,
                        step_kwargs=None) -> dict:
  """Runs the same ``steps`` steps with an eager trainer ``ref`` and a
  compiled ``trainer`` that start from the same state, and compares them:
  the largest relative difference of the losses, and the relative difference
  of the change of the ``state_tensors()`` over the steps (the parameters;
  for MoCo the key encoder and the queue too), all together and the largest
  of one tensor (see the tolerances above). Three steps, so that the learning
  rate (0 at step 0 of a warm-up schedule) and the key encoder's momentum
  update (the identity while the key encoder equals the query encoder) are
  seen. First both get the same noise (std 0.1) on their 1-d parameters (BN
  scales and shifts): the last BN scale of every residual block starts at 0,
  which makes the gradients of the convolutions before it zero up to
  rounding, and the change LARS makes of such a tensor (mostly weight decay,
  rescaled by the trust ratio) would follow that rounding noise."""
  kw = step_kwargs or {}
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for a, b in zip(ref.state_tensors(), trainer.state_tensors()):
      if a.ndim == 1:
        noise = (0.1 * torch.randn(a.shape, generator=gen)).to(a.device)
        a.add_(noise)
        b.add_(noise)
  before = [t.detach().clone() for t in ref.state_tensors()]
  loss_ref = [float(ref.step(*inputs, **kw)) for _ in range(steps)]
  loss_new = [float(trainer.step(*inputs, **kw)) for _ in range(steps)]
  delta = lambda tr: [(t.detach() - b).double().cpu().numpy()
                      for t, b in zip(tr.state_tensors(), before)]
  new, old = delta(trainer), delta(ref)
  diffs = [float(np.linalg.norm(x - y) / np.linalg.norm(y))
           if np.linalg.norm(y) > 0 else 0.0 for x, y in zip(new, old)]
  worst = int(np.argmax(diffs))
  total = math.sqrt(sum(float(np.sum(y * y)) for y in old))
  return {
      "steps": steps,
      "loss_eager": loss_ref, "loss_compiled": loss_new,
      "loss_max_rel_diff": max(abs(x - y) / max(abs(x), 1e-30)
                               for x, y in zip(loss_ref, loss_new)),
      "update_rel_diff": math.sqrt(sum(float(np.sum((x - y) ** 2))
                                       for x, y in zip(new, old)))
                         / max(total, 1e-30),
      "update_max_rel_diff": diffs[worst],
      "update_worst_tensor": {"index": worst,
                              "shape": list(old[worst].shape),
                              "update_norm": float(np.linalg.norm(old[worst])),
                              "value_norm": float(before[worst].norm())},
  }


def prepare_torch_sides(args, *, make_trainer, host_inputs, device,
                        batch: int, step_kwargs=None) -> dict:
  """The torch sides of a run, one per mode of ``args.torch_compile``.

  For each mode and each candidate memory format (both with
  ``--torch-memory-format auto``): builds the trainer
  (``make_trainer(mode, memory_format)``), moves the views to the device in
  that format, checks a compiled trainer's first steps against an eager
  one's (:func:`compare_first_steps`; compilation happens there), warms it
  up and, with two candidates, times ``args.steps`` steps of each and keeps
  the faster format.

  Returns:
    mode -> dict: ``trainer``, ``inputs``, ``memory_format``, ``probe``
    (images/s per format), ``compiled_check`` (per format),
    ``warmup_seconds_incl_compile`` (per format).
  """
  formats = {"channels_last": torch.channels_last,
             "contiguous": torch.contiguous_format}
  candidates = (list(formats) if args.torch_memory_format == "auto"
                else [args.torch_memory_format])
  sides = {}
  for mode in args.torch_compile:
    built, probe, checks, warm = {}, {}, {}, {}
    for name in candidates:
      fmt = formats[name]
      inputs = tuple(x.to(device).contiguous(memory_format=fmt)
                     for x in host_inputs)
      tr = make_trainer(mode, fmt)
      t0 = time.perf_counter()
      if mode != "none":
        check = compare_first_steps(make_trainer("none", fmt), tr, inputs,
                                    step_kwargs=step_kwargs)
        checks[name] = check
        print(f"  torch {TORCH_SIDE_NAMES[mode]} ({name}) vs eager, "
              f"{check['steps']} steps: losses max rel. diff "
              f"{check['loss_max_rel_diff']:.1e}, updates rel. diff "
              f"{check['update_rel_diff']:.1e} (largest of one tensor "
              f"{check['update_max_rel_diff']:.1e})", flush=True)
        loss_tol, update_tol, tensor_tol = compiled_tolerances(args)
        if (check["loss_max_rel_diff"] > loss_tol
            or check["update_rel_diff"] > update_tol
            or check["update_max_rel_diff"] > tensor_tol):
          print(f"  worst tensor: {check['update_worst_tensor']}")
          raise SystemExit(f"the compiled torch step ({mode}) does not match "
                           "the eager one")
      timed_torch(tr, *inputs, args.warmup)
      warm[name] = time.perf_counter() - t0
      print(f"  torch {TORCH_SIDE_NAMES[mode]} {name} ready "
            f"({warm[name]:.1f} s incl. compile)", flush=True)
      if len(candidates) > 1:
        probe[name] = args.steps * batch / timed_torch(tr, *inputs,
                                                       args.steps)
      built[name] = (tr, inputs)
    fmt = max(probe, key=probe.get) if probe else candidates[0]
    if probe:
      print(f"  {TORCH_SIDE_NAMES[mode]} memory-format probe (images/s): " +
            ", ".join(f"{k} {v:.1f}" for k, v in probe.items()) +
            f" -> {fmt}")
    sides[mode] = {"trainer": built[fmt][0], "inputs": built[fmt][1],
                   "memory_format": fmt, "probe": probe,
                   "compiled_check": checks,
                   "warmup_seconds_incl_compile": warm}
    del built
  return sides


def torch_sides_record(torch_sides: dict, args) -> dict:
  """The JSON description of :func:`prepare_torch_sides`' sides."""
  return {TORCH_SIDE_NAMES[mode]: {
      "compile": mode,
      "backend": args.torch_compile_backend if mode != "none" else None,
      "step_capture": step_capture() if mode == "step" else None,
      "memory_format": side["memory_format"],
      "memory_format_probe_images_per_s": side["probe"],
      "compiled_vs_eager": side["compiled_check"],
      "warmup_seconds_incl_compile": side["warmup_seconds_incl_compile"],
  } for mode, side in torch_sides.items()}


def compare_sides(args, sides: dict, *, batch: int, header: str,
                  views: str, torch_desc: dict):
  """Times ``sides`` (name -> callable, see ``_compare``) in interleaved
  rounds and summarizes them: the median images/s of each side, and the
  ratio of ``jax_model`` to every torch side (per-round ratios, their median
  and bootstrap interval). Prints a table and returns ``(rounds, medians,
  summaries)``."""
  print(f"\n{header}")
  rounds = cmp.interleaved_rounds(
      sides, rounds=args.rounds, steps_per_round=args.steps, warmup=0,
      order=args.order)
  med = {k: statistics.median(args.steps * batch / t for t in v)
         for k, v in rounds.times.items()}
  summaries = {
      f"jax_model_vs_{name}": cmp.ratio_summary(
          rounds.times["jax_model"], rounds.times[name],
          confidence=args.confidence, n_boot=args.n_boot)
      for name in sides if name.startswith("torch_")}
  print(f"\nmedian images/s (source images; {views})")
  print(f"  ssljax (JAX)  train step, pre-augmented float views : "
        f"{med['jax_model']:9.1f}")
  for name in sides:
    if name.startswith("torch_"):
      print(f"  PyTorch       train step, pre-augmented float views : "
            f"{med[name]:9.1f}   ({name}: {torch_desc[name]})")
  if "jax_full" in med:
    print(f"  ssljax full train_step (uint8 in, augmentation incl.): "
          f"{med['jax_full']:9.1f}")
  print("ratio = torch seconds / JAX seconds of the same round (> 1: JAX "
        "faster)")
  for key, summary in summaries.items():
    print("  " + cmp.format_summary(summary, "jax_model",
                                    key.split("_vs_", 1)[1]))
  return rounds, med, summaries


#: Dense peak TFLOP/s by accelerator (vendor data sheets), for model FLOP
#: utilization. float32 convolutions and matmuls run as TF32 on NVIDIA GPUs
#: under XLA's default precision, so "float32" uses the TF32 peak there.
PEAK_TFLOPS = {
    "H200": {"float32": 494.7, "bfloat16": 989.4},
    "H100": {"float32": 494.7, "bfloat16": 989.4},
    "A100": {"float32": 156.0, "bfloat16": 312.0},
}


def step_flops(compiled) -> float | None:
  """FLOPs of one call of a compiled JAX step (XLA's cost analysis)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops else None


def flop_utilization(flops_per_step, steps_per_s, dtype: str = "float32",
                     peak_tflops: float | None = None) -> dict:
  """Achieved TFLOP/s and model FLOP utilization (MFU) of the default device
  (MFU only where its peak is known or ``peak_tflops`` is given)."""
  out = {"flops_per_step": flops_per_step, "device_kind": jax.devices()[0].device_kind}
  if not flops_per_step:
    return out
  out["achieved_tflops"] = flops_per_step * steps_per_s / 1e12
  if peak_tflops is None:
    kind = out["device_kind"]
    peak_tflops = next((v[dtype] for k, v in PEAK_TFLOPS.items() if k in kind), None)
  if peak_tflops:
    out["peak_tflops"] = peak_tflops
    out["mfu"] = out["achieved_tflops"] / peak_tflops
  return out


def print_flops(util: dict) -> None:
  if "achieved_tflops" in util:
    mfu = f", MFU {100 * util['mfu']:.1f}% of {util['peak_tflops']} TFLOP/s" \
        if "mfu" in util else ""
    print(f"  ssljax train step: {util['flops_per_step'] / 1e9:.1f} GFLOP/step "
          f"(XLA cost analysis), {util['achieved_tflops'] * 1e3:.1f} GFLOP/s "
          f"achieved{mfu}")


def parse_args(argv=None, *, description=None, default_out=DEFAULT_OUT,
               quick_out=QUICK_OUT, dry_run_out=DRY_RUN_OUT,
               dry_run_batch: int = 8, add_arguments=None):
  """The command line; the keyword arguments let sibling benchmarks
  (moco_throughput.py) reuse it with their own description, outputs, dry-run
  batch and extra options (``add_arguments(parser)``)."""
  p = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
  p.add_argument("--batch-size", type=int, default=None,
                 help="source images per step (default: the config's, 256)")
  cmp.add_arguments(p, rounds=cmp.MIN_ROUNDS)
  p.add_argument("--steps", type=int, default=5, help="timed steps per round")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps per side before the rounds (compile etc.)")
  p.add_argument("--quick", action="store_true",
                 help="smoke test: batch 16, 1 round, 2 steps, 1 warm-up step "
                      "(times even on a busy machine, flagged)")
  p.add_argument("--dry_run", "--dry-run", action="store_true",
                 help="check every code path, no timing to read: a tiny "
                      "model and batch, every torch mode (eager, compiled "
                      "model, compiled step) in both memory formats, 1 round "
                      "of 1 step, 1 torch thread; never refused for load")
  p.add_argument("--torch-memory-format", default="auto",
                 choices=("auto", "channels_last", "contiguous"),
                 help="auto: time both after warm-up, keep the faster")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch.set_num_threads (default: torch's own choice; "
                      "1 with --dry_run)")
  p.add_argument("--torch-device", default="cpu", choices=("cpu", "cuda"),
                 help="where the torch step runs (JAX uses its default "
                      "backend); the equivalence checks always run on CPU")
  p.add_argument("--torch-compile", nargs="?", const="step", default="none",
                 metavar="MODES",
                 help="the torch sides, comma-separated: none (eager), "
                      "model (torch.compile of the model only), step "
                      "(torch.compile of the whole train step); the flag "
                      "alone means step; e.g. --torch-compile none,step "
                      "times both against JAX in the same rounds")
  p.add_argument("--torch-compile-backend", default="inductor",
                 help="torch.compile's backend (default inductor; aot_eager "
                      "traces without generating code, for quick checks)")
  p.add_argument("--out", type=Path, default=None,
                 help=f"JSON output (default {default_out.relative_to(REPO)}; "
                      f"{quick_out.relative_to(REPO)} with --quick, "
                      f"{dry_run_out} with --dry_run)")
  p.add_argument("--peak-tflops", type=float, default=None,
                 help="the device's peak TFLOP/s for the MFU figure "
                      "(default: known GPUs' data-sheet values)")
  p.add_argument("--compute-dtype", choices=("float32", "bfloat16"),
                 default="float32",
                 help="the timed steps' compute dtype: ssljax's "
                      "config.compute_dtype, and on the torch side AMP "
                      "(torch.autocast bf16 around the forward, the loss in "
                      "float32); the equivalence checks stay float32")
  p.add_argument("--conv-impl", choices=("config", "auto", "xla", "matmul", "cpu", "onednn"),
                 default="config",
                 help="the JAX encoder's convolution gradients "
                      "(encoder.conv_impl; default: what the config says)")
  if add_arguments is not None:
    add_arguments(p)
  args = p.parse_args(argv)
  if args.dry_run:
    args.batch_size = args.batch_size or dry_run_batch
    args.rounds, args.steps, args.warmup = 1, 1, 1
    args.torch_compile = ",".join(TORCH_COMPILE_MODES)
    args.torch_threads = args.torch_threads or 1
  elif args.quick:
    args.batch_size = args.batch_size or 16
    args.rounds, args.steps, args.warmup = 1, 2, 1
  modes = [m.strip() for m in args.torch_compile.split(",") if m.strip()]
  bad = [m for m in modes if m not in TORCH_COMPILE_MODES]
  if bad or not modes or len(set(modes)) != len(modes):
    p.error(f"--torch-compile takes distinct modes from {TORCH_COMPILE_MODES}; "
            f"got {args.torch_compile!r}")
  args.torch_compile = modes
  if args.out is None:
    args.out = (dry_run_out if args.dry_run else
                quick_out if args.quick else default_out)
  return args


def shrink_config(config) -> None:
  """The dry run's tiny model: widths 8-16-32, head 32 -> 16."""
  config.encoder.widths = (8, 16, 32)
  if config.encoder.get("out_width", 0):
    config.encoder.out_width = 32
  config.head.hidden_dim = 32
  config.head.out_dim = 16


def prepare(args, config):
  """Applies the shared options (torch threads and device, TF32 on CUDA as
  XLA uses, ``--conv-impl``, ``--batch-size``, the dry run's tiny model) to
  torch and ``config``; returns the torch device."""
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  device = torch.device(args.torch_device)
  if device.type == "cuda":
    # XLA's default float32 precision on GPU lets convs and matmuls use TF32;
    # allow the same in torch so the two sides do the same arithmetic.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
  if args.conv_impl != "config":
    config.encoder.conv_impl = args.conv_impl
  if args.compute_dtype != "float32":
    config.compute_dtype = args.compute_dtype
  if args.batch_size:
    config.batch_size = args.batch_size
  if args.dry_run:
    shrink_config(config)
  return device


def check_load(args) -> dict:
  """``_compare.check_load`` with the command line's threshold; the smoke
  test and the dry run are never refused (but flagged)."""
  return cmp.check_load(args.max_load,
                        args.allow_load or args.quick or args.dry_run)


def announce_machine() -> dict:
  """Prints the machine; returns :func:`machine_info`."""
  info = machine_info()
  print(f"CPU: {info['cpu_model']} | {info['logical_cores']} logical cores "
        f"({info['cores_available_to_process']} available) | jax {info['jax']} "
        f"| torch {info['torch']} ({info['torch_num_threads']} threads)")
  return info


#: How each torch mode runs, in words.
TORCH_MODE_WORDS = {"none": "eager", "model": "torch.compile of the model",
                    "step": "torch.compile of the whole step"}


def torch_descriptions(torch_sides: dict) -> dict:
  """Side name -> a short description (memory format, threads, mode)."""
  return {TORCH_SIDE_NAMES[mode]: (
      f"{side['memory_format']}, {torch.get_num_threads()} threads, "
      f"{TORCH_MODE_WORDS[mode]}") for mode, side in torch_sides.items()}


def main(argv=None):
  args = parse_args(argv)
  load = check_load(args)
  config = load_config()
  device = prepare(args, config)
  batch = int(config.batch_size)
  if batch < 2:
    raise SystemExit("--batch-size must be >= 2 (NT-Xent needs negatives)")
  info = announce_machine()

  # ---------------- JAX (the library) ----------------
  method, total = ssljax.train.build.build_method(config, NUM_EXAMPLES)
  key = jax.random.key(0)
  state = method.init(key, IMAGE_SHAPE)
  state_full = method.init(key, IMAGE_SHAPE)     # separate buffers (donation)
  jax_sizes = param_sizes_jax(state.params)
  jax_count = sum(jax_sizes)

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(batch, *IMAGE_SHAPE), dtype=np.uint8)
  images_j = jnp.asarray(images)
  data_key = jax.random.key(1)
  v1_j, v2_j = jax.jit(method.views)(images_j, jax.random.key(2))
  v1_np, v2_np = np.asarray(v1_j), np.asarray(v2_j)

  def model_step(state, v1, v2):
    (loss, (batch_stats, _)), grads = jax.value_and_grad(
        method.loss, has_aux=True)(state.params, state.batch_stats, v1, v2)
    updates, opt_state = method.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state), loss

  jax_model_step = jax.jit(model_step, donate_argnums=0)
  jax_full_step = jax.jit(method.train_step, donate_argnums=0)

  # Learning rates per step (the same schedule for torch).
  n_lr = 4 * args.warmup + 2 * args.steps + args.rounds * args.steps + 8
  lrs = np.asarray(jax.vmap(method.schedule)(jnp.arange(n_lr)), np.float64)
  peak_lr = ssljax.train.optim.scale_learning_rate(
      config.optimizer.base_lr, batch, config.optimizer.lr_scaling)

  # ---------------- equivalence checks ----------------
  torch.manual_seed(0)
  t_model = TorchSimCLRModel(config, IMAGE_SHAPE[2])
  torch_sizes = param_sizes_torch(t_model)
  torch_count = sum(torch_sizes)
  print(f"parameters: ssljax {jax_count:,} | torch {torch_count:,}")
  assert jax_count == torch_count, (jax_count, torch_count)
  assert jax_sizes == torch_sizes, "per-tensor parameter sizes differ"

  to_nchw = lambda a: torch.from_numpy(np.array(a.transpose(0, 3, 1, 2), copy=True))
  v1_t, v2_t = to_nchw(v1_np), to_nchw(v2_np)
  temperature = float(config.temperature)

  exact = jax.default_matmul_precision("highest")   # no TF32 in the checks
  # Jitted: op by op, the gradient would compile every operation on its own.
  check_method = (method if config.get("compute_dtype", "float32") ==
                  "float32" else ssljax.train.build.build_method(
                      float32_twin(config), NUM_EXAMPLES)[0])
  loss_and_grad = jax.jit(jax.value_and_grad(check_method.loss,
                                             has_aux=True))
  with exact:
    (jax_loss0, _), _ = loss_and_grad(state.params, state.batch_stats, v1_j,
                                      v2_j)
    jax_loss0 = float(jax_loss0)
  with torch.no_grad():
    z = t_model.train()(torch.cat([v1_t, v2_t]))
    torch_loss0 = float(torch_nt_xent(z[:batch], z[batch:], temperature))
  # BN running stats were updated by that forward; re-create the model.
  torch.manual_seed(0)
  t_model = TorchSimCLRModel(config, IMAGE_SHAPE[2])
  print(f"loss at init (own initialization): ssljax {jax_loss0:.5f} | "
        f"torch {torch_loss0:.5f}")

  # Same weights on both sides: loss and one LARS step (constant peak lr).
  check = TorchSimCLRModel(config, IMAGE_SHAPE[2]).train()
  load_flax_into_torch(check, state.params, state.batch_stats)
  opt = config.optimizer
  tx = make_optimizer("lars", peak_lr, weight_decay=opt.weight_decay,
                      momentum=opt.get("momentum", 0.9),
                      trust_coefficient=opt.get("trust_coefficient", 1e-3))
  with exact:
    (l_j, _), g_j = loss_and_grad(state.params, state.batch_stats, v1_j, v2_j)
  upd, _ = jax.jit(tx.update)(g_j, tx.init(state.params), state.params)
  before = [p.detach().clone() for p in check.parameters()]
  ctrainer = TorchTrainer(check, opt, temperature, np.array([peak_lr]),
                          torch.contiguous_format)
  l_t = float(ctrainer.step(v1_t, v2_t))
  t_upd = [(p.detach() - b).numpy() for p, b in zip(check.parameters(), before)]
  j_upd = flax_to_torch_order(check, upd)
  upd_err = list_max_rel_diff(t_upd, j_upd)
  loss_err = abs(float(l_j) - l_t) / abs(float(l_j))
  print(f"same weights: loss ssljax {float(l_j):.6f} | torch {l_t:.6f} "
        f"(rel. diff {loss_err:.1e}); one LARS step, max rel. diff of the "
        f"per-tensor updates {upd_err:.1e}")
  if loss_err > 1e-4 or upd_err > 1e-2:
    raise SystemExit("equivalence check failed: the torch model/optimizer "
                     "does not match ssljax")
  del check, ctrainer, before

  # ---------------- warm-up ----------------
  print(f"warm-up ({args.warmup} steps per side, compile excluded) ...", flush=True)
  t0 = time.perf_counter()
  for _ in range(args.warmup):
    state, _ = jax_model_step(state, v1_j, v2_j)
  jax.block_until_ready(state)
  jax_model_compile_s = time.perf_counter() - t0
  print(f"  jax model step ready ({jax_model_compile_s:.1f} s)", flush=True)
  t0 = time.perf_counter()
  for _ in range(args.warmup):
    state_full, _ = jax_full_step(state_full, images_j, data_key)
  jax.block_until_ready(state_full)
  jax_full_compile_s = time.perf_counter() - t0
  print(f"  jax full step ready ({jax_full_compile_s:.1f} s)", flush=True)

  def make_trainer(mode, memory_format):
    m = TorchSimCLRModel(config, IMAGE_SHAPE[2])
    m.load_state_dict(t_model.state_dict())
    return TorchTrainer(m.to(device), opt, temperature, lrs, memory_format,
                        compile=mode, backend=args.torch_compile_backend,
                        amp=args.compute_dtype == "bfloat16")

  torch_sides = prepare_torch_sides(args, make_trainer=make_trainer,
                                    host_inputs=(v1_t, v2_t), device=device,
                                    batch=batch)
  for side in torch_sides.values():
    side["trainer"].count = args.warmup   # the JAX step's lr sequence

  # ---------------- timed rounds ----------------
  states = {"model": state, "full": state_full}
  sides = {"jax_model": jax_side(jax_model_step, states, "model",
                                 (v1_j, v2_j))}
  for mode, side in torch_sides.items():
    sides[TORCH_SIDE_NAMES[mode]] = torch_side(side["trainer"], side["inputs"])
  sides["jax_full"] = jax_side(jax_full_step, states, "full",
                               (images_j, data_key))
  rounds, med, summaries = compare_sides(
      args, sides, batch=batch, views="each gives 2 views",
      header=f"batch {batch} images (x2 views)",
      torch_desc=torch_descriptions(torch_sides))
  flops = flop_utilization(
      step_flops(jax_model_step.lower(states["model"], v1_j, v2_j).compile()),
      med["jax_model"] / batch, config.get("compute_dtype", "float32"),
      args.peak_tflops)
  print_flops(flops)
  cmp.finish_load(load)
  print(f"load average at end: {load['end'][0]:.2f}")

  record = cmp.results_record(
      benchmark="simclr_throughput", rounds=rounds, summaries=summaries,
      load=load, machine=info, argv=[Path(sys.argv[0]).name] + (
          sys.argv[1:] if argv is None else list(argv)),
      extra={
          "dry_run": bool(args.dry_run),
          "timed_region": (
              "model comparison (jax_model vs each torch side): the train "
              "step only -- forward of both views as one batch, NT-Xent, "
              "backward, LARS update -- on pre-augmented float32 views "
              "[B,28,28,1] (identical tensors for both frameworks); compile "
              "and warm-up excluded. jax_full: ssljax SimCLR.train_step on "
              "uint8 images, augmentation included."),
          "images_per_s_definition": "source images per second (2 views each)",
          "config": {
              "config_file": str(CONFIG_PATH.relative_to(REPO)),
              "batch_size": batch, "views_per_step": 2 * batch,
              "quick": args.quick,
              "encoder": config.encoder.to_dict(),
              "head": config.head.to_dict(),
              "temperature": temperature,
              "optimizer": config.optimizer.to_dict(),
              "peak_lr": peak_lr, "schedule_total_steps": total,
              "lr_first_timed_steps": lrs[args.warmup:args.warmup + 4].tolist(),
              "torch_compile": args.torch_compile,
              "torch_device": args.torch_device,
              "compute_dtype": args.compute_dtype,
              "torch_num_threads": torch.get_num_threads(),
          },
          "torch_sides": torch_sides_record(torch_sides, args),
          "equivalence": {
              "param_count_jax": jax_count, "param_count_torch": torch_count,
              "loss_at_init_jax": jax_loss0, "loss_at_init_torch": torch_loss0,
              "same_weights_loss_jax": float(l_j),
              "same_weights_loss_torch": l_t,
              "same_weights_loss_rel_diff": loss_err,
              "same_weights_lars_update_max_rel_diff": upd_err,
          },
          "warmup_seconds_incl_compile": {"jax_model": jax_model_compile_s,
                                          "jax_full": jax_full_compile_s},
          "median_images_per_s": med,
          "jax_model_step_flops": flops,
      })
  cmp.write_record(args.out, record)
  return record


if __name__ == "__main__":
  main()
