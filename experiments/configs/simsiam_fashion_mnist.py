"""SimSiam (Chen & He 2021) on Fashion-MNIST in the CPU budget: the SimCLR
config's ResNet, augmentation and batch, a projector with BN on its output
and a bottleneck predictor, stop-gradient on the target branch.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/simsiam_fashion_mnist.py \
        --workdir workdirs/simsiam_fmnist
    python experiments/evaluate.py --workdir workdirs/simsiam_fmnist

From the paper's CIFAR-10 recipe (its appendix D): a 2-layer projector with
BN on the output, a predictor with a 4x bottleneck, SGD momentum 0.9, base lr
0.03 x B/256 with cosine decay (0.05 on ImageNet), weight decay 5e-4 (1e-4
on ImageNet). Widths
scaled to 512 (paper 2048) and a bottleneck of 128 (paper 512). The base lr
is 0.3 x B/256, chosen on the validation split from 0.03 (the CIFAR
recipe), 0.1, 0.2, 0.3 and 0.5 at this budget (10 epochs;
benchmarks/results/simsiam_trials_validation.json: linear 86.98% / kNN
79.22% against 80.78% / 69.90% for 0.03); the first run, with 0.03, is
benchmarks/results/simsiam_s0_first_recipe.json.
--config.stop_gradient=False reproduces the paper's collapse experiment.
"""

import os

import ml_collections

from ssljax.train.build import load_config_file


def get_config():
  """simclr_fashion_mnist.py's data, encoder, augmentation, logging and
  evaluation settings, with this method's own."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  c.method = "simsiam"
  del c["temperature"]
  c.head = ml_collections.ConfigDict(dict(
      final_bn=True,
      hidden_dim=512,
      num_layers=2,
      out_dim=512))
  c.monitor = ml_collections.ConfigDict(dict(
      batch_size=1000,
      every=100,
      k=200,
      num_test=1000,
      num_train=5000,
      t=0.1))
  c.num_epochs = 10.0
  c.optimizer = ml_collections.ConfigDict(dict(
      base_lr=0.3,
      lr_scaling="linear",
      momentum=0.9,
      name="sgd",
      warmup_epochs=0.0,
      weight_decay=0.0005))
  c.predictor = ml_collections.ConfigDict(dict(
      hidden_dim=128,
      num_layers=2,
      out_dim=512))
  c.stop_gradient = True
  return c
