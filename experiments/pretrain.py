"""Pre-train a self-supervised method.

    python experiments/pretrain.py \
        --config experiments/configs/simclr_fashion_mnist.py \
        --workdir workdirs/simclr_fmnist [--config.batch_size=512]

Resume: running the same command again continues from the latest good
checkpoint in --workdir when the config is the same (it says "resuming ... from
step N"); a config that differs in anything that changes training is refused,
listing the differing keys. --resume also resumes a workdir whose config.json is
missing; --noresume refuses any workdir that holds checkpoints.

Exit status: 0 when the run reached its last step (it also writes
``finished.json`` into --workdir); 75 (EX_TEMPFAIL, ``PREEMPTED_EXIT_STATUS``)
when it was pre-empted: on SIGTERM or SIGINT (Ctrl-C) the run finishes the
current step, saves a checkpoint there, flushes metrics.jsonl/TensorBoard and
stops; rerun the same command to resume (a second Ctrl-C stops at once). Launch
scripts stop on 75 instead of evaluating a partial run. 1 for every user or
environment mistake (a bad config or override, a missing dataset, a workdir
another process holds, a resume refused because the config or the data
differ, unreadable checkpoints, a non-finite loss with config.nonfinite=
"stop", a full disk): one message on stderr, no traceback, nothing saved lost.

Online probe: --online_probe=0.1 trains a linear classifier on stop-gradient
features during pre-training (from the batch labels; the self-supervised update
never sees them) and logs its training-batch accuracy as probe_acc.

Multi-host (TPU pod slice, SLURM GPU cluster, several local processes): start
this same command once per process; ``maybe_initialize_distributed()`` joins
them (SSLJAX_COORDINATOR/SSLJAX_NUM_PROCESSES/SSLJAX_PROCESS_ID, or SLURM /
Open MPI / TPU auto-detection) before any device is used. See
experiments/launch/README.md.
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import json
import os
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from ssljax.cli import flags_parser, quiet_checkpoint_errors
from ssljax.config import ConfigError
from ssljax.data import DATA_OPTIONS, DatasetNotAvailableError
from ssljax.eval.monitor import KNNMonitor
from ssljax.parallel.distributed import maybe_initialize_distributed
from ssljax.train.build import MonitorConfig
from ssljax.train.checkpoint import CheckpointError
from ssljax.train.lock import WorkdirLockedError
from ssljax.train.loop import (ConfigMismatchError, NonFiniteError, Preempted,
                               StorageError, pretrain)
from ssljax.train.start import FINISHED_FILE, load_dataset, validation_fraction

#: The exit status of a pre-empted run (sysexits' EX_TEMPFAIL: "try again").
PREEMPTED_EXIT_STATUS = 75

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_ONLINE_PROBE = flags.DEFINE_float(
    "online_probe", 0.0,
    "> 0: train an online linear probe at this learning rate during "
    "pre-training (ssljax.methods.online_probe; logs probe_acc and "
    "probe_loss). Same as setting config.online_probe = ConfigDict(dict(lr=...)) "
    "in the config file. Repeat it when resuming.")
_RESUME = flags.DEFINE_bool(
    "resume", None,
    "Unset (default): resume automatically when --workdir holds checkpoints of "
    "the same config. --resume: also resume when the config cannot be checked. "
    "--noresume: refuse a --workdir that holds checkpoints.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  quiet_checkpoint_errors()  # a failed save is reported once, below
  maybe_initialize_distributed()  # before anything touches a device
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. "
                         "--config experiments/configs/simclr_fashion_mnist.py")
  resume = "auto" if _RESUME.value is None else _RESUME.value
  config = _CONFIG.value
  if _ONLINE_PROBE.value > 0:
    with config.unlocked():
      config.online_probe = ml_collections.ConfigDict(
          dict(lr=_ONLINE_PROBE.value))

  def knn_monitor(train, mesh):
    """The kNN monitor of config.monitor (queries from the validation split:
    the test split is read once, by the final evaluation)."""
    if not MonitorConfig(**config.get("monitor", {})).every:
      return None
    queries = load_dataset(config, "validation" if validation_fraction(config)
                           and config.dataset not in DATA_OPTIONS else "test")
    return KNNMonitor.from_config(config, train, queries, mesh=mesh)

  try:
    _, state = pretrain(config, _WORKDIR.value, resume=resume,
                        monitor=knn_monitor)
  except Preempted as e:
    print(f"pre-empted: {e}", flush=True)
    return PREEMPTED_EXIT_STATUS
  except (ConfigError, ConfigMismatchError, DatasetNotAvailableError,
          FileExistsError, NonFiniteError, CheckpointError, WorkdirLockedError,
          StorageError) as e:
    print(f"pretrain: {e}", file=sys.stderr, flush=True)
    return 1
  print(f"finished at step {int(state.step)}; checkpoints in "
        f"{_WORKDIR.value}/checkpoints")
  # The mark of a run that reached its last step: experiments/reproduce.py
  # evaluates only finished runs.
  with open(os.path.join(_WORKDIR.value, FINISHED_FILE), "w") as f:
    json.dump({"step": int(state.step)}, f)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=flags_parser("pretrain"))
