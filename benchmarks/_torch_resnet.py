"""PyTorch mirror of ssljax's SimCLR step with a standard ResNet encoder.

Used by ``gpu_session_step.py`` (imported only when torch is there; nothing
in ssljax imports torch). The pieces, each the torch twin of an ssljax one:

* :class:`TorchResNet`: ``ssljax.models.resnet.ResNet`` -- ``BasicBlock``
  (ResNet-18/34) or ``BottleneckBlock`` (ResNet-50, stride on the 3x3: v1.5),
  the ``"cifar"`` stem (3x3 conv, stride 1, no max-pool) or the
  ``"imagenet"`` one (7x7 conv stride 2 + 3x3 max-pool stride 2), the last
  BN scale of every block initialized to 0, a 1x1 conv + BN projection
  shortcut where the shape changes, mean pooling;
* :class:`TorchProjectionMLP`: ``ProjectionMLP`` (Linear without bias - BN -
  ReLU, ..., Linear with bias);
* :func:`nt_xent`: ``ssljax.losses.nt_xent`` (2N x 2N cosine similarities / T,
  diagonal masked, cross-entropy to the other view), in float32, with its
  mask and positive indices made once on the device (:func:`nt_xent_targets`);
* :class:`ForeachSGD`: SGD with momentum, weight decay on the weights only
  (ndim > 1; not on biases and BN parameters) -- what ssljax's
  ``make_optimizer("sgd")`` does (``add_decayed_weights`` with the weight
  mask, then ``optax.sgd`` with momentum: the same arithmetic) with the
  kernels of ``torch.optim.SGD(foreach=True)``;
* :class:`TorchSimCLRTrainer`: one step -- forward of both views as one
  batch (so BN statistics span all 2N views), NT-Xent, backward, SGD -- in
  float32 or under ``torch.autocast(bfloat16)`` (AMP: convolutions and
  matmuls in bf16, parameters, optimizer state, BN statistics, the loss and
  its logits in float32, as ssljax's ``compute_dtype="bfloat16"``), eager or
  ``torch.compile`` of the WHOLE step (:func:`compile_step`). No step reads
  a value back to the host or copies one from it: the learning rate is a
  constant, the loss's index tensors live on the device.

:func:`torch_state_from_flax` maps ssljax variables onto the torch state dict
(so both sides start from the same weights and the loss checks can compare
them).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F


def _bn2d(c):
  # Flax momentum 0.9 (decay of the running average) == torch momentum 0.1.
  return tnn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


def _conv(cin, cout, k, stride=1):
  return tnn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)


class BasicBlock(tnn.Module):
  """3x3 conv-BN-ReLU, 3x3 conv-BN (scale 0); 1x1 conv + BN shortcut when the
  shape changes. Named as ssljax's block, so that its variables map by name."""
  expansion = 1

  def __init__(self, cin: int, filters: int, stride: int):
    super().__init__()
    self.convs = tnn.ModuleList([_conv(cin, filters, 3, stride),
                                 _conv(filters, filters, 3)])
    self.bns = tnn.ModuleList([_bn2d(filters), _bn2d(filters)])
    tnn.init.zeros_(self.bns[-1].weight)
    self.proj = stride != 1 or cin != filters
    if self.proj:
      self.proj_conv = _conv(cin, filters, 1, stride)
      self.proj_bn = _bn2d(filters)

  def forward(self, x):
    y = F.relu(self.bns[0](self.convs[0](x)))
    y = self.bns[1](self.convs[1](y))
    r = self.proj_bn(self.proj_conv(x)) if self.proj else x
    return F.relu(r + y)


