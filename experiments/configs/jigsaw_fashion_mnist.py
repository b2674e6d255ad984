"""Jigsaw puzzles (Noroozi & Favaro 2016) on Fashion-MNIST in a short CPU budget.

Launch::

    python experiments/pretrain.py \
        --config experiments/configs/jigsaw_fashion_mnist.py \
        --workdir workdirs/jigsaw_fmnist
    python experiments/linear_eval.py --workdir workdirs/jigsaw_fmnist

Geometry: the 28x28 image is resized to 32x32, a 3x3 lattice of 10-pixel cells
sits at a random offset (0-2 pixels), one 8x8 tile at a random place in each
cell (jitter 0-2, gaps of 0-4 pixels; the paper: 75-pixel cells, 64-pixel
tiles), each tile is normalized on its own, the 9 tiles are shuffled by one of
100 permutations chosen greedily for the maximal minimum Hamming distance
(jigsaw.selection='max_min'; 'max_avg' is Noroozi & Favaro's Algorithm 1), and the net classifies
which. The tile encoder is the SimCLR Fashion-MNIST config's; at evaluation it
sees whole 28x28 images, each standardized on its own like the tiles.

8x8 tiles, not 10x10: XLA:CPU ran this encoder several times slower on 10x10
(and 9, 12, 14, 16) inputs than on 8x8 ones at this batch (scratch timings,
not kept with a results file), so 8 keeps the step short on 2 cores.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "jigsaw"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 128                # 1152 tiles a step
  # 10 epochs of the 54,000 training images (a CPU-sized budget; no
  # measured run of it is kept in benchmarks/results/ yet).
  c.num_epochs = 10.0
  c.num_steps = 0                   # > 0 overrides num_epochs

  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(32, 64, 256), first_stage_stride=2))
  # oneDNN convolutions on the CPU, XLA's own on GPU / TPU (ssljax.models.conv)
  c.encoder.conv_impl = "auto"
  # Concatenated tile features (9 x 256) -> Dense(512)-BN-ReLU -> Dense(P).
  c.head = ml_collections.ConfigDict(dict(hidden_dim=512, num_layers=2))
  c.jigsaw = ml_collections.ConfigDict(dict(
      num_permutations=100, permutation_seed=0, grid=3, size=32, cell=10,
      tile=8, normalize=True, eps=1e-3))

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
