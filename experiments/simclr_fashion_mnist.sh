#!/usr/bin/env bash
# The main job: set up, pre-train SimCLR on Fashion-MNIST, then evaluate it
# (linear probe + weighted kNN on all 10,000 test images, next to the
# random-init encoder and raw pixels). About 15-20 minutes on 2 CPU cores.
#   bash experiments/simclr_fashion_mnist.sh [WORKDIR] [--config.x=y ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# pretrain.py exits 75 when pre-empted (SIGTERM, Ctrl-C): the checkpoint is
# saved, and the run must not be evaluated half-trained.
pretrain() {
  local status=0
  .venv/bin/python experiments/pretrain.py "$@" || status=$?
  if [ "$status" -eq 75 ]; then
    echo "pre-empted: the checkpoint is saved; run this same command again to resume (nothing was evaluated)." >&2
    exit 75
  fi
  return "$status"
}
WORKDIR=${1:-workdirs/simclr_fashion_mnist}
shift || true
if [ -d "$WORKDIR/checkpoints" ]; then RESUME=--resume; else RESUME=; fi
pretrain \
  --config experiments/configs/simclr_fashion_mnist.py --workdir "$WORKDIR" $RESUME "$@"
.venv/bin/python experiments/linear_eval.py --workdir "$WORKDIR"
