"""Colorization (Zhang et al. 2016) on 32x32 crops of all the colour data of
this machine: ``dataset = "colour_crops"`` (``ssljax/data/colour.py``: every
opencv-doc colour photo, scikit-image's colour samples and every frame of
every opencv-doc video, held out by source).

Launch (needs ``apt-get install opencv-doc`` and ``pip install
scikit-image``)::

    python experiments/pretrain.py \
        --config experiments/configs/colorization_colour_crops.py \
        --workdir workdirs/colorization_colour_crops
    python experiments/evaluate.py --workdir workdirs/colorization_colour_crops

The network, loss and decoding are ``colorization_photos.py``'s (a small
ResNet on L, a per-pixel head over 261 ab bins at 1/4 resolution, soft
targets, class rebalancing lambda 0.5, annealed mean T = 0.38). The training
split is 33 sources, 33,792 crops (1,024 per still image, at least 1,024 per
video; ``ssljax.data.colour``); the validation split (4 sources) is the
dataset's own.

Budget: sized to about 45 minutes on a 2-core CPU. A 20-step run of this
config went at about 500-550 crops/s (about 0.12 s a step of 64 crops; the
machine was also running other jobs), so 19,000 steps (about 36 epochs)
take about 40 minutes, plus about half a minute to load the crops and
compile.

``experiments/evaluate.py`` then writes ``method_eval.json``
(``ssljax.eval.by_method``): the colorization quality on the 8 test sources
(AuC raw and rebalanced, PSNR; trained, random init, gray, training mean ab
and mode bin), a picture of held-out crops, and the frozen L-encoder's
features (``ssljax.eval.colour_features``): linear probes for Fashion-MNIST
and for source identification on the test sources, against random init and
raw pixels.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "colorization"
  c.seed = 0
  c.dataset = "colour_crops"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 64
  c.num_epochs = 1.0
  c.num_steps = 19000              # > 0 overrides epochs

  # Sized for a CPU: 32 -> 16 -> 8 -> 4 (the stem's 32x32 map joins the
  # hypercolumn). On an accelerator: widths=(64, 128, 256), first_stage_stride=1.
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(16, 32, 64), first_stage_stride=2))
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

  c.log_every = 100
  c.checkpoint_every = 2000
  c.keep_checkpoints = 2
  return c
