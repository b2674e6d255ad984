"""Pictures of a trained context encoder: masked inputs, completions and
originals of held-out images, as one PNG grid.

    python experiments/inpainting_samples.py --workdir workdirs/inpainting_fmnist \
        [--num=10] [--out=workdirs/inpainting_fmnist/samples.png]

Rows: the generator's input (the hole filled with the dataset mean), its
output pasted into the hole, the original. Images are the first ``--num`` of
the test split; masks come from ``--seed``. From Python (e.g. right after
``pretrain``): ``ssljax.eval.inpainting.write_samples(method, state,
test_images[:10], "samples.png")``.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import os

from absl import app, flags

from ssljax.eval.inpainting import write_samples
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "pretrain.py --workdir.",
                               required=True)
_NUM = flags.DEFINE_integer("num", 10, "held-out images to show.")
_SEED = flags.DEFINE_integer("seed", 0, "mask seed (random masks).")
_OUT = flags.DEFINE_string("out", "", "PNG path (default: in --workdir).")


def main(argv):
  del argv
  path = _OUT.value or os.path.join(_WORKDIR.value, "inpainting_samples.png")
  with restore(_WORKDIR.value) as run:
    write_samples(run.method, run.state, run.test.images[:_NUM.value], path,
                  seed=_SEED.value, title=f"{run.config.method} "
                  f"{run.config.dataset}, step {run.step}")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
