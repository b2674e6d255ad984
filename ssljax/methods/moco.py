"""MoCo v1/v2 (He et al. 2020; Chen et al. 2020): a momentum key encoder and a
queue of negative keys, both carried as immutable state.

Per step, in the order of the paper's Algorithm 1 and the official code:

1. momentum update of the key encoder, ``theta_k <- m theta_k + (1-m) theta_q``
   (:func:`ssljax.methods.ema.ema_update`);
2. key forward without gradient: ``k = normalize(f_k(x_k))``, with Shuffle BN
   (per-device BatchNorm over a batch shuffled across devices) or, on one
   device, its split-BN emulation (``bn_splits`` sub-batches);
3. ``L = info_nce(q, k, queue, T)``: logits ``[N, 1+K]`` with the positive at
   index 0, against the queue as it was *before* this step;
4. SGD step on the query encoder, then the global batch of keys is written into
   the queue at ``ptr`` (:func:`enqueue`) and ``ptr`` advances modulo K.

Functional shape::

    method = MoCo(model=EncoderWithHead(...), tx=..., queue_size=4096, batch_size=256)
    # or: MoCo.from_config(config, tx=tx, schedule=schedule, data=spec)
    state = method.init(jax.random.key(0), image_shape=(28, 28, 1))
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, data_key)

The query encoder (``state.params`` / ``state.batch_stats``) is the one that is
evaluated; its BatchNorm uses global-batch statistics like SimCLR's. The key
encoder's BatchNorm running statistics come from its own forward passes (as in
the official code, which momentum-updates parameters only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from ssljax import losses
from ssljax.augment import normalized_views
from ssljax.config import build, check
from ssljax.methods.base import (Method, apply_gradients, build_encoder,
                                 build_head, frozen_features, register,
                                 step_key)
from ssljax.methods.ema import ema_update, momentum_schedule
from ssljax.methods.simclr import augment_from_config, view_size
from ssljax.models import EncoderWithHead
from ssljax.parallel.mesh import DATA_AXIS, replicate

MOMENTUM_SCHEDULES = ("constant", "cosine")


@flax.struct.dataclass
class MoCoState:
  """Everything that changes during MoCo training (a pytree).

  Attributes:
    step: int32 scalar, steps taken.
    params, batch_stats, opt_state: the query encoder (+ head) and its optimizer.
    key_params, key_batch_stats: the momentum key encoder (+ head).
    queue: ``[K, D]`` float32, L2-normalized keys (random unit vectors at init).
    queue_ptr: int32 scalar, the row where the next batch of keys is written.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  key_params: Any
  key_batch_stats: Any
  queue: jax.Array
  queue_ptr: jax.Array


