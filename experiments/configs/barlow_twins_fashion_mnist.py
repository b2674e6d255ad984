"""Barlow Twins (Zbontar et al. 2021) on Fashion-MNIST in the CPU budget:
the SimCLR config's ResNet, augmentation and batch, a 3-layer projector, the
cross-correlation loss over the global batch.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/barlow_twins_fashion_mnist.py \
        --workdir workdirs/barlow_twins_fmnist
    python experiments/evaluate.py --workdir workdirs/barlow_twins_fmnist

From the paper: lambda 5e-3, a 3-layer projector with BN, LARS with weight
decay 1.5e-6 and base lr 0.2 x B/256, warm-up then cosine. Projector widths
scaled to 1024 (paper 8192).
"""

import os

import ml_collections

from ssljax.train.build import load_config_file


def get_config():
  """simclr_fashion_mnist.py's data, encoder, augmentation, logging and
  evaluation settings, with this method's own."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  c.method = "barlow_twins"
  del c["temperature"]
  c.head = ml_collections.ConfigDict(dict(
      hidden_dim=1024,
      num_layers=3,
      out_dim=1024))
  c.lambda_ = 0.005
  c.monitor = ml_collections.ConfigDict(dict(
      batch_size=1000,
      every=100,
      k=200,
      num_test=1000,
      num_train=5000,
      t=0.1))
  c.num_epochs = 10.0
  # Fine-tuning lr for the few-label columns, chosen on validation
  # (benchmarks/finetune_recipe.py --pretrained_lrs 0.002,...,0.05
  # --scratch_lrs= -> benchmarks/results/finetune_recipe_barlow_twins.json:
  # the best mean of the 1% and 10% validation accuracies): its features are
  # 4.4x larger than SimCLR's, so the shared lr 0.05 overshoots its head.
  c.eval.finetune_lr = 0.01
  c.optimizer = ml_collections.ConfigDict(dict(
      base_lr=0.2,
      lr_scaling="linear",
      momentum=0.9,
      name="lars",
      trust_coefficient=0.001,
      warmup_epochs=0.5,
      weight_decay=1.5e-06))
  return c
