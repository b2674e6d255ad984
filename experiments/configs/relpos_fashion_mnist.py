"""Relative patch position (Doersch et al. 2015) on Fashion-MNIST in a short
CPU budget.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/relpos_fashion_mnist.py \
        --workdir workdirs/relpos_fmnist
    python experiments/linear_eval.py --workdir workdirs/relpos_fmnist

Geometry as the jigsaw config: the image resized to 32x32, a 3x3 lattice of
10-pixel cells at a random offset, one 8x8 tile at a random place in each
(jitter 0-2, gaps 0-4 pixels; Doersch et al.: 96-pixel patches, gaps of about
half a patch, jitter up to 7), each tile normalized on its own. Every image
gives all 8 (centre, neighbour) pairs; the shared encoder's two feature
vectors are concatenated and classified 8 ways.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "relpos"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 128                # 1152 tiles, 1024 pairs a step
  # 10 epochs of the 54,000 training images (a CPU-sized budget; no
  # measured run of it is kept in benchmarks/results/ yet).
  c.num_epochs = 10.0
  c.num_steps = 0                   # > 0 overrides num_epochs

  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(32, 64, 256), first_stage_stride=2))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  # Concatenated pair features (2 x 256) -> Dense(512)-BN-ReLU -> Dense(8).
  c.head = ml_collections.ConfigDict(dict(hidden_dim=512, num_layers=2))
  c.relpos = ml_collections.ConfigDict(dict(
      size=32, cell=10, tile=8, normalize=True, eps=1e-3, all_neighbors=True))

  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.2, lr_scaling="linear", weight_decay=5e-4,
      momentum=0.9, warmup_epochs=0.05))

  c.log_every = 20
  c.checkpoint_every = 400
  c.keep_checkpoints = 2

  c.eval = ml_collections.ConfigDict(dict(
      knn_k=200, knn_t=0.1, linear_epochs=100, linear_lr=0.5,
      linear_weight_decay=(1e-5, 1e-4, 1e-3), linear_batch_size=1024, feature_batch_size=1000))
  return c