def queue_size_message(queue_size: int, batch_size: int) -> str:
  """Why ``queue_size`` does not fit ``batch_size``, and what would."""
  lower = (queue_size // batch_size) * batch_size
  options = sorted({max(lower, batch_size), lower + batch_size})
  return (f"MoCo queue size K={queue_size} is not divisible by the global "
          f"batch size {batch_size}: every step enqueues one whole global batch "
          f"of keys, so K must be a multiple of {batch_size}. Use e.g. K="
          f"{' or K='.join(map(str, options))} (--config.moco.queue_size=...), "
          f"or a global batch size that divides {queue_size}.")


def check_queue_divides(queue_size: int, batch_size: int) -> None:
  """Raise a ValueError unless the queue holds a whole number of global batches."""
  if batch_size < 1:
    raise ValueError(f"global batch size must be >= 1; got {batch_size}.")
  if queue_size < 1 or queue_size % batch_size:
    raise ValueError(queue_size_message(queue_size, batch_size))


def enqueue(queue: jax.Array, ptr: jax.Array, keys: jax.Array
            ) -> tuple[jax.Array, jax.Array]:
  """Write ``keys`` into ``queue`` at row ``ptr``; advance ``ptr`` modulo K.

  ``queue[ptr : ptr + N] = keys``, ``ptr <- (ptr + N) mod K`` (MoCo's
  ``_dequeue_and_enqueue``: the oldest batch is replaced). One
  ``lax.dynamic_update_slice``: in a step that donates the state the queue is
  updated in place and the cost is O(N D), independent of K.

  Args:
    queue: ``[K, D]``.
    ptr: int scalar, a multiple of N in ``[0, K)`` (it stays one when it starts
      at 0, since K is a multiple of N).
    keys: ``[N, D]``, the global batch of keys (gathered if sharded).

  Returns:
    ``(new_queue [K, D], new_ptr)``.
  """
  if queue.ndim != 2 or keys.ndim != 2 or keys.shape[1] != queue.shape[1]:
    raise ValueError(f"enqueue needs queue [K, D] and keys [N, D] with the same "
                     f"D; got queue {queue.shape} and keys {keys.shape}.")
  k, n = queue.shape[0], keys.shape[0]
  check_queue_divides(k, n)
  ptr = jnp.asarray(ptr, jnp.int32)
  new_queue = lax.dynamic_update_slice(
      queue, replicate(keys).astype(queue.dtype), (ptr, jnp.zeros_like(ptr)))
  return new_queue, (ptr + n) % k


def order_after(x: jax.Array, *trees) -> jax.Array:
  """``x`` (unchanged in value), made to depend on every leaf of ``trees``.

  For writing into a donated buffer in place. XLA updates a donated array in
  place with ``dynamic_update_slice`` only when the write is ordered after
  every read of the old value; otherwise it copies the whole array (MoCo's
  ``[K, D]`` queue: twice per step on XLA:CPU with JAX 0.10, measured in
  ``benchmarks/moco_queue.py``, checked in ``tests/test_moco.py``). An
  ``optimization_barrier`` does not establish that order there; a data
  dependency does: ``enqueue(queue, ptr, order_after(keys, grads, metrics))``
  writes only once the loss, its gradient and the queue statistics (every
  read of the old queue) exist. Harmless elsewhere: it adds one scalar per
  leaf.

  The dependency is ``x + 0 * sum(one element of each leaf)``: ``0 * y`` is
  not folded for floats, and non-finite values are zeroed first so a NaN
  cannot reach ``x`` through this path.
  """
  return x + _zero_after(*trees).astype(x.dtype)


def _zero_after(*trees) -> jax.Array:
  """A float32 0 computed from one element of every leaf of ``trees``
  (:func:`order_after`)."""
  total = sum(jnp.ravel(leaf)[0].astype(jnp.float32)
              for leaf in jax.tree.leaves(trees))
  return 0.0 * jnp.nan_to_num(total, nan=0.0, posinf=0.0, neginf=0.0)


def shuffled_group_apply(fn: Callable, variables: Any, x: jax.Array,
                         perm: jax.Array, *, groups: int = 1, mesh=None,
                         axis_name: str = DATA_AXIS):
  """``fn`` on groups of the shuffled batch ``x[perm]``; output in ``x``'s order.

  MoCo's Shuffle BN (He et al. 2020, sec. 3.3): the batch is shuffled across
  devices, each device runs ``fn`` (whose BatchNorm then sees only its share),
  and the outputs are unshuffled so row i of the result belongs to ``x[i]``.

  * With ``mesh`` whose axis ``axis_name`` has D > 1 devices: written with
    ``jax.shard_map``. Each device all-gathers the batch, takes rows
    ``perm[d*N/D : (d+1)*N/D]``, applies ``fn``, all-gathers the outputs and
    keeps its own rows of the unshuffled result (the official
    ``_batch_shuffle_ddp`` / ``_batch_unshuffle_ddp``); ``groups`` is ignored.
  * Otherwise (one device): the split-BN emulation of the MoCo CIFAR recipe,
    ``fn`` vmapped over ``groups`` contiguous slices of ``x[perm]``.

  Both give the same result for ``groups == D`` and the same ``perm``.

  Args:
    fn: ``fn(variables, x_group) -> (y_group, aux)``; ``aux`` (e.g. updated
      BatchNorm statistics) is averaged over the groups.
    variables: replicated operands of ``fn`` (parameters).
    x: ``[N, ...]``.
    perm: ``[N]`` int permutation of ``range(N)``, the same on every device.
    groups: number of groups on one device; must divide N.
    mesh: a ``Mesh`` / ``AbstractMesh`` (default: none, one device).
    axis_name: the batch axis of ``mesh``.

  Returns:
    ``(y [N, ...] in x's order, aux averaged over groups)``.
  """
  n = x.shape[0]
  if perm.shape != (n,):
    raise ValueError(f"perm must have shape ({n},) for x {x.shape}; got "
                     f"{perm.shape}.")
  inv = jnp.argsort(perm)
  devices = _axis_size(mesh, axis_name)
  if devices > 1:
    if n % devices:
      raise ValueError(f"batch {n} does not divide over {devices} devices.")
    local = n // devices

    def per_device(variables, x_local, perm, inv):
      d = lax.axis_index(axis_name)
      x_all = lax.all_gather(x_local, axis_name, tiled=True)           # [N, ...]
      mine = lax.dynamic_slice_in_dim(perm, d * local, local)
      y_mine, aux = fn(variables, jnp.take(x_all, mine, axis=0))
      y_all = jax.tree.map(                                              # shuffled
          lambda y: lax.all_gather(y, axis_name, tiled=True), y_mine)
      rows = lax.dynamic_slice_in_dim(inv, d * local, local)
      y_local = jax.tree.map(lambda y: jnp.take(y, rows, axis=0), y_all)
      aux = jax.tree.map(lambda a: lax.pmean(a, axis_name), aux)
      return y_local, aux

    batch = P(axis_name)
    return jax.shard_map(per_device, mesh=mesh,
                         in_specs=(P(), batch, P(), P()),
                         out_specs=(batch, P()))(variables, x, perm, inv)
  if groups < 1 or n % groups:
    raise ValueError(f"bn_splits={groups} must divide the batch size {n} "
                     "(--config.moco.bn_splits=...).")
  xs = jnp.take(x, perm, axis=0).reshape(groups, n // groups, *x.shape[1:])
  ys, aux = jax.vmap(fn, in_axes=(None, 0))(variables, xs)
  ys = jax.tree.map(lambda y: jnp.take(y.reshape(n, *y.shape[2:]), inv, axis=0),
                    ys)
  return ys, jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)


def _axis_size(mesh, axis_name: str) -> int:
  if mesh is None or mesh.empty or axis_name not in mesh.axis_names:
    return 1
  return int(mesh.shape[axis_name])


def _temperature_ok(t) -> bool:
  return t > 0


_TEMPERATURE_MESSAGE = ("must be > 0 (the logits are divided by it); e.g. 0.2 "
                        "(MoCo v2), 0.07 (v1), 0.1 (CIFAR recipe)")


@register("moco")
@dataclasses.dataclass(frozen=True)
class MoCo(Method):
  """MoCo v1/v2: its static parts (model, optimizer, hyperparameters).

  Attributes:
    model: an ``EncoderWithHead`` returning ``(h, z)``; the head is linear
      (``ProjectionMLP(num_layers=1)``, v1) or an MLP (v2).
    tx: the optax optimizer (MoCo: SGD 0.03, momentum 0.9, wd 1e-4).
    queue_size: K, the number of negative keys (65536 ImageNet, 4096 CIFAR);
      a multiple of the global batch size.
    temperature: T (0.07 v1, 0.2 v2, 0.1 CIFAR recipe).
    momentum: the key encoder's m, a float in [0, 1] (0.999; 0.99 CIFAR) or
      a schedule ``step -> m``.
    momentum_schedule: for a float ``momentum``: ``"constant"``, or
      ``"cosine"`` (m rises to 1 over ``total_steps``,
      :func:`ssljax.methods.ema.momentum_schedule`; BYOL / MoCo v3).
    shuffle_bn: shuffle the key batch before the key forward; with several
      devices the key encoder's BatchNorm then uses per-device statistics over
      the shuffled batch. ``False``: global-batch BN, no shuffle.
    bn_splits: on one device with ``shuffle_bn``, the number of BatchNorm
      sub-batches of the shuffled key batch (8 in the MoCo CIFAR recipe; 1 =
      global BN). Ignored when the mesh has several devices.
    batch_size: the global batch size, to check K (optional; the train step
      checks it again from the batch shape).
    total_steps: the run's length, for ``momentum_schedule="cosine"``.
    augment: keyword arguments of ``ssljax.augment.simclr_view``.
    mean, std: per-channel input normalization applied after augmentation.
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  queue_size: int = 65536
  temperature: float = 0.07
  momentum: float | Callable[[jax.Array], jax.Array] = 0.999
  momentum_schedule: str = "constant"
  shuffle_bn: bool = True
  bn_splits: int = 1
  batch_size: int | None = None
  total_steps: int = 0
  augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    b = self.batch_size
    check(self,
          ("temperature", _temperature_ok, _TEMPERATURE_MESSAGE),
          ("queue_size", lambda k: k >= 1 and (not b or k % b == 0),
           queue_size_message(self.queue_size, b) if b else
           "must be >= 1; e.g. 4096"),
          ("momentum", lambda m: callable(m) or 0.0 <= m <= 1.0,
           "the key encoder's m must lie in [0, 1] (theta_k <- m theta_k + "
           "(1 - m) theta_q); e.g. 0.99 (CIFAR) or 0.999 (ImageNet)"),
          ("momentum_schedule", lambda s: s in MOMENTUM_SCHEDULES and (
              s == "constant" or callable(self.momentum)
              or self.total_steps >= 1),
           f"one of {MOMENTUM_SCHEDULES} ('cosine' needs the run's length)"),
          ("bn_splits", lambda s: s >= 1 and (
              not b or not self.shuffle_bn or b % s == 0),
           f"BatchNorm sub-batches of the shuffled keys on one device: an "
           f"integer >= 1 that divides the batch size {b}; e.g. 8 (MoCo "
           "CIFAR recipe) or 1 (global BN)"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: ``temperature``; ``moco`` (``queue_size``, ``momentum``,
    ``momentum_schedule``, ``shuffle_bn``, ``bn_splits``); ``encoder``,
    ``head``, ``augment`` (``simclr_view`` arguments), ``compute_dtype``.
    The global batch size is ``data.batch_size``."""
    model = EncoderWithHead(encoder=build_encoder(config),
                            head=build_head(config))
    return build(cls, config.get("moco"), top=("temperature",), config=config,
                 model=model, tx=tx, schedule=schedule,
                 batch_size=data.batch_size or None,
                 total_steps=data.num_steps, mean=data.mean, std=data.std,
                 augment=augment_from_config(config))

  def momentum_at(self, step: jax.Array) -> jax.Array:
    """The key-encoder momentum m used at ``step``."""
    if callable(self.momentum):
      return jnp.asarray(self.momentum(step), jnp.float32)
    if self.momentum_schedule == "cosine":
      return momentum_schedule(float(self.momentum), self.total_steps)(step)
    return jnp.asarray(self.momentum, jnp.float32)

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> MoCoState:
    """Query/key encoders (equal at init), optimizer state and a random
    L2-normalized queue for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    dummy = jnp.zeros((2, *view_size(self.augment, image_shape),
                       image_shape[2]), jnp.float32)
    param_key, queue_key = jax.random.split(key)
    variables = jax.jit(lambda k: self.model.init(k, dummy, train=True))(
        param_key)
    (_, z), _ = jax.eval_shape(lambda v: self.model.apply(
        v, dummy, train=True, mutable=["batch_stats"]), variables)
    queue = losses.l2_normalize(jax.random.normal(
        queue_key, (self.queue_size, z.shape[-1]), jnp.float32))
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    copy = lambda tree: jax.tree.map(lambda x: jnp.array(x, copy=True), tree)
    return MoCoState(step=jnp.zeros((), jnp.int32), params=params,
                     batch_stats=batch_stats, opt_state=self.tx.init(params),
                     key_params=copy(params), key_batch_stats=copy(batch_stats),
                     queue=queue, queue_ptr=jnp.zeros((), jnp.int32))

  def views(self, images: jax.Array, key: jax.Array):
    """Query and key views ``[B, h, w, C]`` (normalized) of a uint8 batch."""
    return normalized_views(key, images, mean=self.mean, std=self.std,
                            **self.augment)

  def _apply_train(self, variables, x):
    (_, z), updates = self.model.apply(variables, x, train=True,
                                       mutable=["batch_stats"])
    return z, updates.get("batch_stats", {})

  def keys(self, key_params, key_batch_stats, x: jax.Array,
           shuffle_key: jax.Array):
    """L2-normalized keys ``[N, D]`` (no gradient) and the key encoder's new
    BatchNorm statistics.

    With ``shuffle_bn``: Shuffle BN over the devices of the current mesh
    (``jax.set_mesh``), or split BN over ``bn_splits`` groups on one device.
    """
    variables = {"params": key_params, "batch_stats": key_batch_stats}
    if self.shuffle_bn:
      perm = jax.random.permutation(shuffle_key, x.shape[0])
      z, stats = shuffled_group_apply(
          self._apply_train, variables, x, perm, groups=self.bn_splits,
          mesh=jax.sharding.get_abstract_mesh())
    else:
      z, stats = self._apply_train(variables, x)
    return lax.stop_gradient(losses.l2_normalize(z)), lax.stop_gradient(stats)

  def loss(self, params, batch_stats, xq: jax.Array, keys: jax.Array,
           queue: jax.Array):
    """InfoNCE of the queries against their keys and the queue (negatives)."""
    q, batch_stats = self._apply_train(
        {"params": params, "batch_stats": batch_stats}, xq)
    loss = losses.info_nce(q, keys, queue, temperature=self.temperature)
    return loss, (batch_stats, q)

  def train_step(self, state: MoCoState, images: jax.Array, key: jax.Array
                 ) -> tuple[MoCoState, dict[str, jax.Array]]:
    """One MoCo step on a global uint8 batch ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. ``key`` is the run's data key;
    the step's key is ``fold_in(key, state.step)`` (views and the shuffle).
    """
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    n = images.shape[0]
    k = state.queue.shape[0]
    check_queue_divides(k, n)
    view_key, shuffle_key = jax.random.split(step_key(key, state))
    xq, xk = self.views(images, view_key)
    # 1. momentum update of the key encoder (before the key forward).
    m = self.momentum_at(state.step)
    key_params = ema_update(state.key_params, state.params, m)
    # 2. keys, no gradient.
    keys, key_batch_stats = self.keys(key_params, state.key_batch_stats, xk,
                                      shuffle_key)
    # 3. loss against the queue as it was before this step.
    (loss, (batch_stats, q)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, xq, keys,
                                 state.queue)
    metrics = {"loss": loss,
               "mi_bound": losses.mutual_information_lower_bound(loss, k + 1),
               **queue_similarity_stats(q, keys, state.queue),
               "momentum": m}
    # 4. enqueue this step's keys (the oldest batch leaves), after every read
    # of the old queue (order_after: the donated queue is written in place).
    queue, ptr = enqueue(state.queue, state.queue_ptr,
                         order_after(keys, grads, metrics))
    return apply_gradients(state, grads, tx=self.tx, metrics=metrics,
                           schedule=self.schedule, batch_stats=batch_stats,
                           key_params=key_params,
                           key_batch_stats=key_batch_stats, queue=queue,
                           queue_ptr=ptr)

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen query-encoder features ``[N, F]`` of uint8 or [0,1] float images
    (BatchNorm in inference mode, running statistics)."""
    return frozen_features(self.model, self.mean, self.std, variables_or_state,
                           images)


def queue_similarity_stats(q: jax.Array, keys: jax.Array, queue: jax.Array
                           ) -> dict[str, jax.Array]:
  """Mean cosine similarity of the positive pairs ``(q_n, k_n)`` and of all
  ``N x K`` (query, queue) negative pairs, in O((N + K) D)."""
  qn = lax.stop_gradient(losses.l2_normalize(q))
  kn = losses.l2_normalize(keys)
  pos = jnp.mean(jnp.sum(qn * kn, axis=-1))
  # mean_{n,m} <q_n, u_m> = <mean_n q_n, mean_m u_m>
  neg = jnp.dot(jnp.mean(qn, axis=0),
                jnp.mean(losses.l2_normalize(replicate(queue)), axis=0))
  return {"pos_sim": pos, "neg_sim": neg}
