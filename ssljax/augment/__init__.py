"""Key-first pure image augmentations, view recipes and pretext transforms
(on device).

Ops work on one ``[H, W, C]`` float32 image in [0, 1] (C = 1 or 3);
``random_*(key, image, *, ...)`` are random, ``adjust_*`` deterministic; batch
with ``jax.vmap`` over split keys or :func:`batch_apply`.
"""

from ssljax.augment.ops import (
    GRAYSCALE_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    batch_apply,
    blur_kernel_size,
    color_jitter,
    crop_and_resize,
    gaussian_blur,
    map_examples,
    random_flip_left_right,
    random_gaussian_blur,
    random_grayscale,
    random_resized_crop,
    random_solarize,
    sample_crop_box,
    to_float,
    to_grayscale,
)
from ssljax.augment.pretext import (
    CENTER_CELL,
    NEIGHBOR_CELLS,
    assemble_tiles,
    extract_tiles,
    jigsaw_batch,
    normalize_tiles,
    random_grid_tiles,
    random_jigsaw,
    random_patch_pair,
    relative_position_batch,
    rotations,
    sample_tile_offsets,
    shuffle_tiles,
)
from ssljax.augment.views import simclr_view, simclr_views

__all__ = [
    "CENTER_CELL",
    "GRAYSCALE_WEIGHTS",
    "NEIGHBOR_CELLS",
    "assemble_tiles",
    "extract_tiles",
    "jigsaw_batch",
    "normalize_tiles",
    "random_grid_tiles",
    "random_jigsaw",
    "random_patch_pair",
    "relative_position_batch",
    "rotations",
    "sample_tile_offsets",
    "shuffle_tiles",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "batch_apply",
    "blur_kernel_size",
    "color_jitter",
    "crop_and_resize",
    "gaussian_blur",
    "map_examples",
    "random_flip_left_right",
    "random_gaussian_blur",
    "random_grayscale",
    "random_resized_crop",
    "random_solarize",
    "sample_crop_box",
    "simclr_view",
    "simclr_views",
    "to_float",
    "to_grayscale",
]