class BottleneckBlock(tnn.Module):
  """1x1 - 3x3 (stride) - 1x1 (4x wide), the last BN's scale 0 (ResNet v1.5)."""
  expansion = 4

  def __init__(self, cin: int, filters: int, stride: int):
    super().__init__()
    out = 4 * filters
    self.convs = tnn.ModuleList([_conv(cin, filters, 1),
                                 _conv(filters, filters, 3, stride),
                                 _conv(filters, out, 1)])
    self.bns = tnn.ModuleList([_bn2d(filters), _bn2d(filters), _bn2d(out)])
    tnn.init.zeros_(self.bns[-1].weight)
    self.proj = stride != 1 or cin != out
    if self.proj:
      self.proj_conv = _conv(cin, out, 1, stride)
      self.proj_bn = _bn2d(out)

  def forward(self, x):
    y = F.relu(self.bns[0](self.convs[0](x)))
    y = F.relu(self.bns[1](self.convs[1](y)))
    y = self.bns[2](self.convs[2](y))
    r = self.proj_bn(self.proj_conv(x)) if self.proj else x
    return F.relu(r + y)


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class TorchResNet(tnn.Module):
  """``ssljax.models.ResNet`` (no ``out_width``): pooled features [B, F]."""

  def __init__(self, stage_sizes, block: str, widths=None, stem: str = "cifar",
               stem_width=None, first_stage_stride: int = 1, in_ch: int = 3):
    super().__init__()
    widths = list(widths or [64 * 2**i for i in range(len(stage_sizes))])
    cls = BLOCKS[block]
    stem_width = stem_width or widths[0]
    if stem == "cifar":
      self.stem_conv = _conv(in_ch, stem_width, 3)
      self.pool = None
    elif stem == "imagenet":
      self.stem_conv = _conv(in_ch, stem_width, 7, 2)
      self.pool = tnn.MaxPool2d(3, 2, padding=1)
    else:
      raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {stem!r}")
    self.stem_bn = _bn2d(stem_width)
    blocks, cin = [], stem_width
    for i, (n, w) in enumerate(zip(stage_sizes, widths)):
      for j in range(n):
        stride = (first_stage_stride if i == 0 else 2) if j == 0 else 1
        blocks.append(cls(cin, w, stride))
        cin = w * cls.expansion
    self.blocks = tnn.Sequential(*blocks)
    self.features = cin

  def forward(self, x):
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    if self.pool is not None:
      x = self.pool(x)
    return self.blocks(x).mean(dim=(2, 3))


class TorchProjectionMLP(tnn.Module):
  """``ProjectionMLP(use_bn=True, final_bn=False)``: ``num_layers - 1`` times
  Linear (no bias) - BN - ReLU, then Linear (with bias)."""

  def __init__(self, features: int, hidden: int, out_dim: int,
               num_layers: int = 2):
    super().__init__()
    dims = [features] + [hidden] * (num_layers - 1)
    self.hidden = tnn.ModuleList([tnn.Linear(a, b, bias=False)
                                  for a, b in zip(dims[:-1], dims[1:])])
    self.bns = tnn.ModuleList([tnn.BatchNorm1d(hidden, eps=1e-5, momentum=0.1)
                               for _ in self.hidden])
    self.out = tnn.Linear(dims[-1], out_dim, bias=True)

  def forward(self, h):
    for fc, bn in zip(self.hidden, self.bns):
      h = F.relu(bn(fc(h)))
    return self.out(h)


class TorchSimCLRModel(tnn.Module):
  """Encoder + head; returns the projections z [2N, D]."""

  def __init__(self, encoder: TorchResNet, head: TorchProjectionMLP):
    super().__init__()
    self.encoder, self.head = encoder, head

  def forward(self, x):
    return self.head(self.encoder(x))


def build_model(*, stage_sizes, block: str, widths=None, stem="cifar",
                stem_width=None, first_stage_stride=1, in_ch=3, out_dim=128,
                hidden_dim=0, num_layers=2) -> TorchSimCLRModel:
  """The mirror of ssljax's ``EncoderWithHead(ResNet(...), ProjectionMLP(...))``
  (``hidden_dim`` 0: the encoder width)."""
  enc = TorchResNet(stage_sizes, block, widths, stem, stem_width,
                    first_stage_stride, in_ch)
  head = TorchProjectionMLP(enc.features, hidden_dim or enc.features, out_dim,
                            num_layers)
  return TorchSimCLRModel(enc, head)


# --------------------------------------------------------------------------
# ssljax variables -> torch state dict
# --------------------------------------------------------------------------

