"""DINO (Caron et al. 2021): self-distillation without labels. A student
(encoder + DINO head) matches, on every crop, the sharpened and centred
output of a teacher (the EMA of the student) on the *other* global crops.

Per step (the paper's Algorithm 1 and sec. 3.1):

1. multi-crop: ``num_global`` global crops (the teacher's inputs) and
   ``num_local`` smaller local crops of each image, drawn on device;
2. teacher outputs on the global crops (no gradient); student outputs on all
   crops (one forward pass per crop size);
3. ``L = mean over pairs (t, s), s != t, of H(P_t, P_s)`` with
   ``P_t = softmax((g_t - c) / tau_t)`` and ``P_s = softmax(g_s / tau_s)``
   (``ssljax.losses.dino_loss``); the teacher temperature ``tau_t`` warms up
   linearly from ``teacher_temp_start`` to ``teacher_temp`` over
   ``teacher_temp_warmup_steps`` (``ssljax.losses.dino_teacher_temperature``);
4. the optimizer step on the student (the last layer is not updated during
   the first ``freeze_last_layer_steps``, as the paper's code does for
   stability);
5. the teacher update ``theta_t <- m theta_t + (1 - m) theta_s`` with the
   cosine momentum schedule from ``base_momentum`` (0.996) to 1;
6. the centre update ``c <- cm c + (1 - cm) mean(teacher outputs)`` over all
   global crops of the global batch (``ssljax.losses.dino_center_update``).

The DINO head: an MLP (GELU) to a ``bottleneck_dim`` bottleneck, L2
normalization, then a weight-normalized linear layer without bias to
``out_dim`` prototypes, its norm fixed to 1 (``norm_last_layer``). The
paper's shapes: hidden 2048, bottleneck 256, 65,536 prototypes.
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

from ssljax import losses
from ssljax.augment import normalize_images, simclr_view
from ssljax.augment.ops import map_examples, to_float
from ssljax.config import build, check, kwargs_for
from ssljax.methods.base import (Method, apply_gradients, build_encoder,
                                 compute_dtype, frozen_features, register,
                                 step_key, train_state)
from ssljax.methods.ema import ema_update, momentum_schedule
from ssljax.methods.twoview import (health_metrics, net_trainable_features,
                                    net_variables)
from ssljax.models import EncoderWithHead
from ssljax.parallel.mesh import like_batch


class DINOHead(nn.Module):
  """MLP -> bottleneck -> L2 norm -> weight-normalized prototypes.

  Attributes:
    out_dim: number of prototypes K (paper 65,536).
    hidden_dim: MLP width (paper 2048).
    bottleneck_dim: (paper 256).
    num_layers: Dense layers before the prototypes (paper 3).
    use_bn: BatchNorm after the hidden layers (paper: no, for ViT).
    norm_last_layer: fix the prototypes' norm to 1 (paper: yes).
  """
  out_dim: int = 65536
  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_layers: int = 3
  use_bn: bool = False
  norm_last_layer: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, train: bool = True):
    x = h.astype(self.dtype)
    for _ in range(self.num_layers - 1):
      x = nn.Dense(self.hidden_dim, dtype=self.dtype)(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         dtype=self.dtype)(x)
      x = nn.gelu(x)
    x = nn.Dense(self.bottleneck_dim, dtype=self.dtype)(x)
    x = losses.l2_normalize(x.astype(jnp.float32))
    v = self.param("prototypes", nn.initializers.truncated_normal(0.02),
                   (self.bottleneck_dim, self.out_dim))
    norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=0, keepdims=True))
    if self.norm_last_layer:
      w = v / jnp.maximum(norm, 1e-12)
    else:
      g = self.param("scale", nn.initializers.ones, (1, self.out_dim))
      w = g * v / jnp.maximum(norm, 1e-12)
    return x @ w


@flax.struct.dataclass
class DINOState:
  """``step``, ``params`` / ``batch_stats`` / ``opt_state`` (the student,
  ``{"net": ...}``), the teacher (``teacher_params``, ``teacher_batch_stats``,
  the structure of ``params["net"]``) and the centre ``[K]``."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  teacher_params: Any
  teacher_batch_stats: Any
  center: jax.Array


