"""Shared parts of the classification pretext tasks (rotation, jigsaw,
relative patch position): their network, their tile geometry and one train
step.

Each task turns a uint8 batch into ``(inputs, labels)`` on device (its
``task`` method) and trains ``encoder + head`` (a
:class:`~ssljax.models.TileClassifier`) with softmax cross-entropy on the
pretext labels; the frozen ``encoder`` is what evaluation uses::

    method = Rotation.from_config(config, tx=tx, schedule=schedule, data=spec)
    # or: Rotation(model=TileClassifier(encoder, ProjectionMLP(out_dim=4)), tx=...)
    state = method.init(jax.random.key(0), (28, 28, 1))        # a TrainState
    step = jax.jit(method.train_step, donate_argnums=0)
    state, metrics = step(state, images_uint8, data_key)   # metrics["loss"], ...

``train_step`` folds ``state.step`` into ``data_key``, so a resumed run draws
the same pretext examples an uninterrupted one would.

Config sections (one-to-one onto the fields): ``encoder``, ``head`` (a
``ProjectionMLP`` without ``out_dim``: the task fixes the number of classes)
and the task's own section (``augment`` for rotation, ``jigsaw``, ``relpos``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax.augment import normalize_images, normalize_tiles, to_float
from ssljax.config import check
from ssljax.losses import classification_metrics
from ssljax.methods.base import (Method, TrainState, build_encoder, build_head,
                                 encoder_variables, loss_step, step_key,
                                 train_state)
from ssljax.models import TileClassifier

__all__ = ["PretextMethod", "TilePretextMethod", "pretext_model"]


def pretext_model(config, *, num_classes: int, what: str,
                  groups: tuple[tuple[int, ...], ...] | None = None
                  ) -> TileClassifier:
  """The :class:`TileClassifier` of a config: ``config.encoder`` and the
  ``ProjectionMLP`` of ``config.head`` with ``out_dim = num_classes`` (``what``
  names the classes in the message when the config sets ``head.out_dim``)."""
  head = config.get("head")
  if head is not None and "out_dim" in head:
    head.problem("out_dim", head.get("out_dim"),
                 f"set by the task: the number of classes, {num_classes} "
                 f"{what}; remove it")
  return TileClassifier(encoder=build_encoder(config),
                        head=build_head(config, out_dim=num_classes),
                        groups=groups)


@dataclasses.dataclass(frozen=True)
class PretextMethod(Method):
  """Base of the pretext classifiers: subclasses define ``task`` (uint8
  images + key -> ``(inputs, labels)``), ``metric_name`` and
  ``num_classes``.

  Attributes:
    model: a :class:`~ssljax.models.TileClassifier` (or any module with
      ``__call__(inputs, train)`` -> logits and ``encode(x, train)``).
    tx: the optax optimizer.
    mean, std: per-channel input normalization (of images / tiles not
      normalized one by one).
    schedule: the learning-rate schedule, only to report ``lr`` in metrics.
  """
  model: nn.Module
  tx: optax.GradientTransformation
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)
  schedule: Callable[[jax.Array], jax.Array] | None = None

  metric_name: ClassVar[str] = "task_acc"

  def task(self, images: jax.Array, key: jax.Array):
    raise NotImplementedError

  def init(self, key: jax.Array, image_shape: Sequence[int]) -> TrainState:
    """Parameters, BN statistics and optimizer state for ``[H, W, C]`` images."""
    if len(image_shape) != 3:
      raise ValueError(f"image_shape must be (H, W, C); got {tuple(image_shape)}.")
    inputs, _ = jax.eval_shape(
        self.task, jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8),
        jax.random.key(0))
    dummy = jnp.zeros(inputs.shape, inputs.dtype)
    # Not jitted: on XLA:CPU compiling the (truncated-normal) initializers
    # dominates, and op by op the compiled initializers are cached per
    # parameter shape, so models sharing layer shapes initialize quickly.
    return train_state(self.model.init(key, dummy, train=True), self.tx)

  def loss(self, params, batch_stats, inputs, labels):
    """Cross-entropy of the pretext labels; returns ``(loss, (batch_stats,
    accuracy))``."""
    logits, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, inputs, train=True,
        mutable=["batch_stats"])
    loss, acc = classification_metrics(logits, labels)
    return loss, (updates["batch_stats"], acc)

  def train_step(self, state: TrainState, images: jax.Array, key: jax.Array
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step on a global uint8 batch ``[N, H, W, C]``.

    Pure: jit it with ``donate_argnums=0``. The step's pretext examples come
    from ``fold_in(key, state.step)``. Metrics: ``loss``, the task accuracy
    (``metric_name``) and ``lr``.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be a batch [N, H, W, C] with C in {{1, 3}}; "
                       f"got {images.shape}.")
    inputs, labels = self.task(images, step_key(key, state))
    return loss_step(self, state, inputs, labels, metrics=lambda loss, acc: {
        "loss": loss, self.metric_name: acc})

  def preprocess(self, images: jax.Array) -> jax.Array:
    """Whole images as the encoder sees them at evaluation: float, then
    normalized with the dataset's ``mean`` / ``std``."""
    return normalize_images(to_float(images), self.mean, self.std)

  def encode(self, variables_or_state, images: jax.Array) -> jax.Array:
    """Frozen-encoder features ``[N, F]`` of whole uint8 or [0, 1] float
    images (BatchNorm in inference mode)."""
    return self.model.apply(encoder_variables(variables_or_state),
                            self.preprocess(images), train=False,
                            method=type(self.model).encode)


