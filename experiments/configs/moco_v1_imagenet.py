"""MoCo v1 on ImageNet, the paper's recipe (He et al. 2020, sec. 3.3 and 4.1):
ResNet-50, linear head to 128-d, K = 65536, m = 0.999, T = 0.07, batch 256,
SGD lr 0.03 (momentum 0.9, wd 1e-4), 200 epochs with the lr x0.1 at epochs 120
and 160, Shuffle BN; augmentation: 224x224 crops of 20-100% area, flip,
colour jitter, grayscale p = 0.2, no blur.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/moco_v1_imagenet.py --workdir workdirs/moco_v1_in

Notes:
* ``pretrain`` keeps the dataset in memory (``ssljax.data.load``), which needs
  fixed-size images; full-resolution ImageNet needs the streaming input
  (``ssljax.data.tfds_batches``), which the loop does not use yet. The recipe
  runs as is on a fixed-size ImageNet variant (``--config.dataset=...``).
* v1 jitters with (0.4, 0.4, 0.4, 0.4) always; ``ssljax.augment.simclr_view``
  ties the four to one strength as (0.8s, 0.8s, 0.8s, 0.2s), so s = 0.5 gives
  hue 0.1 (MoCo v2's value) instead of 0.4.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "moco"
  c.seed = 0
  c.dataset = "imagenet2012"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 256
  c.num_epochs = 200.0
  c.num_steps = 0
  c.temperature = 0.07

  c.moco = ml_collections.ConfigDict(dict(
      queue_size=65536, momentum=0.999, momentum_schedule="constant",
      shuffle_bn=True, bn_splits=1))

  c.encoder = ml_collections.ConfigDict(dict(name="resnet50", stem="imagenet"))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  c.head = ml_collections.ConfigDict(dict(out_dim=128, num_layers=1))

  c.augment = ml_collections.ConfigDict(dict(
      size=224, area_range=(0.2, 1.0), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=1.0, grayscale_p=0.2, blur_p=0.0))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=1e-4,
      momentum=0.9, warmup_epochs=0.0, schedule="step",
      decay_epochs=(120, 160), decay_factor=0.1))

  c.log_every = 100
  c.checkpoint_every = 5000
  c.keep_checkpoints = 2

  c.eval = ml_collections.ConfigDict(dict(
      knn_k=200, knn_t=0.1, linear_epochs=100, linear_lr=0.1,
      linear_weight_decay=1e-4, linear_batch_size=1024, feature_batch_size=1000))
  return c
