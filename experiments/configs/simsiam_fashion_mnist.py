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
scaled to 512 (paper 2048) and a bottleneck of 128 (paper 512).
--config.stop_gradient=False reproduces the paper's collapse experiment.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.method = "simsiam"
  c.seed = 0
  c.dataset = "fashion_mnist"
  c.data_dir = ""
  c.data_source = "auto"
  c.batch_size = 256
  c.num_epochs = 10.0
  c.num_steps = 0                   # > 0 overrides num_epochs

  # simclr_fashion_mnist.py's encoder and augmentation (28x28 grayscale:
  # crops of 60-100%, flip, brightness/contrast jitter, no blur).
  c.encoder = ml_collections.ConfigDict(dict(
      name="small_resnet", widths=(16, 64, 256), first_stage_stride=2,
      conv_impl="auto", out_width=512))
  c.augment = ml_collections.ConfigDict(dict(
      area_range=(0.6, 1.0), aspect_range=(3 / 4, 4 / 3), flip=True,
      strength=0.5, jitter_p=0.8, grayscale_p=0.0, blur_p=0.0))

  c.stop_gradient = True
  c.head = ml_collections.ConfigDict(dict(        # projector
      out_dim=512, hidden_dim=512, num_layers=2, final_bn=True))
  c.predictor = ml_collections.ConfigDict(dict(
      out_dim=512, hidden_dim=128, num_layers=2))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=5e-4,
      momentum=0.9, warmup_epochs=0.0))

  c.monitor = ml_collections.ConfigDict(dict(   # online kNN (knn_acc)
      every=100, num_train=5000, num_test=1000, k=200, t=0.1,
      batch_size=1000))
  c.log_every = 20
  c.checkpoint_every = 200
  c.keep_checkpoints = 2
  c.eval = ml_collections.ConfigDict(dict(
      knn_k=200, knn_t=0.1, linear_epochs=100, linear_lr=0.5,
      linear_weight_decay=(1e-5, 1e-4, 1e-3), linear_batch_size=1024,
      feature_batch_size=1000))
  return c
