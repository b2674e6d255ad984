"""MoCo on CIFAR-10, the official CIFAR recipe (the MoCo repository's
``moco_cifar10_demo`` notebook): ResNet-18 with the CIFAR stem, linear head to
128-d, K = 4096, m = 0.99, T = 0.1, batch 512, SGD lr 0.06 (momentum 0.9, wd
5e-4), cosine schedule, 200 epochs, split BN over 8 sub-batches of the shuffled
keys on one device (Shuffle BN over the devices when there are several), and
the weighted-kNN monitor (k = 200, t = 0.1, the whole training set as the
memory bank) every epoch.

Launch (CIFAR-10 comes from TFDS)::

    python experiments/pretrain.py \
        --config experiments/configs/moco_cifar10.py --workdir workdirs/moco_cifar10
    python experiments/linear_eval.py --workdir workdirs/moco_cifar10
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "moco"
  c.seed = 0
  c.dataset = "cifar10"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 512
  c.num_epochs = 200.0
  c.num_steps = 0
  c.temperature = 0.1

  c.moco = ml_collections.ConfigDict(dict(
      queue_size=4096, momentum=0.99, momentum_schedule="constant",
      shuffle_bn=True, bn_splits=8))

  c.encoder = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar"))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  c.head = ml_collections.ConfigDict(dict(out_dim=128, num_layers=1))

  # RandomResizedCrop(32) (area 0.08-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8,
  # grayscale p=0.2, flip; no blur.
  c.augment = ml_collections.ConfigDict(dict(
      area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=0.8, grayscale_p=0.2, blur_p=0.0))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.06, lr_scaling="none", weight_decay=5e-4,
      momentum=0.9, warmup_epochs=0.0, schedule="cosine"))

  c.monitor = ml_collections.ConfigDict(dict(
      every=97, num_train=50000, num_test=10000, k=200, t=0.1,
      batch_size=1000))              # every = one epoch (50000 // 512 steps)

  c.log_every = 50
  c.checkpoint_every = 1000
  c.keep_checkpoints = 2

  c.eval = ml_collections.ConfigDict(dict(
      knn_k=200, knn_t=0.1, linear_epochs=100, linear_lr=0.1,
      linear_weight_decay=1e-4, linear_batch_size=1024, feature_batch_size=1000))
  return c
