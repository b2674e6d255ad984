"""MoCo v2 on ImageNet, the paper's recipe (Chen et al. 2020, "Improved
Baselines with Momentum Contrastive Learning"): MoCo v1 (moco_v1_imagenet.py)
plus an MLP head (2048-d hidden layer, ReLU, no BN), T = 0.2, Gaussian blur
(sigma 0.1-2, p = 0.5), colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, and a
cosine learning-rate schedule.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/moco_v2_imagenet.py --workdir workdirs/moco_v2_in

See moco_v1_imagenet.py for the note on ImageNet input.
"""

import os

from ssljax.train.build import load_config_file


def get_config():
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "moco_v1_imagenet.py"))
  c.temperature = 0.2
  c.head.num_layers = 2             # Linear(2048, 2048)-ReLU-Linear(2048, 128)
  c.head.hidden_dim = 0             # = encoder width (2048)
  c.head.use_bn = False
  c.augment.jitter_p = 0.8
  c.augment.blur_p = 0.5
  c.augment.blur_sigma = (0.1, 2.0)
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_epochs = ()
  return c