def torch_state_from_flax(model: TorchSimCLRModel, params, batch_stats
                          ) -> dict[str, np.ndarray]:
  """The torch state dict (``model.state_dict()`` names, torch layouts:
  conv OIHW, linear [out, in]) of ssljax ``EncoderWithHead`` variables.

  Blocks map by position and class name (``BasicBlock_3``), their
  convolutions and BNs by order (``Conv_0``, ``BatchNorm_0``, ...). Keys
  of the torch state dict without an ssljax twin (``num_batches_tracked``)
  are left out.
  """
  out: dict[str, np.ndarray] = {}

  def conv(name, p):
    out[name + ".weight"] = np.asarray(p["kernel"], np.float32).transpose(
        3, 2, 0, 1)

  def bn(name, p, s):
    out[name + ".weight"] = np.asarray(p["scale"], np.float32)
    out[name + ".bias"] = np.asarray(p["bias"], np.float32)
    out[name + ".running_mean"] = np.asarray(s["mean"], np.float32)
    out[name + ".running_var"] = np.asarray(s["var"], np.float32)

  ep, es = params["encoder"], batch_stats["encoder"]
  conv("encoder.stem_conv", ep["stem_conv"])
  bn("encoder.stem_bn", ep["stem_bn"], es["stem_bn"])
  for i, blk in enumerate(model.encoder.blocks):
    name = f"{type(blk).__name__}_{i}"
    p, s, t = ep[name], es[name], f"encoder.blocks.{i}"
    for j in range(len(blk.convs)):
      conv(f"{t}.convs.{j}", p[f"Conv_{j}"])
      bn(f"{t}.bns.{j}", p[f"BatchNorm_{j}"], s[f"BatchNorm_{j}"])
    if blk.proj:
      conv(f"{t}.proj_conv", p["proj_conv"])
      bn(f"{t}.proj_bn", p["proj_bn"], s["proj_bn"])
  hp, hs = params["head"], batch_stats["head"]
  for j in range(len(model.head.hidden)):
    out[f"head.hidden.{j}.weight"] = np.asarray(
        hp[f"Dense_{j}"]["kernel"], np.float32).T
    bn(f"head.bns.{j}", hp[f"BatchNorm_{j}"], hs[f"BatchNorm_{j}"])
  last = f"Dense_{len(model.head.hidden)}"
  out["head.out.weight"] = np.asarray(hp[last]["kernel"], np.float32).T
  out["head.out.bias"] = np.asarray(hp[last]["bias"], np.float32)
  return out


def load_flax(model: TorchSimCLRModel, params, batch_stats) -> None:
  """Copies ssljax variables into ``model`` (every parameter and BN buffer;
  a missing or misshapen one raises)."""
  state = torch_state_from_flax(model, params, batch_stats)
  own = model.state_dict()
  missing = [k for k in own if k not in state
             and not k.endswith("num_batches_tracked")]
  extra = [k for k in state if k not in own]
  if missing or extra:
    raise ValueError(f"torch/ssljax variables differ: missing {missing[:5]}, "
                     f"unexpected {extra[:5]}")
  with torch.no_grad():
    for k, v in state.items():
      if tuple(own[k].shape) != v.shape:
        raise ValueError(f"{k}: torch {tuple(own[k].shape)} vs ssljax "
                         f"{v.shape}")
      own[k].copy_(torch.from_numpy(np.array(v, np.float32)))


# --------------------------------------------------------------------------
# Loss, optimizer, step
# --------------------------------------------------------------------------

def nt_xent_targets(n: int, device) -> tuple:
  """The diagonal mask ``[2N, 2N]`` and each anchor's positive ``[2N]``, made
  once on ``device`` (an index made on the host every step is a host-to-
  device copy, a sync, on an accelerator)."""
  eye = torch.eye(2 * n, dtype=torch.bool, device=device)
  positive = (torch.arange(2 * n, device=device) + n) % (2 * n)
  return eye, positive


def nt_xent(z1, z2, temperature: float, targets):
  """``ssljax.losses.nt_xent`` in float32 (``targets``:
  :func:`nt_xent_targets`)."""
  eye, positive = targets
  z = torch.cat([z1, z2], 0).float()
  # l2_normalize: x * rsqrt(max(|x|^2, 1e-12))
  z = z * torch.rsqrt(torch.clamp((z * z).sum(1, keepdim=True), min=1e-12))
  logits = ((z @ z.T) / temperature).masked_fill(eye, float("-inf"))
  return F.cross_entropy(logits, positive)


