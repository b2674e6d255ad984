"""Linear probe + weighted kNN (k=200, t=0.1) of a pre-training run, with the
random-init encoder and raw-pixel baselines measured in the same run.

    python experiments/linear_eval.py --workdir workdirs/simclr_fmnist

Prints the table and writes ``WORKDIR/eval.json``. ``--set key=value``
(repeatable) overrides the run's saved ``eval`` settings, e.g. to re-evaluate an
older run with the current probe::

    python experiments/linear_eval.py --workdir DIR --set linear_epochs=100 \
        --set linear_lr=0.5 --set linear_weight_decay=1e-5
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import ast

from absl import app, flags, logging

from ssljax.cli import flags_parser
from ssljax.eval.protocol import evaluate_run, format_table
from ssljax.run import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "A pretrain.py --workdir.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_BASELINES = flags.DEFINE_bool(
    "baselines", True, "Also evaluate the random-init encoder and raw pixels.")
_SET = flags.DEFINE_multi_string(
    "set", [], "key=value: override a key of the run's eval config.")


def _overrides(items):
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep:
      raise app.UsageError(f"--set {item!r}: expected key=value, e.g. "
                           "--set linear_epochs=100")
    try:
      out[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      out[key.strip()] = value.strip()       # a bare string, e.g. lbfgs
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  overrides = _overrides(_SET.value)
  with restore(_WORKDIR.value, _STEP.value) as run:
    out = evaluate_run(run, baselines=_BASELINES.value,
                       eval_overrides=overrides)
  print(f"\nTest accuracy on all {out['test_examples']} test images "
        f"(checkpoint step {out['step']}):")
  print(format_table(out["results"]))
  print(f"(written to {_WORKDIR.value}/eval.json)")


if __name__ == "__main__":
  app.run(main, flags_parser=flags_parser("linear_eval"))