def _size_hw(size) -> tuple[int, int] | None:
  """``(h, w)`` of a resize ``size`` (an int or a pair), None if malformed."""
  try:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    return hw if len(hw) == 2 and all(isinstance(v, int) for v in hw) else None
  except TypeError:
    return None


def _tile_ok(tile, cell: int) -> bool:
  return isinstance(tile, int) and 1 <= tile <= cell


@dataclasses.dataclass(frozen=True)
class TilePretextMethod(PretextMethod):
  """A pretext task on a lattice of tiles (jigsaw, relative position).

  Tile geometry (:mod:`ssljax.augment.pretext`): the image is resized to
  ``size`` (None or 0: kept), a ``grid x grid`` lattice of ``cell``-pixel
  cells sits at a random offset in it, one ``tile x tile`` tile at a random
  place in each cell, at least ``min_gap`` pixels from its horizontal and
  vertical neighbours.

  Attributes (besides :class:`PretextMethod`'s):
    cell, tile, size: that geometry.
    min_gap: the least gap in pixels between horizontally or vertically
      neighbouring tiles (``tile + min_gap <= cell``): every tile's offset
      in its cell is drawn from ``[min_gap // 2, cell - tile - (min_gap -
      min_gap // 2)]`` (the same range in every cell), so neighbouring gaps
      lie in ``[min_gap, 2 * (cell - tile) - min_gap]``, mean ``cell -
      tile``. 0 (default): the offsets are those drawn before the field
      existed, bit for bit (gaps ``0 .. 2 * (cell - tile)``).
    normalize: normalize every tile on its own (and, at evaluation, every
      whole image); False uses the dataset ``mean`` / ``std``.
    eps: variance floor of that normalization.
    image_shape: the training images' ``(H, W, C)`` when known
      (``from_config``: the dataset's): the lattice is then checked to fit
      when the method is made; otherwise when the step is traced.
  """
  cell: int = 9
  tile: int = 7
  size: int | None = None
  normalize: bool = True
  eps: float = 1e-3
  min_gap: int = 0
  image_shape: tuple[int, ...] | None = None

  def __post_init__(self):
    if not self.size:
      object.__setattr__(self, "size", None)
    check(self, *self.task_rules(), *self.tile_rules(self.lattice))

  @property
  def lattice(self) -> int:
    """The side of the lattice (3; jigsaw: its ``grid``)."""
    return 3

  def task_rules(self) -> tuple:
    """The task's own :func:`ssljax.config.check` rules."""
    return ()

  def tile_rules(self, grid: int) -> tuple:
    """:func:`ssljax.config.check` rules of the geometry of a ``grid x grid``
    lattice: ``size``, ``cell`` (the lattice fits the (resized) images),
    ``tile`` (fits its cell), ``min_gap`` (``tile + min_gap <= cell``),
    ``eps``."""
    shape = self.image_shape
    side, where = None, "the images"
    if self.size is not None:
      hw = _size_hw(self.size)
      if hw is not None:
        side = min(hw)
        where = f"the {hw[0]}x{hw[1]} images (resized to size={self.size})"
    elif shape is not None and None not in tuple(shape)[:2]:
      side, where = min(shape[:2]), f"the {shape[0]}x{shape[1]} images"
    cell = self.cell if isinstance(self.cell, int) and self.cell >= 1 else 0
    return (
        ("size", lambda s: s is None or min(_size_hw(s) or (0,)) >= 1,
         "the side the images are resized to before tiling: an integer >= 1, "
         "or 0 / None to keep them"),
        ("cell", cell >= 1 and (side is None or grid * cell <= side),
         f"a {grid}x{grid} lattice of {cell}-pixel cells ({grid * cell} "
         f"pixels) does not fit in {where}: use a cell of at most "
         f"{(side or 0) // grid} pixels, or resize the images first (size >= "
         f"{grid * cell})" if cell else "the cell side in pixels: an integer "
         ">= 1 (each cell holds one tile)"),
        ("tile", lambda t: _tile_ok(t, cell),
         f"must lie in [1, cell ({self.cell})]: each tile sits inside its "
         f"cell, e.g. {max(1, cell - 2)}"),
        ("min_gap", lambda g: isinstance(g, int) and g >= 0 and (
            not _tile_ok(self.tile, cell) or self.tile + g <= cell),
         f"the least gap in pixels between neighbouring tiles: an integer "
         f">= 0 with tile + min_gap <= cell ({self.tile} + min_gap <= "
         f"{self.cell}), i.e. at most {max(0, cell - self.tile)}"
         if _tile_ok(self.tile, cell) else "the least gap in pixels between "
         "neighbouring tiles: an integer >= 0 with tile + min_gap <= cell"),
        ("eps", lambda e: e > 0, "the variance floor of the per-tile "
         "normalization: > 0, e.g. 1e-3"))

  def tiles_for_encoder(self, tiles: jax.Array) -> jax.Array:
    """Tiles normalized one by one already, or now with ``mean`` / ``std``."""
    return tiles if self.normalize else normalize_images(tiles, self.mean,
                                                         self.std)

  def preprocess(self, images: jax.Array) -> jax.Array:
    """Whole images as the encoder sees them at evaluation: float, then
    standardized one by one (as the tiles were) or with ``mean`` / ``std``."""
    if self.normalize:
      return normalize_tiles(to_float(images), eps=self.eps)
    return super().preprocess(images)
