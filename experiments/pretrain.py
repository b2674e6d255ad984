"""Pre-train a self-supervised method.

    python experiments/pretrain.py \
        --config experiments/configs/simclr_fashion_mnist.py \
        --workdir workdirs/simclr_fmnist [--resume] [--config.batch_size=512]
"""

from absl import app, flags, logging
from ml_collections import config_flags

from ssljax.train.loop import pretrain

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file with get_config().", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_RESUME = flags.DEFINE_bool("resume", False,
                            "Continue from the latest checkpoint in --workdir.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. "
                         "--config experiments/configs/simclr_fashion_mnist.py")
  _, state = pretrain(_CONFIG.value, _WORKDIR.value, resume=_RESUME.value)
  print(f"finished at step {int(state.step)}; checkpoints in "
        f"{_WORKDIR.value}/checkpoints")


if __name__ == "__main__":
  app.run(main)
