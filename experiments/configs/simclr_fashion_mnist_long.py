"""SimCLR on Fashion-MNIST, the longer recipe (more epochs, same model).

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/simclr_fashion_mnist_long.py \
        --workdir workdirs/simclr_fmnist_long
    python experiments/linear_eval.py --workdir workdirs/simclr_fmnist_long

What it reaches, and how long it takes, is in BENCHMARKS.md.
"""

import os

from ssljax.train.build import load_config_file


def get_config():
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py"))
  c.num_epochs = 12.0
  c.optimizer.warmup_epochs = 1.0
  c.checkpoint_every = 500
  return c
