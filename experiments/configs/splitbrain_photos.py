"""Split-brain autoencoder (Zhang et al. 2017) on 32x32 crops of OpenCV's
sample photos.

Launch (needs ``apt-get install opencv-doc``)::

    python experiments/pretrain.py \
        --config experiments/configs/splitbrain_photos.py \
        --workdir workdirs/splitbrain_photos

Two disjoint networks, each a small ResNet (half the colorization config's
widths, as the paper splits every layer in two) with a per-pixel head: L ->
ab (261 ab bins, soft targets, no class rebalancing by default) and ab -> L
(50 L bins of width 2, cross-entropy); one step trains both on the sum of
the losses, and ``encode`` concatenates the two encoders' features. See
``ssljax/methods/colorization.py``. Then the held-out losses (against the
training marginals)::

    python experiments/colorization_photos_eval.py \
        --workdir workdirs/splitbrain_photos
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "splitbrain"
  c.seed = 0
  c.dataset = "opencv_photos"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 64
  c.num_epochs = 1.0
  c.num_steps = 300                # > 0 overrides epochs

  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(8, 16, 32), first_stage_stride=2))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  # The per-pixel head of both halves (ssljax.models.ColorNet).
  c.head = ml_collections.ConfigDict(dict(
      hidden_dim=16, out_stride=4, hypercolumn=True))
  # The method's fields (ssljax.methods.SplitBrain).
  c.colorization = ml_collections.ConfigDict(dict(
      grid=10.0, ab_range=110.0, num_neighbors=5, sigma=5.0,
      rebalance_lambda=1.0,                  # 1.0: no class rebalancing
      prior_sigma=5.0, prior_images=4000,
      temperature=0.38, num_l_bins=50, flip=True))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_lr=2e-3, lr_scaling="none", weight_decay=1e-4,
      warmup_epochs=0.5))

  c.log_every = 50
  c.checkpoint_every = 300
  c.keep_checkpoints = 2
  return c
