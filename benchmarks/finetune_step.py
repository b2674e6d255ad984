"""Cost of few-label fine-tuning (``ssljax.eval.finetune``) on a real run.

    python benchmarks/finetune_step.py --workdir workdirs/simclr_fashion_mnist

Fine-tunes the run's encoder on 1% of the labels for 10 and then 40 steps
(batch 128; the first call includes compilation) and predicts the test split,
printing wall seconds. On the 2-core CPU (2026-11-29, otherwise idle) this
gave 61 s and 204 s, i.e. about 4.7 s per step after compilation: roughly 15x
what one step of this network at batch 128 should cost next to a SimCLR
training step (512 views forward and backward in about 1.1 s). The
``few_labels`` suite section (12 fine-tunings of 200 steps) is therefore far
too slow on this CPU until this is found. Ruled out (same day, same machine):
the ``lax.scan`` over the steps (calls of ``steps=1`` took 5.3-5.9 s each too),
the augmentation (``augment=False``: 4.4-4.7 s per one-step call), and the
network itself: a jitted gradient of the encoder's features on 128 images
gathered from the device-resident 60k training array takes 0.20-0.25 s, alone
or inside a 4-step ``lax.scan``. What remains is in ``finetune``'s own step
(optimizer over the whole variables tree, the sampled index pool, the head).
"""

from __future__ import annotations

import argparse
import time

import jax

from ssljax.eval import finetune
from ssljax.eval.suite import _Run


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default="workdirs/simclr_fashion_mnist")
  args = p.parse_args()
  run = _Run(args.workdir, None, False)
  tr = run.train
  idx = finetune.balanced_subset(tr.labels, fraction=0.01, seed=0)
  ft = None
  for steps in (10, 40):
    t = time.perf_counter()
    ft = finetune.finetune(run.method, run.state, tr.images, tr.labels,
                           num_classes=tr.num_classes, steps=steps,
                           batch_size=128, lr=0.05, subset=idx)
    jax.block_until_ready(ft["params"])
    print(f"{steps} steps: {time.perf_counter() - t:.1f} s", flush=True)
  t = time.perf_counter()
  finetune.predict(run.method, ft, run.test.images)
  print(f"predict {len(run.test)} test images: {time.perf_counter() - t:.1f} s")
  run.ckpt.close()


if __name__ == "__main__":
  main()
