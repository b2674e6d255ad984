"""Data: sources (local IDX files, scikit-learn, TFDS), host pipelines, global arrays.

Importing ``ssljax.data`` does not import TensorFlow or TFDS; they are imported
inside the functions that use them (:func:`load` for TFDS names,
:func:`tfds_batches`, :func:`info` for names without built-in facts).

Typical use::

    ds = ssljax.data.load("fashion_mnist", "train")
    mesh = ssljax.parallel.make_data_mesh()
    it = ssljax.data.batches(ds, batch_size=256, seed=0, start_step=state.step)
    for batch in ssljax.data.device_prefetch(ssljax.data.prefetch(it), mesh):
      state, metrics = train_step(state, batch)   # batch: global jax.Arrays
"""

from ssljax.data.colour import (COLOUR_CROPS, ColourCrops, ColourSource,
                                colour_source_names, colour_sources,
                                load_colour_crops)
from ssljax.data.dataset import ArrayDataset, DatasetNotAvailableError, fingerprint
from ssljax.data.pipeline import (
    batches,
    device_prefetch,
    epoch_permutation,
    prefetch,
    steps_per_epoch,
    to_global,
)
from ssljax.data.photos import OPENCV_PHOTOS, PHOTOS_DIR, find_photos, load_photos
from ssljax.data.sources import (
    CLASS_NAMES,
    class_names,
    DATA_DIR_ENV,
    DIGITS_TRAIN_SIZE,
    DatasetInfo,
    channel_stats,
    info,
    load,
    read_idx,
    tfds_batches,
    to_uint8_images,
)
from ssljax.data.splits import VALIDATION_FRACTION, holdout
from ssljax.data.speech import SpokenWords
from ssljax.data.speech import (
    EspeakNotFoundError,
    SpeechDataset,
    espeak_available,
    spoken_words,
)

from ssljax.data.video import (OPENCV_VIDEOS, OPENCV_VIDEOS_DATASET,
                               VIDEOS_DIR, ClipDataset, VideoSplits,
                               clip_batches, load_clips, load_davis, load_opencv_videos,
                               load_video, read_video, sample_clips,
                               split_videos)

__all__ = [
    "OPENCV_VIDEOS", "VIDEOS_DIR", "VideoSplits", "clip_batches", "load_davis",
    "load_opencv_videos", "load_video", "read_video", "sample_clips",
    "split_videos", "ClipDataset", "OPENCV_VIDEOS_DATASET", "load_clips",
    "COLOUR_CROPS", "ColourCrops", "ColourSource", "colour_source_names",
    "colour_sources", "load_colour_crops",
    "ArrayDataset",
    "fingerprint",
    "VALIDATION_FRACTION",
    "holdout",
    "CLASS_NAMES",
    "class_names",
    "DATA_DIR_ENV",
    "DIGITS_TRAIN_SIZE",
    "DatasetInfo",
    "DatasetNotAvailableError",
    "EspeakNotFoundError",
    "SpeechDataset",
    "espeak_available",
    "spoken_words",
    "OPENCV_PHOTOS",
    "PHOTOS_DIR",
    "find_photos",
    "load_photos",
    "batches",
    "channel_stats",
    "device_prefetch",
    "epoch_permutation",
    "info",
    "load",
    "prefetch",
    "read_idx",
    "steps_per_epoch",
    "tfds_batches",
    "to_global",
    "to_uint8_images",
]

#: Datasets whose ``config.data`` section holds their options: the name ->
#: its dataclass (fields = the section's keys; ``load(split)``,
#: ``input_shape``, ``dtype``, ``num_classes``, ``num_examples(split)``).
DATA_OPTIONS = {SpokenWords.name: SpokenWords}
