"""VICReg (Bardes et al. 2022) on Fashion-MNIST in the CPU budget: the
SimCLR config's ResNet, augmentation and batch, a 3-layer expander, the
invariance / variance / covariance loss over the global batch.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/vicreg_fashion_mnist.py \
        --workdir workdirs/vicreg_fmnist
    python experiments/evaluate.py --workdir workdirs/vicreg_fmnist

From the paper: weights 25 / 25 / 1, eps 1e-4, a 3-layer expander with BN,
LARS with weight decay 1e-6 and base lr 0.2 x B/256, warm-up then cosine.
Expander widths scaled to 1024 (paper 8192).
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "vicreg"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 256
  c.num_epochs = 10.0
  c.num_steps = 0                   # > 0 overrides num_epochs

  # simclr_fashion_mnist.py's encoder and augmentation (28x28 grayscale:
  # crops of 60-100%, flip, brightness/contrast jitter, no blur).
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(16, 64, 256), first_stage_stride=2,
      conv_impl="auto", out_width=512))
  c.augment = ml_collections.ConfigDict(dict(
      area_range=(0.6, 1.0), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=0.8, grayscale_p=0.0, blur_p=0.0))

  c.sim_coeff = 25.0
  c.std_coeff = 25.0
  c.cov_coeff = 1.0
  c.head = ml_collections.ConfigDict(dict(        # expander
      out_dim=1024, hidden_dim=1024, num_layers=3))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.2, lr_scaling="linear", weight_decay=1e-6,
      momentum=0.9, trust_coefficient=1e-3, warmup_epochs=0.5))

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
