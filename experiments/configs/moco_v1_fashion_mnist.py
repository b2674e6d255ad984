"""MoCo v1 on Fashion-MNIST: moco_v2_fashion_mnist.py with v1's linear head
and T = 0.07 (He et al. 2020), same budget.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/moco_v1_fashion_mnist.py \
        --workdir workdirs/moco_v1_fmnist
    python experiments/linear_eval.py --workdir workdirs/moco_v1_fmnist
"""

import os

from ssljax.train.build import load_config_file


def get_config():
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "moco_v2_fashion_mnist.py"))
  c.temperature = 0.07
  c.head.num_layers = 1            # linear fc to 128-d
  return c
