"""Upside-down prediction (docs/examples/flip_method.py) on Fashion-MNIST.

    PYTHONPATH=docs/examples python experiments/pretrain.py \
        --config docs/examples/flip_config.py --workdir workdirs/flip
"""

import ml_collections

import flip_method  # noqa: F401  (registers the method "flip")


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "flip"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.batch_size = 64
  c.num_epochs = 1.0
  c.num_steps = 0
  c.flip = ml_collections.ConfigDict(dict(p=0.5))
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(8, 16), stage_sizes=(1, 1)))
  c.head = ml_collections.ConfigDict(dict(hidden_dim=32, num_layers=2))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.1, lr_scaling="none", weight_decay=1e-4,
      warmup_epochs=0.0))
  c.log_every = 10
  c.checkpoint_every = 100
  c.eval = ml_collections.ConfigDict(dict(knn_k=20, linear_epochs=10))
  return c