def multi_crop(key, images, num: int, **view_kwargs) -> jax.Array:
  """``num`` independent crops of every image: ``[num, B, h, w, C]`` float
  in [0, 1] (``simclr_view(**view_kwargs)`` each; per-example keys follow the
  batch's sharding)."""
  images = to_float(images)
  batch = images.shape[0]
  keys = jax.vmap(lambda k: jax.random.split(k, num))(
      jax.random.split(key, batch))                       # [B, num]
  keys = like_batch(keys, images)
  per_image = jax.vmap(lambda k, x: simclr_view(k, x, **view_kwargs),
                       in_axes=(0, None))
  crops = map_examples(per_image, keys, images)            # [B, num, h, w, C]
  return jnp.moveaxis(crops, 1, 0)


@register("dino")
@dataclasses.dataclass(frozen=True)
class DINO(Method):
  """DINO: its static parts.

  Attributes:
    model: ``EncoderWithHead(encoder, DINOHead)``.
    tx: the optimizer (AdamW in the paper).
    global_augment / local_augment: ``simclr_view`` arguments of the global
      and local crops (``size`` sets each crop's side).
    num_global, num_local: crops per image (paper 2 and 6-10).
    student_temp: tau_s (0.1).
    teacher_temp: tau_t after warm-up (paper 0.04 -> 0.07).
    teacher_temp_start: tau_t at step 0 (0.04).
    teacher_temp_warmup_steps: linear warm-up length of tau_t.
    center_momentum: (0.9).
    base_momentum: teacher EMA momentum at step 0 (0.996, cosine to 1).
    freeze_last_layer_steps: steps during which the prototypes get no update.
    total_steps: the run's length (for the momentum schedule).
  """
  model: nn.Module
  tx: optax.GradientTransformation
  global_augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  local_augment: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  num_global: int = 2
  num_local: int = 6
  student_temp: float = 0.1
  teacher_temp: float = 0.07
  teacher_temp_start: float = 0.04
  teacher_temp_warmup_steps: int = 0
  center_momentum: float = 0.9
  base_momentum: float = 0.996
  freeze_last_layer_steps: int = 0
  total_steps: int = 1
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    pos = lambda v: v > 0
    check(self,
          ("num_global", lambda v: v >= 2, "at least 2 global crops (each is "
           "compared with the others)"),
          ("num_local", lambda v: v >= 0, "must be >= 0"),
          ("student_temp", pos, "must be > 0; the paper's 0.1"),
          ("teacher_temp", pos, "must be > 0; the paper's 0.04-0.07"),
          ("teacher_temp_start", pos, "must be > 0; the paper's 0.04"),
          ("teacher_temp_warmup_steps", lambda v: v >= 0, "must be >= 0"),
          ("center_momentum", lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
          ("base_momentum", lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
          ("freeze_last_layer_steps", lambda v: v >= 0, "must be >= 0"))

  @classmethod
  def from_config(cls, config, *, tx, schedule, data):
    """Keys: the fields above (``teacher_temp_warmup_epochs`` and
    ``freeze_last_layer_epochs`` in epochs), ``encoder``, ``head``
    (``DINOHead`` fields), ``global_augment``, ``local_augment``,
    ``compute_dtype``."""
    head = build(DINOHead, config.get("head"), dtype=compute_dtype(config))
    model = EncoderWithHead(encoder=build_encoder(config), head=head)
    steps_per_epoch = max(1, data.num_examples // max(1, data.batch_size))
    epochs = lambda key: int(round(float(config.get(key, 0.0))
                                   * steps_per_epoch))
    return build(cls, config, model=model, tx=tx, schedule=schedule,
                 mean=data.mean, std=data.std,
                 total_steps=max(1, data.num_steps),
                 teacher_temp_warmup_steps=epochs("teacher_temp_warmup_epochs"),
                 freeze_last_layer_steps=epochs("freeze_last_layer_epochs"),
                 global_augment=kwargs_for(simclr_view,
                                           config.get("global_augment")),
                 local_augment=kwargs_for(simclr_view,
                                          config.get("local_augment")))

  def _size(self, augment, image_shape):
    size = augment.get("size") or tuple(image_shape[:2])
    return (size, size) if isinstance(size, int) else tuple(size)

  def init(self, key, image_shape) -> DINOState:
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    dummy = jnp.zeros((2, *self._size(self.global_augment, image_shape),
                       image_shape[2]), jnp.float32)

    def variables(k):
      v = self.model.init(k, dummy, train=True)
      return {"params": {"net": v["params"]},
              "batch_stats": {"net": v.get("batch_stats", {})}}
    s = train_state(jax.jit(variables)(key), self.tx)
    copy = lambda tree: jax.tree.map(jnp.copy, tree)
    k = self.model.head.out_dim
    return DINOState(step=s.step, params=s.params, batch_stats=s.batch_stats,
                     opt_state=s.opt_state,
                     teacher_params=copy(s.params["net"]),
                     teacher_batch_stats=copy(s.batch_stats["net"]),
                     center=jnp.zeros((k,), jnp.float32))

  def crops(self, images, key):
    """``(global [G, B, h, w, C], local [L, B, h', w', C] or None)``,
    normalized."""
    kg, kl = jax.random.split(key)
    norm = lambda x: normalize_images(x, self.mean, self.std)
    g = norm(multi_crop(kg, images, self.num_global, **self.global_augment))
    loc = (norm(multi_crop(kl, images, self.num_local, **self.local_augment))
           if self.num_local else None)
    return g, loc

  def _forward(self, variables, crops):
    """Logits ``[V, B, K]`` of crops ``[V, B, h, w, C]`` in one pass, and
    the new BatchNorm statistics."""
    v, b = crops.shape[:2]
    (_, logits), upd = self.model.apply(
        variables, crops.reshape(v * b, *crops.shape[2:]), train=True,
        mutable=["batch_stats"])
    return logits.astype(jnp.float32).reshape(v, b, -1), upd["batch_stats"]

  def teacher_temp_at(self, step):
    return losses.dino_teacher_temperature(
        step, self.teacher_temp_warmup_steps, start=self.teacher_temp_start,
        end=self.teacher_temp)

  def momentum_at(self, step):
    return momentum_schedule(self.base_momentum, self.total_steps)(step)

  def loss(self, params, batch_stats, global_crops, local_crops, teacher,
           center, teacher_temp):
    stats = batch_stats["net"]
    student, stats = self._forward({"params": params["net"],
                                    "batch_stats": stats}, global_crops)
    if local_crops is not None:
      local, stats = self._forward({"params": params["net"],
                                    "batch_stats": stats}, local_crops)
      student = jnp.concatenate([student, local], axis=0)
    loss = losses.dino_loss(student, teacher, center,
                            teacher_temp=teacher_temp,
                            student_temp=self.student_temp)
    return loss, ({"net": stats}, student[0])

  def train_step(self, state: DINOState, images, key):
    """One DINO step on a global uint8 batch ``[N, H, W, C]``."""
    if images.ndim != 4:
      raise ValueError(f"images must be a batch [N, H, W, C]; got {images.shape}.")
    g, loc = self.crops(images, step_key(key, state))
    teacher, teacher_stats = self._forward(
        {"params": state.teacher_params,
         "batch_stats": state.teacher_batch_stats}, g)
    teacher = jax.lax.stop_gradient(teacher)
    tau = self.teacher_temp_at(state.step)
    (loss, (batch_stats, s1)), grads = jax.value_and_grad(
        self.loss, has_aux=True)(state.params, state.batch_stats, g, loc,
                                 teacher, state.center, tau)
    m = self.momentum_at(state.step)
    metrics = {"loss": loss, "teacher_temp": tau, "momentum": m,
               **health_metrics(s1)}
    new, metrics = apply_gradients(state, grads, tx=self.tx, metrics=metrics,
                                   schedule=self.schedule,
                                   batch_stats=batch_stats,
                                   teacher_batch_stats=teacher_stats,
                                   center=losses.dino_center_update(
                                       state.center, teacher,
                                       self.center_momentum))
    # The frozen last layer gets no update at all (not even weight decay),
    # as the official code's cancelled gradient (grad None) gives.
    frozen = state.step < self.freeze_last_layer_steps
    params = jax.tree_util.tree_map_with_path(
        lambda path, old, upd: jnp.where(frozen, old, upd)
        if "prototypes" in jax.tree_util.keystr(path) else upd,
        state.params, new.params)
    return new.replace(params=params, teacher_params=ema_update(
        state.teacher_params, params["net"], m)), metrics

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen student-encoder features ``[N, F]`` (BatchNorm in inference
    mode)."""
    return frozen_features(self.model, self.mean, self.std,
                           net_variables(variables_or_state), images)

  def trainable_features(self, variables, images: jax.Array, train: bool):
    """Fine-tuning's features: the student encoder
    (``ssljax.methods.twoview.net_trainable_features``)."""
    return net_trainable_features(self.model, self.mean, self.std, variables,
                                  images, train)
