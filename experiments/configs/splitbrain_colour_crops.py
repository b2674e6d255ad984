"""Split-brain autoencoder (Zhang et al. 2017) on 32x32 crops of all the
colour data of this machine: ``dataset = "colour_crops"``
(``ssljax/data/colour.py``: every opencv-doc colour photo, scikit-image's
colour samples and every frame of every opencv-doc video, held out by
source).

Launch (needs ``apt-get install opencv-doc`` and ``pip install
scikit-image``)::

    python experiments/pretrain.py \
        --config experiments/configs/splitbrain_colour_crops.py \
        --workdir workdirs/splitbrain_colour_crops
    python experiments/evaluate.py --workdir workdirs/splitbrain_colour_crops

The networks are ``splitbrain_photos.py``'s: two disjoint small ResNets
(half the colorization widths), L -> ab (261 ab bins, soft targets, no
class rebalancing) and ab -> L (50 L bins); ``encode`` concatenates the two
encoders' features. Training split: 33 sources, 33,792 crops
(``ssljax.data.colour``).

Budget: sized to about 45 minutes on a 2-core CPU. A 20-step run of this
config went at about 470-530 crops/s (about 0.13 s a step of 64 crops; the
machine was also running other jobs), so 19,000 steps (about 36 epochs)
take about 40 minutes, plus about half a minute to load the crops and
compile. Measured on a 2-core Intel Xeon (2026-12-07), beside evaluations
of other runs: 21 minutes; result in ``benchmarks/results/
splitbrain_colour_crops_eval.json`` (BENCHMARKS.md, "Colorization and
split-brain on the colour crops").

``experiments/evaluate.py`` then writes ``method_eval.json``
(``ssljax.eval.by_method``): the held-out losses beside the training
marginals and the L -> ab half's colorization quality on the 8 test sources,
a picture of held-out crops, and linear probes on each half's frozen
features and their concatenation (``ssljax.eval.colour_features``): source
identification on the test sources; Fashion-MNIST (gray: the L half only).
"""

import os

from ssljax.train.build import load_config_file


def get_config():
  """``splitbrain_photos.py`` on ``colour_crops``, with this budget."""
  c = load_config_file(
      os.path.join(os.path.dirname(__file__), "splitbrain_photos.py"))
  c.dataset = "colour_crops"
  c.num_steps = 19000              # > 0 overrides epochs
  c.log_every = 100
  c.checkpoint_every = 2000
  return c
