"""Evaluate a colorization / split-brain run on crops of the held-out
opencv-doc photos (``ssljax.eval.colorization``). Train first with the one
loop::

    python experiments/pretrain.py \
        --config experiments/configs/colorization_photos.py \
        --workdir workdirs/colorization_photos
    python experiments/colorization_photos_eval.py \
        --workdir workdirs/colorization_photos \
        --out benchmarks/results/colorization_photos_eval.json \
        --png benchmarks/results/colorization_samples.png

(``--config.colorization.rebalance_lambda=1.0`` trains without class
rebalancing; ``splitbrain_photos.py`` the split-brain autoencoder.)

Colorization: the ab error (mean L2 in ab units), the share within 10 / 25,
the AuC of the cumulative ab-error curve (raw and class-rebalanced), the bin
accuracy and the PSNR of the recoloured crop, for the trained network and
the same network at random init, beside constant colours (gray ab = 0, the
training mean ab, the most frequent training bin); and a PNG of the
held-out photos colorized whole. Split-brain: its held-out losses and
accuracies beside the training marginals.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import datetime
import json
import os
import sys

from absl import app, flags

from ssljax.data.photos import load_photos
from ssljax.eval.colorization import (colorize_holdout_photos,
                                      evaluate_colorization,
                                      evaluate_splitbrain)
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("out", "", "Also write the JSON here.")
_PNG = flags.DEFINE_string("png", "", "The held-out photos colorized "
                           "(default WORKDIR/colorization_samples.png).")
_CROPS = flags.DEFINE_integer("test_crops_per_photo", 128,
                              "Crops of each held-out photo.")
_SEED = flags.DEFINE_integer("test_seed", 1, "Seed of the held-out crops.")


def main(argv):
  del argv
  workdir = _WORKDIR.value
  with restore(workdir, _STEP.value) as run:
    config = run.config
    test = load_photos("test", data_dir=config.get("data_dir") or None,
                       crops_per_photo=_CROPS.value, seed=_SEED.value)
    states = {"trained": run.state, "random_init": run.random_state}
    if config.method == "splitbrain":
      result = evaluate_splitbrain(run.method, states, run.train.images,
                                   test.images)
    else:
      result = evaluate_colorization(run.method, states, run.train.images,
                                     test.images)
      result["png"] = colorize_holdout_photos(
          _PNG.value or os.path.join(workdir, "colorization_samples.png"),
          run.method, run.state, data_dir=config.get("data_dir") or None)
    result.update(
        command=" ".join([os.path.basename(sys.executable)] + sys.argv),
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        step=run.step, checkpoint=run.checkpoint_path(run.step),
        test_crops=int(len(test)), train_crops=int(len(run.train)),
        config=json.loads(config.to_json()))
  print(json.dumps(result, indent=1))
  for path in dict.fromkeys([os.path.join(workdir, "colorization_eval.json"),
                             _OUT.value]):
    if path:
      with open(path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
  app.run(main)
