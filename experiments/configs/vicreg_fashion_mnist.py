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

import os

import ml_collections

from ssljax.train.build import load_config_file


def get_config():
  """simclr_fashion_mnist.py's data, encoder, augmentation, logging and
  evaluation settings, with this method's own."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  c.method = "vicreg"
  del c["temperature"]
  c.cov_coeff = 1.0
  c.head = ml_collections.ConfigDict(dict(
      hidden_dim=1024,
      num_layers=3,
      out_dim=1024))
  c.monitor = ml_collections.ConfigDict(dict(
      batch_size=1000,
      every=100,
      k=200,
      num_test=1000,
      num_train=5000,
      t=0.1))
  c.num_epochs = 10.0
  c.optimizer = ml_collections.ConfigDict(dict(
      base_lr=0.2,
      lr_scaling="linear",
      momentum=0.9,
      name="lars",
      trust_coefficient=0.001,
      warmup_epochs=0.5,
      weight_decay=1e-06))
  c.sim_coeff = 25.0
  c.std_coeff = 25.0
  return c
