"""SimCLR on Fashion-MNIST, the longer recipe (more epochs, same model).

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/simclr_fashion_mnist_long.py \
        --workdir workdirs/simclr_fmnist_long
    python experiments/linear_eval.py --workdir workdirs/simclr_fmnist_long

What it reaches, and how long it takes, is in BENCHMARKS.md.
"""

import importlib.util
import os


def _base():
  path = os.path.join(os.path.dirname(__file__), "simclr_fashion_mnist.py")
  spec = importlib.util.spec_from_file_location("simclr_fashion_mnist", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config():
  c = _base().get_config()
  c.num_epochs = 12.0
  c.optimizer.warmup_epochs = 1.0
  c.checkpoint_every = 500
  return c
