"""Video colorization (Vondrick et al. 2018) on the opencv-doc videos, then
colorization of held-out frames and tracking by label propagation.

Launch (needs ``apt-get install opencv-doc``; 4.6 min of training on 2
shared CPU cores, then 1.6 min of evaluation:
benchmarks/results/video_colorization_eval.json)::

    python experiments/pretrain.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization
    python experiments/video_colorization.py \
        --workdir workdirs/video_colorization \
        --out benchmarks/results/video_colorization_eval.json

Overrides on the command line, e.g. ``--config.num_steps=100``.

``dataset = "opencv_videos"`` is ``ssljax.data.video.load_clips(split)``
with its defaults: frames resized to 96 pixels wide (72x96 for all three
videos), clips of 3 reference frames and a target, 2 frames apart (824
training clips); held out: all of tree.avi, and the last 20% of vtest.avi
and Megamind.avi (after an 8-frame gap). A small CNN gives 64-d embeddings
at 1/4 resolution (18x24); colours are 16 k-means clusters of the training
frames' ab (pooled to 1/4). Training uses random 48x64 crops (the same
window in all frames of a clip) to fit a CPU budget; evaluation uses whole
frames.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "video_colorization"
  c.seed = 0
  c.dataset = "opencv_videos"
  c.data_dir = ""                        # default: opencv-doc's examples/data
  c.batch_size = 16
  c.num_steps = 400

  # The per-frame network (ssljax.models.EmbeddingNet).
  c.encoder = ml_collections.ConfigDict(dict(
      name="embedding_net", widths=(16, 32, 64), dilations=(2, 4),
      embed_dim=64, groups=8))
  # The method's fields (ssljax.methods.VideoColorization).
  c.video_colorization = ml_collections.ConfigDict(dict(
      num_clusters=16,
      temperature=1.0, test_temperature=0.5,       # the paper's
      # Blocks of 96 of the 192 target pixels of a 48x64 crop (432 at 72x96).
      block_size=96,
      crop_size=(48, 64), flip=True))
  # AdamW 1e-3, 20 warm-up steps (of the 51 per epoch of the 824 training
  # clips), then cosine.
  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_lr=1e-3, lr_scaling="none", weight_decay=1e-4,
      warmup_epochs=20 / 51))

  c.log_every = 25
  c.checkpoint_every = 200
  c.keep_checkpoints = 2
  return c