class ForeachSGD:
  """SGD with momentum, weight decay on tensors with ndim > 1 only (ssljax's
  ``weight_decay_mask``): ``g += wd * w`` (weights), ``m = momentum * m + g``,
  ``w -= lr * m`` -- the arithmetic and the ``torch._foreach_*`` kernels of
  ``torch.optim.SGD(foreach=True)`` (whose first step sets ``m = g``, which
  ``0.9 * 0 + g`` is too).

  Not ``torch.optim.SGD`` itself: inside a step compiled with dynamo's
  ``trace_autograd_ops`` (:func:`compile_step`, torch 2.13) it saw no
  gradients and left every parameter unchanged -- found by the session's
  first-update check. This class reads ``p.grad`` directly, which dynamo
  traces either way.
  """

  def __init__(self, params, lr: float, momentum: float,
               weight_decay: float):
    params = [p for p in params if p.requires_grad]
    self.decay = [p for p in params if p.ndim > 1]
    self.plain = [p for p in params if p.ndim <= 1]
    self.params = self.decay + self.plain
    self.bufs = [torch.zeros_like(p) for p in self.params]
    self.lr, self.momentum = float(lr), float(momentum)
    self.weight_decay = float(weight_decay)

  def zero_grad(self):
    for p in self.params:
      p.grad = None

  @torch.no_grad()
  def step(self):
    grads = [p.grad for p in self.decay]
    if self.weight_decay:
      grads = list(torch._foreach_add(grads, self.decay,
                                      alpha=self.weight_decay))
    grads += [p.grad for p in self.plain]
    torch._foreach_mul_(self.bufs, self.momentum)
    torch._foreach_add_(self.bufs, grads)
    torch._foreach_add_(self.params, self.bufs, alpha=-self.lr)


def compile_step(fn, backend: str = "inductor"):
  """``torch.compile`` of a whole train step. Where dynamo has
  ``trace_autograd_ops`` it is switched on for the step's calls, so that
  ``loss.backward()`` is traced into the same graph as the forward and the
  optimizer update; elsewhere dynamo breaks the graph at ``loss.backward()``
  (the backward is then AOTAutograd's compiled one and the update a second
  compiled graph). :func:`step_capture` says which."""
  compiled = torch.compile(fn, backend=backend)
  config = torch._dynamo.config  # pylint: disable=protected-access
  if not hasattr(config, "trace_autograd_ops"):
    return compiled

  def step(*args):
    with config.patch(trace_autograd_ops=True):
      return compiled(*args)
  return step


def step_capture() -> str:
  config = torch._dynamo.config  # pylint: disable=protected-access
  return ("one graph (dynamo trace_autograd_ops)"
          if hasattr(config, "trace_autograd_ops")
          else "graph break at loss.backward()")


class TorchSimCLRTrainer:
  """One SimCLR step on pre-made views (NCHW float32, ``memory_format``).

  Args:
    model: a :class:`TorchSimCLRModel` on the step's device.
    temperature: NT-Xent's T.
    lr, momentum, weight_decay: the SGD (:class:`ForeachSGD`).
    amp: run the forward under ``torch.autocast(dtype=torch.bfloat16)``;
      the loss outside it, in float32.
    compile: ``False`` (eager) or ``True`` (:func:`compile_step` of the whole
      step).
    backend: ``torch.compile``'s backend.
    memory_format: of the weights (the views should match).
  """

  def __init__(self, model, *, temperature: float, lr: float, momentum: float,
               weight_decay: float, amp: bool = False, compile: bool = False,  # pylint: disable=redefined-builtin
               backend: str = "inductor",
               memory_format=torch.channels_last):
    self.model = model.to(memory_format=memory_format).train()
    self.device = next(model.parameters()).device
    self.temperature = float(temperature)
    self.amp = bool(amp)
    self.opt = ForeachSGD(self.model.parameters(), lr, momentum,
                          weight_decay)
    self._targets = None
    self._fn = compile_step(self._step, backend) if compile else self._step

  def _autocast(self):
    if not self.amp:
      return contextlib.nullcontext()
    return torch.autocast(self.device.type, dtype=torch.bfloat16)

  def _step(self, v1, v2, eye, positive):
    n = v1.shape[0]
    with self._autocast():
      z = self.model(torch.cat([v1, v2], 0))
    loss = nt_xent(z[:n], z[n:], self.temperature, (eye, positive))
    self.opt.zero_grad()
    loss.backward()
    self.opt.step()
    return loss.detach()

  def step(self, v1, v2):
    """One step; returns the loss as a 0-d device tensor (no sync)."""
    if self._targets is None or self._targets[1].shape[0] != 2 * v1.shape[0]:
      self._targets = nt_xent_targets(v1.shape[0], v1.device)
    return self._fn(v1, v2, *self._targets)
