"""Colorization (Zhang et al. 2016) on 32x32 crops of OpenCV's sample photos.

Launch (needs ``apt-get install opencv-doc``)::

    python experiments/pretrain.py \
        --config experiments/configs/colorization_photos.py \
        --workdir workdirs/colorization_photos

The lightness L of each crop goes through a small ResNet and a per-pixel
head that classifies the colour of every 4x4 block into the 261 in-gamut ab
bins (grid 10) with soft targets (5 nearest bins, sigma 5) and class
rebalancing (lambda 0.5, prior smoothed with sigma 5, computed from the
training crops); predictions decode with the annealed mean, T = 0.38. See
``ssljax/methods/colorization.py``. Then the colorization quality on crops
of the held-out photos (against gray and the other constant colours)::

    python experiments/colorization_photos_eval.py \
        --workdir workdirs/colorization_photos ``dataset = "opencv_photos"`` is
``ssljax.data.photos.load_photos(split)`` with its defaults (26 training
photos, every 5th group of photos held out, 256 crops of 32x32 per photo).
On a machine with internet, ``--config.dataset=cifar10`` trains on CIFAR-10
through TFDS instead.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "colorization"
  c.seed = 0
  c.dataset = "opencv_photos"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 64
  c.num_epochs = 1.0
  c.num_steps = 500                # > 0 overrides epochs

  # Sized for a CPU: 32 -> 16 -> 8 -> 4 (the stem's 32x32 map joins the
  # hypercolumn). On an accelerator: widths=(64, 128, 256), first_stage_stride=1.
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(16, 32, 64), first_stage_stride=2))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  # The per-pixel head (ssljax.models.ColorNet). Predictions at 1/4
  # resolution (8x8 for 32x32 crops), as in the paper.
  c.head = ml_collections.ConfigDict(dict(
      hidden_dim=32, out_stride=4, hypercolumn=True))
  # The method's fields (ssljax.methods.Colorization).
  c.colorization = ml_collections.ConfigDict(dict(
      grid=10.0, ab_range=110.0,             # 261 sRGB bins
      num_neighbors=5, sigma=5.0,            # soft encoding
      rebalance_lambda=0.5, prior_sigma=5.0, prior_images=4000,
      temperature=0.38,                      # annealed mean
      flip=True))

  # Zhang et al. train with Adam (beta2 0.99, weight decay 1e-3) at 3e-5 on
  # ImageNet; a small net on few photos takes a larger rate.
  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_lr=2e-3, lr_scaling="none", weight_decay=1e-4,
      warmup_epochs=0.5))

  c.log_every = 50
  c.checkpoint_every = 500
  c.keep_checkpoints = 2
  return c
