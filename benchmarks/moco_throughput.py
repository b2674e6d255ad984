"""MoCo v2 train-step throughput: ssljax (JAX) vs. an equivalent PyTorch step.

Launch (on an otherwise idle machine)::

    python benchmarks/moco_throughput.py
    python benchmarks/moco_throughput.py --torch-compile none,step  # + compiled
    python benchmarks/moco_throughput.py --dry_run  # every code path, no timing
    python benchmarks/moco_throughput.py --quick --out /tmp/quick.json  # smoke test

The MoCo sibling of ``simclr_throughput.py``, whose command line, torch
ResNet / projection head, weight copying, LARS, timing helpers and machine
record it reuses (imported from that file, not copied).

What is compared. The model is the Fashion-MNIST MoCo v2 configuration of
``experiments/configs/moco_v2_fashion_mnist.py``: its ``SmallResNet`` (widths
and strides read from the config) + the 2-layer MLP head without BatchNorm
(Linear-ReLU-Linear), a momentum key encoder (m from the config, 0.99), a
queue of K = 4096 negative keys of dimension 128, InfoNCE with T = 0.2
(logits ``[N, 1 + K]``, positive at index 0, cross-entropy against label 0;
one direction, as ssljax -- no symmetrized loss), split BatchNorm of the key
encoder over ``bn_splits`` = 8 sub-batches of the shuffled keys (the
one-device Shuffle BN of the MoCo CIFAR recipe), and the config's optimizer
(LARS with the config's warm-up + cosine schedule; ``--optimizer sgd`` switches
both sides to MoCo's SGD as described in the config) at the config's batch size
(256 source images = 256 query + 256 key views a step).

* JAX side: the library itself (``ssljax.train.build.build_method``). The
  model step is composed from ``MoCo``'s public pieces in the order of
  ``MoCo.train_step`` (``momentum_at`` + ``ema_update``, ``MoCo.keys``,
  ``MoCo.loss``, ``tx.update``, ``enqueue``) minus the augmentation and the
  monitoring metrics; the script checks that it reproduces ``train_step``.
* PyTorch side: written in this file (channels_last or contiguous,
  whichever is faster; eager, or ``torch.compile`` of the two forwards, or of
  the whole step, ``--torch-compile``): query model + deep-copied key model
  whose BatchNorm2d layers are split BN (the official MoCo CIFAR demo's
  ``SplitBatchNorm``: sub-batch j holds rows j, G+j, ...; without a copy in
  either memory format, see ``_SplitBN``), EMA with ``torch._foreach``, the
  queue as a ``[K, D]`` tensor written batch-slot by batch-slot with
  ``index_copy_`` at a pointer kept on the device.

Timed region. For the side-by-side comparison ONLY the train step is timed
(momentum update, shuffled key forward without gradient, query forward,
InfoNCE against the queue, backward, optimizer update, enqueue) on views that
were augmented beforehand, as float32 ``[B, 28, 28, 1]``; the very same view
tensors feed both frameworks (a new key shuffle each step on the torch side;
on the JAX side the permutation is computed in the step from a fixed key).
Separately, the full ssljax step (``MoCo.train_step``: uint8 images in,
augmentation and metrics included) is timed too. "images/s" counts source
images (each yields a query and a key view). Compile time and warm-up steps
are excluded; JAX timings end with ``jax.block_until_ready``.

The measurements are interleaved in one process as in
``simclr_throughput.py`` (``_compare.py``: 10 rounds by default, the order
alternating; per torch side the median per-round ratio ``torch seconds / JAX
seconds``, > 1: JAX faster, with a 95% bootstrap interval; a busy machine
refused unless ``--allow_load``).

Before timing, equivalence is checked: equal parameter counts (and equal
per-tensor sizes); the JAX initial query weights, a key encoder with other
weights (the query's plus noise, so that the key path and the momentum update
are seen apart from the query encoder, which they equal at init), the queue,
the views and the key permutation, copied into torch, give the same loss, the
same keys enqueued and the same one-step optimizer update (at the constant
peak learning rate), and after a second step the same loss and the same
momentum updates of the key encoder. The composed JAX model step is also
checked against ``MoCo.train_step`` (same state after one step from the same
state), and the compiled JAX steps are checked not to copy the ``[K, D]``
queue. Each compiled torch step must match the eager one over three steps
with the same key shuffle.

Differences that remain (they enter neither the loss nor the update): the
BatchNorm running variance (query and key encoders) is updated with the
biased batch variance in flax and the unbiased one in torch; in the timed
model step JAX derives the key permutation in the step from a fixed key (the
full ``train_step`` folds in the step number) while torch draws a new one
with ``torch.randperm`` each step (outside the compiled step); the JAX model
step leaves out the monitoring metrics of ``train_step`` (pos_sim, neg_sim,
mi_bound), which torch does not compute either.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import _compare as cmp  # noqa: E402
import resnet_step_profile as rsp  # noqa: E402
import simclr_throughput as sct  # noqa: E402
import step_profile as sp  # noqa: E402
from moco_queue import queue_copies  # noqa: E402
import ssljax  # noqa: E402
import ssljax.train.build  # noqa: E402
from ssljax.methods.ema import ema_update  # noqa: E402
from ssljax.methods.moco import _zero_after, enqueue  # noqa: E402
from ssljax.models.conv import resolve_conv_impl  # noqa: E402
from ssljax.train.optim import make_optimizer  # noqa: E402

CONFIG_PATH = REPO / "experiments" / "configs" / "moco_v2_fashion_mnist.py"
NUM_EXAMPLES = sct.NUM_EXAMPLES
IMAGE_SHAPE = sct.IMAGE_SHAPE
DEFAULT_OUT = REPO / "benchmarks" / "results" / "moco_throughput.json"
QUICK_OUT = REPO / "benchmarks" / "results" / "moco_throughput_quick.json"
DRY_RUN_OUT = Path(tempfile.gettempdir()) / "moco_throughput_dry_run.json"
# MoCo's own SGD, as the config's comment spells it (--optimizer sgd).
MOCO_SGD = dict(name="sgd", base_lr=0.03, weight_decay=1e-4, warmup_epochs=0.0)


def load_config():
  return ssljax.train.build.load_config_file(str(CONFIG_PATH))


# --------------------------------------------------------------------------
# PyTorch MoCo: split-BN key encoder, EMA, queue, InfoNCE, LARS / SGD
# --------------------------------------------------------------------------

class _SplitBN:
  """BatchNorm over ``num_splits`` sub-batches in training mode (the official
  MoCo CIFAR demo's SplitBatchNorm): sub-batch j holds rows ``j, G+j, 2G+j,
  ...`` (strided groups, the demo's ``x.view(N/G, G*C, ...)``); the running
  statistics are updated per sub-batch and averaged, as ssljax averages the
  vmapped groups' statistics.

  On a contiguous (NCHW or ``[N, C]``) input this is the demo's code: the
  reshape to ``[N/G, G*C, H, W]`` is a view and ``F.batch_norm`` does the
  rest. On a channels_last input that reshape would copy the activations
  into NCHW at every layer (and hand NCHW to the next channels_last
  convolution); there the input is viewed as ``[N/G, G, C, H, W]`` instead
  (splitting the batch dimension is a view in any memory format), the
  statistics of each ``(group, channel)`` are reduced over the other
  dimensions, and the normalization is one fused multiply-add, so the output
  keeps the input's memory format and nothing is copied."""
  num_splits = 1

  def forward(self, x):
    g = self.num_splits
    if g == 1 or not self.training:
      return super().forward(x)
    n, c = x.shape[:2]
    if x.is_contiguous():
      rm, rv = self.running_mean.repeat(g), self.running_var.repeat(g)
      y = F.batch_norm(x.view(n // g, c * g, *x.shape[2:]), rm, rv,
                       self.weight.repeat(g), self.bias.repeat(g), True,
                       self.momentum, self.eps)
      with torch.no_grad():
        self.running_mean.copy_(rm.view(g, c).mean(0))
        self.running_var.copy_(rv.view(g, c).mean(0))
      return y.view(x.shape)
    xg = x.view(n // g, g, c, *x.shape[2:])
    dims = (0,) + tuple(range(3, xg.dim()))
    var, mean = torch.var_mean(xg, dim=dims, unbiased=False)     # [G, C]
    scale = self.weight * torch.rsqrt(var + self.eps)
    shift = self.bias - mean * scale
    bshape = (1, g, c) + (1,) * (x.dim() - 2)
    y = torch.addcmul(shift.view(bshape), xg, scale.view(bshape))
    with torch.no_grad():
      # F.batch_norm's update of each group's copy (unbiased variance), then
      # the mean over the groups; all copies start from the same statistics.
      count = xg.numel() // (g * c)
      m = self.momentum
      self.running_mean.mul_(1 - m).add_(mean.mean(0), alpha=m)
      self.running_var.mul_(1 - m).add_(
          var.mean(0) * (count / max(count - 1, 1)), alpha=m)
    return y.view(x.shape)


class TorchSplitBatchNorm2d(_SplitBN, tnn.BatchNorm2d):
  pass


class TorchSplitBatchNorm1d(_SplitBN, tnn.BatchNorm1d):
  pass


def split_bn_(model: tnn.Module, groups: int) -> tnn.Module:
  """Turn every BatchNorm of ``model`` into split BN over ``groups`` (in place;
  same parameters and buffers)."""
  for m in model.modules():
    if type(m) is tnn.BatchNorm2d:
      m.__class__ = TorchSplitBatchNorm2d
    elif type(m) is tnn.BatchNorm1d:
      m.__class__ = TorchSplitBatchNorm1d
    else:
      continue
    m.num_splits = groups
  return model


def l2_normalize(x):
  """ssljax.losses.l2_normalize: x * rsqrt(max(|x|^2, 1e-12))."""
  return x * torch.rsqrt(torch.clamp((x * x).sum(1, keepdim=True), min=1e-12))


def torch_info_nce(q, k, queue, temperature: float, labels=None):
  """ssljax.losses.info_nce with a shared [K, D] queue: logits [N, 1 + K]
  (cosine similarities / T, positive first), cross-entropy with label 0.

  ``labels``: the zeros ``[N]`` on the device (made here when not given: the
  checks; the trainer makes them once)."""
  q = l2_normalize(q)
  s_pos = (q * l2_normalize(k)).sum(1, keepdim=True)
  s_neg = q @ l2_normalize(queue).T
  logits = torch.cat([s_pos, s_neg], 1) / temperature
  if labels is None:
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
  return F.cross_entropy(logits, labels)


class TorchSGD:
  """ssljax's "sgd": add_decayed_weights(wd, mask) then optax.sgd(momentum):
  g <- g + wd * w for weights (ndim > 1); m <- g + momentum * m;
  w <- w - lr * m (torch.optim.SGD's update with weight decay on the weights
  only, written with ``torch._foreach`` ops like :class:`TorchLARS` so that
  ``lr`` can be a 0-d device tensor)."""

  def __init__(self, params, weight_decay: float, momentum: float):
    params = [p for p in params if p.requires_grad]
    self.decay = [p for p in params if p.ndim > 1]
    self.params = self.decay + [p for p in params if p.ndim <= 1]
    self.bufs = [torch.zeros_like(p) for p in self.params]
    self.wd = float(weight_decay)
    self.momentum = float(momentum)

  def zero_grad(self):
    for p in self.params:
      p.grad = None

  @torch.no_grad()
  def step(self, lr):
    if self.wd:
      torch._foreach_add_([p.grad for p in self.decay], self.decay,
                          alpha=self.wd)
    torch._foreach_mul_(self.bufs, self.momentum)
    torch._foreach_add_(self.bufs, [p.grad for p in self.params])
    torch._foreach_add_(self.params, torch._foreach_mul(self.bufs, -lr))


def make_torch_optimizer(params, opt_config):
  if opt_config.name == "lars":
    return sct.TorchLARS(params, opt_config.weight_decay,
                         opt_config.get("momentum", 0.9),
                         opt_config.get("trust_coefficient", 1e-3))
  if opt_config.name == "sgd":
    return TorchSGD(params, opt_config.weight_decay,
                    opt_config.get("momentum", 0.9))
  raise ValueError(f"this benchmark mirrors 'lars' and 'sgd'; got "
                   f"{opt_config.name!r}")


class TorchMoCoTrainer(sct._StepCounter):  # pylint: disable=protected-access
  """One MoCo step on pre-augmented views (NCHW float32), in the order of
  ``ssljax.methods.moco.MoCo.train_step``.

  The key encoder is a deep copy of the query encoder, so its weights are in
  the query's memory format; its split BN keeps that format (see
  :class:`_SplitBN`), and the shuffled keys are gathered in it too, so the
  key path runs in the query's format without a conversion at any layer.
  The step count, the queue pointer, the learning rates and the key momenta
  live on the device: no step reads a host value that changes every step.

  Args:
    model: the query model (a ``TorchSimCLRModel``) on the step's device.
    queue: the initial ``[K, D]`` queue on that device.
    opt_config: the config's optimizer (``lars`` or ``sgd``).
    temperature: InfoNCE's T.
    lrs, momenta: the learning rate and key momentum of each step.
    shuffle_bn, bn_splits: split BN over the shuffled keys.
    memory_format: the model's and the views' memory format.
    compile: one of ``sct.TORCH_COMPILE_MODES``: ``model`` compiles both
      forwards, ``step`` the whole step (momentum update, key forward, query
      forward, InfoNCE, backward, optimizer, enqueue).
    backend: ``torch.compile``'s backend.
    amp: both forwards under ``torch.autocast(dtype=torch.bfloat16)``;
      keys, queue and loss in float32 (``--compute-dtype bfloat16``).
  """

  def __init__(self, model, queue, opt_config, temperature, lrs, momenta,  # pylint: disable=redefined-builtin
               shuffle_bn, bn_splits, memory_format, compile="none",
               backend="inductor", amp=False):
    if compile not in sct.TORCH_COMPILE_MODES:
      raise ValueError(f"compile must be one of {sct.TORCH_COMPILE_MODES}; "
                       f"got {compile!r}")
    self.model = model.to(memory_format=memory_format).train()
    device = next(self.model.parameters()).device
    # The key encoder starts as a copy of the query encoder (params and BN
    # statistics), as MoCo.init does.
    self.key_model = split_bn_(copy.deepcopy(self.model),
                               bn_splits if shuffle_bn else 1).train()
    self.key_model.requires_grad_(False)
    self.memory_format = memory_format
    self.compile = compile
    self.forward = (torch.compile(self.model, backend=backend)
                    if compile == "model" else self.model)
    self.key_forward = (torch.compile(self.key_model, backend=backend)
                        if compile == "model" else self.key_model)
    self.params = list(self.model.parameters())
    self.key_params = list(self.key_model.parameters())
    self.opt = make_torch_optimizer(self.params, opt_config)
    self.queue = queue.clone()
    self._slot = torch.zeros(1, dtype=torch.long, device=device)
    self.temperature = temperature
    self.amp = bool(amp)
    self.shuffle_bn = shuffle_bn
    self.bn_splits = bn_splits if shuffle_bn else 1
    self._init_counter(device, lrs=lrs, momenta=momenta)
    self._labels = None
    self._step_fn = (sct.compile_step(self._step, backend)
                     if compile == "step" else self._step)

  def _step(self, xq, xk, perm):
    n = xq.shape[0]
    m = self._at(self.momenta)
    with torch.no_grad():
      # 1. momentum update of the key encoder (parameters only).
      torch._foreach_mul_(self.key_params, m)
      torch._foreach_add_(self.key_params,
                          torch._foreach_mul(self.params, 1 - m))
      # 2. keys without gradient, split BN over a shuffled batch.
      with sct.autocast(xk.device, self.amp):
        if self.shuffle_bn:
          g = self.bn_splits
          # ssljax's contiguous sub-batches as _SplitBN's strided ones.
          p = perm.view(g, n // g).t().reshape(-1)
          # Advanced indexing keeps xk's memory format (index_select does
          # not).
          k = self.key_forward(xk[p])[torch.argsort(p)]
        else:
          k = self.key_forward(xk)
      k = l2_normalize(k.float())
    # 3. query forward, InfoNCE against the queue before this step, update.
    with sct.autocast(xq.device, self.amp):
      q = self.forward(xq)
    loss = torch_info_nce(q.float(), k, self.queue, self.temperature,
                          self._labels)
    self.opt.zero_grad()
    loss.backward()
    self.opt.step(self._at(self.lrs))
    # 4. enqueue this step's keys over the oldest batch (slot = ptr / N).
    with torch.no_grad():
      self.queue.view(-1, n, self.queue.shape[1]).index_copy_(
          0, self._slot, k[None])
      self._slot.add_(1).remainder_(self.queue.shape[0] // n)
    self._count += 1
    return loss.detach()

  def state_tensors(self) -> list:
    """The tensors a step changes that the compiled-vs-eager check compares:
    the query and key encoders' parameters and the queue."""
    return self.params + self.key_params + [self.queue]

  def step(self, xq, xk, perm=None):
    """``perm``: the key shuffle (ssljax's order: sub-batch g is
    ``xk[perm[g*N/G:(g+1)*N/G]]``); default a fresh ``torch.randperm`` on
    the device (outside the compiled step, which takes it as an input)."""
    n = xq.shape[0]
    if self._labels is None or self._labels.shape[0] != n:
      self._labels = torch.zeros(n, dtype=torch.long, device=xq.device)
    if perm is None:
      perm = (torch.randperm(n, device=xk.device) if self.shuffle_bn else
              self._labels)
    return self._step_fn(xq, xk, perm)


# --------------------------------------------------------------------------
# The JAX model step on pre-augmented views
# --------------------------------------------------------------------------

def make_jax_model_step(method, tx):
  """``MoCo.train_step`` on given views and key-shuffle key, without the
  augmentation and the monitoring metrics (pos_sim/neg_sim/mi_bound)."""

  def step(state, xq, xk, shuffle_key):
    m = method.momentum_at(state.step)
    key_params = ema_update(state.key_params, state.params, m)
    keys, key_batch_stats = method.keys(key_params, state.key_batch_stats, xk,
                                        shuffle_key)
    (loss, (batch_stats, _)), grads = jax.value_and_grad(
        method.loss, has_aux=True)(state.params, state.batch_stats, xq, keys,
                                   state.queue)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # As train_step: order the enqueue after every read of the old queue so
    # the donated queue is updated in place (checked below: no queue copy).
    keys = keys + _zero_after(jax.tree.leaves(params)[0], loss)
    queue, ptr = enqueue(state.queue, state.queue_ptr, keys)
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=batch_stats, opt_state=opt_state,
                         key_params=key_params, key_batch_stats=key_batch_stats,
                         queue=queue, queue_ptr=ptr), loss

  return step


def tree_max_rel_diff(a, b) -> float:
  """max over leaves of |a - b| / |b| (Frobenius norms; leaves with |b| = 0
  compared by |a - b|)."""
  out = 0.0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d, ref = np.linalg.norm(x - y), np.linalg.norm(y)
    out = max(out, float(d / ref) if ref > 0 else float(d))
  return out


list_max_rel_diff = sct.list_max_rel_diff


def add_arguments(p):
  p.add_argument("--optimizer", default="config", choices=("config", "sgd"),
                 help="config: the config's (LARS); sgd: MoCo's SGD (lr 0.03 "
                      "x B/256, momentum 0.9, wd 1e-4, no warm-up) on both "
                      "sides")
  p.add_argument("--profile_steps", type=int, default=0,
                 help="after the timed rounds, profile this many steps of "
                      "each side (the JAX model step per part and layer, "
                      "the eager torch step per ATen operator) into the "
                      "record's 'profile' (0: no profile)")


def key_part(op_name: str) -> str:
  """``step_profile.part_of`` with the key encoder's forward (under the
  split-BN ``vmap``, no gradient) as a part of its own."""
  if "/encoder/" in op_name and "vmap(" in op_name:
    return "key encoder forward (split BN over the shuffled keys)"
  return sp.part_of(op_name)


def profile_sides(method, state, jax_args, trainer, torch_inputs,
                  steps: int) -> dict:
  """Where each side's model step spends its time (after the timing: the
  profile does not enter the figures): ``step_profile.profile_step`` on the
  JAX model step, ``torch.profiler`` self time per operator (and per part,
  ``resnet_step_profile.torch_part``) on the torch side."""
  jx = sp.profile_step(jax.jit(make_jax_model_step(method, method.tx),
                               donate_argnums=0), state, jax_args, steps,
                       part=key_part)
  tr = rsp.torch_step_profile(lambda: trainer.step(*torch_inputs), steps,
                              top=25)
  print(f"\nprofile ({steps} steps): ssljax model step "
        f"{jx['wall_ms_per_step']:.1f} ms wall, torch eager "
        f"{tr['wall_ms_per_step']:.1f} ms wall")
  for part, ms in jx["parts_ms"].items():
    print(f"  ssljax {ms:8.1f} ms  {rsp.short_part(part)}")
  for part, ms in tr["parts_ms"].items():
    print(f"  torch  {ms:8.1f} ms  {part}")
  return {"jax_model": jx, "torch_eager": tr}


def parse_args(argv=None):
  return sct.parse_args(argv, description=__doc__.split("\n")[0],
                        default_out=DEFAULT_OUT, quick_out=QUICK_OUT,
                        dry_run_out=DRY_RUN_OUT, dry_run_batch=16,
                        add_arguments=add_arguments)


def main(argv=None):
  args = parse_args(argv)
  load = sct.check_load(args)
  config = load_config()
  device = sct.prepare(args, config)
  if args.optimizer == "sgd":
    config.optimizer.update(MOCO_SGD)
  if args.dry_run:
    config.moco.queue_size = 16 * int(config.batch_size)
  batch = int(config.batch_size)
  queue_size = int(config.moco.queue_size)
  shuffle_bn = bool(config.moco.get("shuffle_bn", True))
  bn_splits = int(config.moco.get("bn_splits", 1)) if shuffle_bn else 1
  if queue_size % batch or batch % bn_splits:
    raise SystemExit(f"--batch-size must divide the queue size {queue_size} "
                     f"and be a multiple of bn_splits={bn_splits}; got {batch}")

  info = sct.announce_machine()

  # ---------------- JAX (the library) ----------------
  method, total = ssljax.train.build.build_method(config, NUM_EXAMPLES)
  key = jax.random.key(0)
  state = method.init(key, IMAGE_SHAPE)
  state_full = method.init(key, IMAGE_SHAPE)     # separate buffers (donation)
  jax_sizes = sct.param_sizes_jax(state.params)
  jax_count = sum(jax_sizes)
  out_dim = int(state.queue.shape[1])
  temperature = float(config.temperature)

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(batch, *IMAGE_SHAPE), dtype=np.uint8)
  images_j = jnp.asarray(images)
  data_key = jax.random.key(1)
  # The views and key shuffle of train_step's step 0 (for the check below);
  # the timed model step reuses them every step.
  view_key, shuffle_key = jax.random.split(jax.random.fold_in(data_key, 0))
  xq_j, xk_j = jax.jit(method.views)(images_j, view_key)
  xq_np, xk_np = np.asarray(xq_j), np.asarray(xk_j)
  perm_np = np.asarray(jax.random.permutation(shuffle_key, batch))

  # Learning rates and key momenta per step (the same schedules for torch).
  n_lr = 4 * args.warmup + 2 * args.steps + args.rounds * args.steps + 8
  lrs = np.asarray(jax.vmap(method.schedule)(jnp.arange(n_lr)), np.float64)
  momenta = np.asarray(jax.vmap(method.momentum_at)(jnp.arange(n_lr)),
                       np.float32)
  opt = config.optimizer
  peak_lr = ssljax.train.optim.scale_learning_rate(opt.base_lr, batch,
                                                   opt.lr_scaling)

  # ---------------- equivalence checks ----------------
  torch.manual_seed(0)
  t_model = sct.TorchSimCLRModel(config, IMAGE_SHAPE[2])
  torch_sizes = sct.param_sizes_torch(t_model)
  torch_count = sum(torch_sizes)
  print(f"parameters (query encoder + head; the key encoder is a copy): "
        f"ssljax {jax_count:,} | torch {torch_count:,}")
  assert jax_count == torch_count, (jax_count, torch_count)
  assert jax_sizes == torch_sizes, "per-tensor parameter sizes differ"

  to_nchw = lambda a: torch.from_numpy(np.array(a.transpose(0, 3, 1, 2),
                                                copy=True))
  xq_t, xk_t = to_nchw(xq_np), to_nchw(xk_np)
  perm_t = torch.from_numpy(perm_np.astype(np.int64))
  exact = jax.default_matmul_precision("highest")   # no TF32 in the checks

  # Loss at init, each side with its own initialization, queue and shuffle.
  own = sct.TorchSimCLRModel(config, IMAGE_SHAPE[2])
  own.load_state_dict(t_model.state_dict())
  own_queue = l2_normalize(torch.randn(queue_size, out_dim))
  torch_loss0 = float(TorchMoCoTrainer(
      own, own_queue, opt, temperature, np.zeros(1), momenta, shuffle_bn,
      bn_splits, torch.contiguous_format).step(xq_t, xk_t))
  del own, own_queue

  # Same weights, queue, views and shuffle on both sides: two steps at the
  # constant peak learning rate (the schedule's lr is 0 at step 0). The key
  # encoder starts from other weights (the query's plus noise: std of the
  # tensor for weights, 0.1 for biases and BN parameters) so that the check
  # sees the key forward and the momentum update apart from the query encoder
  # (at init they are equal, and the momentum update is the identity).
  check_tx = make_optimizer(
      opt.name, peak_lr, weight_decay=opt.weight_decay,
      momentum=opt.get("momentum", 0.9),
      trust_coefficient=opt.get("trust_coefficient", 1e-3))
  # The checks compare float32 arithmetic, whatever --compute-dtype times.
  check_method = (method if config.get("compute_dtype", "float32") ==
                  "float32" else ssljax.train.build.build_method(
                      sct.float32_twin(config), NUM_EXAMPLES)[0])
  check_step = jax.jit(make_jax_model_step(check_method, check_tx))
  noise = np.random.default_rng(7)
  other_key_params = jax.tree.map(
      lambda a: jnp.asarray(
          np.asarray(a) + noise.standard_normal(a.shape).astype(np.float32)
          * (float(np.std(a)) if a.ndim > 1 else 0.1)),
      state.params)
  s_init = state.replace(opt_state=check_tx.init(state.params))
  s0 = s_init.replace(key_params=other_key_params)
  with exact:
    _, l0_j = check_step(s_init, xq_j, xk_j, shuffle_key)   # key = query
    s1, l1_j = check_step(s0, xq_j, xk_j, shuffle_key)
    s2, l2_j = check_step(s1, xq_j, xk_j, shuffle_key)
  jax_loss0 = float(l0_j)
  j_upd_tree = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b),
                            s1.params, s0.params)
  j_ema_tree = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b),
                            s2.key_params, s0.key_params)

  def torch_two_steps(memory_format) -> dict:
    """The torch side of the check in ``memory_format`` (models and views),
    compared with the JAX steps: in channels_last the key encoder's split BN
    takes its own path (``_SplitBN``), which must match too."""
    check = sct.TorchSimCLRModel(config, IMAGE_SHAPE[2]).train()
    sct.load_flax_into_torch(check, state.params, state.batch_stats)
    ctrainer = TorchMoCoTrainer(
        check, torch.from_numpy(np.array(state.queue)), opt, temperature,
        np.array([peak_lr]), momenta, shuffle_bn, bn_splits, memory_format)
    sct.load_flax_into_torch(ctrainer.key_model, s0.key_params,
                             s0.key_batch_stats)
    xq, xk = (x.contiguous(memory_format=memory_format) for x in (xq_t, xk_t))
    before = [p.detach().clone() for p in check.parameters()]
    key_before = [p.detach().clone() for p in ctrainer.key_model.parameters()]
    l1_t = float(ctrainer.step(xq, xk, perm=perm_t))
    t_upd = [(p.detach() - b).numpy()
             for p, b in zip(check.parameters(), before)]
    keys_err = float(np.max(np.abs(ctrainer.queue[:batch].numpy()
                                   - np.asarray(s1.queue[:batch]))))
    l2_t = float(ctrainer.step(xq, xk, perm=perm_t))
    # The key encoder's change over the two momentum updates.
    t_ema = [(p.detach() - b).numpy()
             for p, b in zip(ctrainer.key_model.parameters(), key_before)]
    return {
        "loss": l1_t, "loss2": l2_t,
        "loss_err": abs(float(l1_j) - l1_t) / abs(float(l1_j)),
        "loss2_err": abs(float(l2_j) - l2_t) / abs(float(l2_j)),
        "upd_err": list_max_rel_diff(
            t_upd, sct.flax_to_torch_order(check, j_upd_tree)),
        "ema_err": list_max_rel_diff(
            t_ema, sct.flax_to_torch_order(check, j_ema_tree)),
        "keys_err": keys_err,
    }

  print(f"loss at init (own initialization, queue, shuffle): ssljax "
        f"{jax_loss0:.5f} | torch {torch_loss0:.5f} (log(1+K) = "
        f"{np.log1p(queue_size):.5f})")
  same = {}
  for fmt_name, fmt in (("contiguous", torch.contiguous_format),
                        ("channels_last", torch.channels_last)):
    e = same[fmt_name] = torch_two_steps(fmt)
    print(f"same weights/queue/views/shuffle ({fmt_name}): loss ssljax "
          f"{float(l1_j):.6f} | torch {e['loss']:.6f} (rel. diff "
          f"{e['loss_err']:.1e}); enqueued keys max abs diff "
          f"{e['keys_err']:.1e}; one {opt.name.upper()} step, max rel. diff "
          f"of the per-tensor updates {e['upd_err']:.1e}")
    print(f"  second step: loss ssljax {float(l2_j):.6f} | torch "
          f"{e['loss2']:.6f} (rel. diff {e['loss2_err']:.1e}); key-encoder "
          f"momentum updates (2 steps), max rel. diff of the per-tensor "
          f"changes {e['ema_err']:.1e}")
    if (e["loss_err"] > 1e-4 or e["loss2_err"] > 1e-4 or e["upd_err"] > 1e-2
        or e["ema_err"] > 1e-2 or e["keys_err"] > 1e-4):
      raise SystemExit(f"equivalence check failed ({fmt_name}): the torch "
                       "model/optimizer does not match ssljax")
  l1_t, l2_t = same["contiguous"]["loss"], same["contiguous"]["loss2"]
  loss_err, loss2_err = (same["contiguous"]["loss_err"],
                         same["contiguous"]["loss2_err"])
  upd_err, ema_err, keys_err = (same["contiguous"]["upd_err"],
                                same["contiguous"]["ema_err"],
                                same["contiguous"]["keys_err"])
  del s_init, s2, other_key_params

  # ---------------- JAX compile; model step vs train_step ----------------
  print("compiling the JAX steps ...", flush=True)
  t0 = time.perf_counter()
  jax_model_step = jax.jit(make_jax_model_step(method, method.tx),
                           donate_argnums=0).lower(
                               state, xq_j, xk_j, shuffle_key).compile()
  jax_model_compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax_full_step = jax.jit(method.train_step, donate_argnums=0).lower(
      state_full, images_j, data_key).compile()
  jax_full_compile_s = time.perf_counter() - t0
  copies = {"jax_model": queue_copies(jax_model_step.as_text(), queue_size,
                                      out_dim),
            "jax_full": queue_copies(jax_full_step.as_text(), queue_size,
                                     out_dim)}
  print(f"  compiled in {jax_model_compile_s:.1f} s (model step) / "
        f"{jax_full_compile_s:.1f} s (full step); [K, D] queue copies in the "
        f"compiled steps: {copies['jax_model']} / {copies['jax_full']}")
  # Step 0 of both from the same initial state: the model step on train_step's
  # own views and shuffle key must give the same state.
  state, l_m = jax_model_step(state, xq_j, xk_j, shuffle_key)
  state_full, metrics = jax_full_step(state_full, images_j, data_key)
  step_err = max(abs(float(l_m) - float(metrics["loss"])) / abs(float(l_m)),
                 tree_max_rel_diff(state, state_full))
  print(f"  composed model step vs MoCo.train_step after one step: max rel. "
        f"diff over the state {step_err:.1e}")
  if step_err > 1e-4:
    raise SystemExit("the composed JAX model step does not reproduce "
                     "MoCo.train_step")

  # ---------------- warm-up ----------------
  print(f"warm-up ({args.warmup} steps per side, compile excluded) ...",
        flush=True)
  for _ in range(args.warmup - 1):   # the check above was the first step
    state, _ = jax_model_step(state, xq_j, xk_j, shuffle_key)
    state_full, _ = jax_full_step(state_full, images_j, data_key)
  jax.block_until_ready((state, state_full))

  torch.manual_seed(1)
  t_queue = l2_normalize(torch.randn(queue_size, out_dim))

  def make_trainer(mode, memory_format):
    m = sct.TorchSimCLRModel(config, IMAGE_SHAPE[2])
    m.load_state_dict(t_model.state_dict())
    return TorchMoCoTrainer(m.to(device), t_queue.to(device), opt,
                            temperature, lrs, momenta, shuffle_bn, bn_splits,
                            memory_format, compile=mode,
                            backend=args.torch_compile_backend,
                            amp=args.compute_dtype == "bfloat16")

  torch_sides = sct.prepare_torch_sides(
      args, make_trainer=make_trainer, host_inputs=(xq_t, xk_t),
      device=device, batch=batch,
      step_kwargs={"perm": perm_t.to(device)})
  for side in torch_sides.values():
    # The same lr sequence as the JAX step from here on (which has taken at
    # least one step: the check above).
    side["trainer"].count = max(args.warmup, 1)

  # ---------------- timed rounds ----------------
  states = {"model": state, "full": state_full}
  sides = {"jax_model": sct.jax_side(jax_model_step, states, "model",
                                     (xq_j, xk_j, shuffle_key))}
  for mode, side in torch_sides.items():
    sides[sct.TORCH_SIDE_NAMES[mode]] = sct.torch_side(side["trainer"],
                                                       side["inputs"])
  sides["jax_full"] = sct.jax_side(jax_full_step, states, "full",
                                   (images_j, data_key))
  rounds, med, summaries = sct.compare_sides(
      args, sides, batch=batch, views="each gives a query and a key view",
      header=f"batch {batch} images (query + key view), queue K={queue_size}",
      torch_desc=sct.torch_descriptions(torch_sides))
  flops = sct.flop_utilization(
      sct.step_flops(jax_model_step), med["jax_model"] / batch,
      config.get("compute_dtype", "float32"), args.peak_tflops)
  sct.print_flops(flops)
  cmp.finish_load(load)
  print(f"load average at end: {load['end'][0]:.2f}")
  profile = None
  if args.profile_steps > 0 and "none" in torch_sides:
    profile = profile_sides(method, states["model"], (xq_j, xk_j, shuffle_key),
                            torch_sides["none"]["trainer"],
                            torch_sides["none"]["inputs"], args.profile_steps)

  record = cmp.results_record(
      benchmark="moco_throughput", rounds=rounds, summaries=summaries,
      load=load, machine=info, argv=[Path(sys.argv[0]).name] + (
          sys.argv[1:] if argv is None else list(argv)),
      extra={
          "dry_run": bool(args.dry_run),
          "timed_region": (
              "model comparison (jax_model vs each torch side): the train "
              "step only -- key-encoder momentum update, shuffled split-BN "
              "key forward (no gradient), query forward, InfoNCE against the "
              f"queue, backward, {opt.name.upper()} update, enqueue -- on "
              "pre-augmented float32 views [B,28,28,1] (identical tensors "
              "for both frameworks); compile and warm-up excluded. jax_full: "
              "ssljax MoCo.train_step on uint8 images, augmentation and "
              "metrics included."),
          "images_per_s_definition": ("source images per second (a query "
                                      "and a key view each)"),
          "config": {
              "config_file": str(CONFIG_PATH.relative_to(REPO)),
              "batch_size": batch, "views_per_step": 2 * batch,
              "quick": args.quick,
              "encoder": config.encoder.to_dict(),
              # what the encoder ran (ResNet's default is "xla")
              "conv_impl_resolved": resolve_conv_impl(
                  config.encoder.get("conv_impl", "xla")),
              "head": config.head.to_dict(),
              "moco": config.moco.to_dict(),
              "temperature": temperature, "queue_size": queue_size,
              "key_dim": out_dim, "bn_splits_used": bn_splits,
              "optimizer_option": args.optimizer,
              "optimizer": config.optimizer.to_dict(),
              "peak_lr": peak_lr, "schedule_total_steps": total,
              "lr_first_timed_steps": lrs[args.warmup:args.warmup + 4].tolist(),
              "key_momentum_first_timed_steps":
                  momenta[args.warmup:args.warmup + 4].tolist(),
              "torch_compile": args.torch_compile,
              "torch_device": args.torch_device,
              "compute_dtype": args.compute_dtype,
              "torch_num_threads": torch.get_num_threads(),
          },
          "torch_sides": sct.torch_sides_record(torch_sides, args),
          "equivalence": {
              "param_count_jax": jax_count, "param_count_torch": torch_count,
              "loss_at_init_jax": jax_loss0, "loss_at_init_torch": torch_loss0,
              "same_weights_loss_jax": float(l1_j),
              "same_weights_loss_torch": l1_t,
              "same_weights_loss_rel_diff": loss_err,
              "same_weights_enqueued_keys_max_abs_diff": keys_err,
              "same_weights_update_max_rel_diff": upd_err,
              "second_step_loss_jax": float(l2_j),
              "second_step_loss_torch": l2_t,
              "second_step_loss_rel_diff": loss2_err,
              "two_steps_key_momentum_update_max_rel_diff": ema_err,
          "same_weights_channels_last": same["channels_last"],
              "jax_model_step_vs_train_step_max_rel_diff": step_err,
              "jax_compiled_queue_copies": copies,
          },
          "compile_seconds": {"jax_model": jax_model_compile_s,
                              "jax_full": jax_full_compile_s},
          "median_images_per_s": med,
          "jax_model_step_flops": flops,
          "profile": profile,
      })
  cmp.write_record(args.out, record)
  return record


if __name__ == "__main__":
  main()
