"""Linear probe + weighted kNN (k=200, t=0.1) of a pre-training run, with the
random-init encoder and raw-pixel baselines measured in the same run.

    python experiments/linear_eval.py --workdir workdirs/simclr_fmnist

Prints the table and writes ``WORKDIR/eval.json``.
"""

from absl import app, flags, logging

from ssljax.eval.protocol import evaluate_run, format_table

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_BASELINES = flags.DEFINE_bool(
    "baselines", True, "Also evaluate the random-init encoder and raw pixels.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  out = evaluate_run(_WORKDIR.value, step=_STEP.value,
                     baselines=_BASELINES.value)
  print(f"\nTest accuracy on all {out['test_examples']} test images "
        f"(checkpoint step {out['step']}):")
  print(format_table(out["results"]))
  print(f"(written to {_WORKDIR.value}/eval.json)")


if __name__ == "__main__":
  app.run(main)
