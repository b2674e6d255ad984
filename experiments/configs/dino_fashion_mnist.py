"""DINO (Caron et al. 2021) on Fashion-MNIST in the CPU budget: the SimCLR
config's ResNet and batch, a student and an EMA teacher with the DINO head,
multi-crop (2 global + 4 local crops, drawn on device), centring and
sharpening.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/dino_fashion_mnist.py \
        --workdir workdirs/dino_fmnist
    python experiments/evaluate.py --workdir workdirs/dino_fmnist

From the paper and its official code's defaults: student temperature 0.1,
teacher temperature 0.04 (the code's default; the paper warms it up to 0.07,
--config.teacher_temp=0.07 --config.teacher_temp_warmup_epochs=...), centre
momentum 0.9, the last layer frozen for the first epoch, AdamW with base lr
5e-4 x B/256 and weight decay 0.04, warm-up then cosine. Scaled to 28x28 and
a short CPU run: global crops of 40-100% at 28x28 and local crops of 10-40%
at 12x12 (paper 32-100% at 224 and 5-32% at 96), 4 local crops (paper 6-10),
a head 512 -> 128 -> 1024 prototypes (paper 2048 -> 256 -> 65,536), teacher
momentum 0.99 (paper 0.996 for long runs).
"""

import os

import ml_collections

from ssljax.train.build import load_config_file


def get_config():
  """simclr_fashion_mnist.py's data, encoder, augmentation, logging and
  evaluation settings, with this method's own."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  c.method = "dino"
  del c["temperature"]
  c.base_momentum = 0.99
  c.center_momentum = 0.9
  c.freeze_last_layer_epochs = 1.0
  c.global_augment = ml_collections.ConfigDict(dict(
      c.augment, area_range=(0.4, 1.0), size=28))
  c.head = ml_collections.ConfigDict(dict(
      bottleneck_dim=128,
      hidden_dim=512,
      norm_last_layer=True,
      num_layers=3,
      out_dim=1024,
      use_bn=False))
  c.local_augment = ml_collections.ConfigDict(dict(
      c.augment, area_range=(0.1, 0.4), size=12))
  c.monitor = ml_collections.ConfigDict(dict(
      batch_size=1000,
      every=100,
      k=200,
      num_test=1000,
      num_train=5000,
      t=0.1))
  c.num_epochs = 10.0
  c.num_global = 2
  c.num_local = 4
  c.optimizer = ml_collections.ConfigDict(dict(
      base_lr=0.0005,
      lr_scaling="linear",
      name="adamw",
      warmup_epochs=1.0,
      weight_decay=0.04))
  c.student_temp = 0.1
  c.teacher_temp = 0.04
  c.teacher_temp_start = 0.04
  c.teacher_temp_warmup_epochs = 0.0
  del c["augment"]          # global_augment / local_augment instead
  return c
