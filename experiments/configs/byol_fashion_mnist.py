"""BYOL (Grill et al. 2020) on Fashion-MNIST in the CPU budget: the
SimCLR config's ResNet, augmentation and batch, an online network with
predictor and an EMA target network.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/byol_fashion_mnist.py \
        --workdir workdirs/byol_fmnist
    python experiments/evaluate.py --workdir workdirs/byol_fmnist

From the paper: the symmetric normalized-MSE loss, stop-gradient on the
target, the cosine EMA schedule from base_momentum to 1, a 2-layer projector
and predictor with BN, LARS with weight decay 1.5e-6 (biases and BN excluded
by the optimizer's LARS mask). Scaled to 28x28 and a short CPU run: projector
and predictor 512 -> 128 (paper 4096 -> 256), base momentum 0.99 (the paper's
0.996 is for 1000 epochs; it reports 0.99 for shorter runs), base lr 0.2 x
B/256 as in the paper.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "byol"
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

  c.base_momentum = 0.99
  c.head = ml_collections.ConfigDict(dict(        # projector
      out_dim=128, hidden_dim=512, num_layers=2))
  c.predictor = ml_collections.ConfigDict(dict(
      out_dim=128, hidden_dim=512, num_layers=2))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="lars", base_lr=0.2, lr_scaling="linear", weight_decay=1.5e-6,
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
