"""Colorization (Zhang et al. 2016) on 32x32 crops of all the colour data of
this machine: ``dataset = "colour_crops"`` (``ssljax/data/colour.py``: every
opencv-doc colour photo, scikit-image's colour samples and every frame of
every opencv-doc video, held out by source).

Launch (needs ``apt-get install opencv-doc`` and ``pip install
scikit-image``)::

    python experiments/pretrain.py \
        --config experiments/configs/colorization_colour_crops.py \
        --workdir workdirs/colorization_colour_crops
    python experiments/evaluate.py --workdir workdirs/colorization_colour_crops

The network, loss and decoding are ``colorization_photos.py``'s (a small
ResNet on L, a per-pixel head over 261 ab bins at 1/4 resolution, soft
targets, class rebalancing lambda 0.5, annealed mean T = 0.38). The training
split is 33 sources, 33,792 crops (1,024 per still image, at least 1,024 per
video; ``ssljax.data.colour``); the validation split (4 sources) is the
dataset's own.

Budget: sized to about 45 minutes on a 2-core CPU. A 20-step run of this
config went at about 500-550 crops/s (about 0.12 s a step of 64 crops; the
machine was also running other jobs), so 19,000 steps (about 36 epochs)
take about 40 minutes, plus about half a minute to load the crops and
compile. Measured on an idle 2-core Intel Xeon (2026-12-07): 20 minutes,
about 1,100 crops/s; result in ``benchmarks/results/
colorization_colour_crops_eval.json`` (BENCHMARKS.md, "Colorization and
split-brain on the colour crops").

``experiments/evaluate.py`` then writes ``method_eval.json``
(``ssljax.eval.by_method``): the colorization quality on the 8 test sources
(AuC raw and rebalanced, PSNR; trained, random init, gray, training mean ab
and mode bin), a picture of held-out crops, and the frozen L-encoder's
features (``ssljax.eval.colour_features``): linear probes for Fashion-MNIST
and for source identification on the test sources, against random init and
raw pixels.
"""

import os

from ssljax.train.build import load_config_file


def get_config():
  """``colorization_photos.py`` on ``colour_crops``, with this budget."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "colorization_photos.py"))
  c.dataset = "colour_crops"
  c.num_steps = 19000              # > 0 overrides epochs
  c.log_every = 100
  c.checkpoint_every = 2000
  return c
