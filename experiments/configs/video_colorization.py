"""Video colorization (Vondrick et al. 2018) on the opencv-doc videos, then
colorization of held-out frames and tracking by label propagation.

Launch (needs ``apt-get install opencv-doc``; ~5 min training on 2 CPU
cores, then ~1.5 min of evaluation; 421 s in all on 2026-11-29)::

    python experiments/video_colorization.py \
        --config experiments/configs/video_colorization.py \
        --workdir workdirs/video_colorization

Overrides on the command line, e.g. ``--config.num_steps=100``.

Frames are resized to 96 pixels wide (72x96 for all three videos); a small
CNN gives 64-d embeddings at 1/4 resolution (18x24); clips are 3 reference
frames and a target, 2 frames apart; colours are 16 k-means clusters of the
training frames' ab (pooled to 1/4). Training uses random 48x64 crops (the
same window in all frames of a clip) to fit a CPU budget; evaluation uses
whole frames. Held out: all of tree.avi, and the last 20% of vtest.avi and
Megamind.avi (after an 8-frame gap).
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "video_colorization"
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      data_dir="",                      # default: opencv-doc's examples/data
      names=("Megamind.avi", "tree.avi", "vtest.avi"),
      width=96, multiple=8,
      holdout=("tree.avi",), test_fraction=0.2, gap=8,
      cache_dir=""))                    # default: ~/.cache/ssljax/videos
  c.clips = ml_collections.ConfigDict(dict(num_refs=3, stride=2))
  c.batch_size = 16
  c.num_steps = 400

  c.model = ml_collections.ConfigDict(dict(
      widths=(16, 32, 64), dilations=(2, 4), embed_dim=64, groups=8))
  c.video = ml_collections.ConfigDict(dict(
      num_clusters=16,
      temperature=1.0, test_temperature=0.5,       # the paper's
      # Blocks of 96 of the 192 target pixels of a 48x64 crop (432 at 72x96).
      block_size=96,
      crop=(48, 64), flip=True))
  c.optimizer = ml_collections.ConfigDict(dict(
      base_lr=1e-3, warmup_steps=20, weight_decay=1e-4))

  c.eval = ml_collections.ConfigDict(dict(
      clip_every=2,                      # every 2nd held-out target frame
      batch_size=32,
      # --eval_gaps: every gap_every-th target frame with all references at
      # the largest gap (the same targets at every gap)
      gap_every=1,
      # tracking: photo crops pasted on held-out frames, moving smoothly
      num_sequences=16, length=24, frame_stride=1,
      object_size=(20, 30), max_speed=3.0,
      topk=10, radius=4, num_prev=3,     # propagation options
      png_frames=6))
  c.log_every = 25
  return c
