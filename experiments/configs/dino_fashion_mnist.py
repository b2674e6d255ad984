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

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "dino"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 256
  c.num_epochs = 10.0
  c.num_steps = 0                   # > 0 overrides num_epochs

  c.num_global = 2
  c.num_local = 4
  c.student_temp = 0.1
  c.teacher_temp = 0.04
  c.teacher_temp_start = 0.04
  c.teacher_temp_warmup_epochs = 0.0
  c.center_momentum = 0.9
  c.base_momentum = 0.99
  c.freeze_last_layer_epochs = 1.0

  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(16, 64, 256), first_stage_stride=2,
      conv_impl="auto", out_width=512))
  c.head = ml_collections.ConfigDict(dict(
      out_dim=1024, hidden_dim=512, bottleneck_dim=128, num_layers=3,
      use_bn=False, norm_last_layer=True))
  c.global_augment = ml_collections.ConfigDict(dict(
      size=28, area_range=(0.4, 1.0), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=0.8, grayscale_p=0.0, blur_p=0.0))
  c.local_augment = ml_collections.ConfigDict(dict(
      size=12, area_range=(0.1, 0.4), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=0.8, grayscale_p=0.0, blur_p=0.0))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw", base_lr=5e-4, lr_scaling="linear", weight_decay=0.04,
      warmup_epochs=1.0))

  c.monitor = ml_collections.ConfigDict(dict(   # online kNN (knn_acc)
      every=100, num_train=5000, num_test=1000, k=200, t=0.1,
      batch_size=1000))
  c.log_every = 20
  c.checkpoint_every = 200
  c.keep_checkpoints = 2
  c.eval = ml_collections.ConfigDict(dict(
      knn_k=200, knn_t=0.1, linear_epochs=100, linear_lr=0.5,
      linear_weight_decay=(1e-5, 1e-4, 1e-3), linear_batch_size=1024,
      feature_batch_size=1000))
  return c
