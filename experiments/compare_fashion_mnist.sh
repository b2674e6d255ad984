#!/usr/bin/env bash
# One command for the evaluation report that compares methods on
# Fashion-MNIST: SimCLR, MoCo v2 and RotNet (a pretext task). Each run is
# pre-trained with its shipped config unless its workdir already holds the
# finished run (pretrain.py resumes automatically, so an interrupted run
# continues), evaluated by experiments/evaluate.py (sections already measured
# on the same checkpoint are kept), then experiments/report.py writes
# OUT/report.md and OUT/report.html with every table and picture.
#   bash experiments/compare_fashion_mnist.sh [OUT]
# Environment: SECTIONS (default below), FINETUNE_STEPS (200),
#   SIMCLR_DIR, MOCO_DIR, ROTATION_DIR (workdirs).
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
OUT=${1:-reports/fashion_mnist}
SECTIONS=${SECTIONS:-linear,knn,cluster,pictures,robustness,transfer,health,efficiency}
RUNS=(
  "${SIMCLR_DIR:-workdirs/simclr_fashion_mnist}:simclr_fashion_mnist"
  "${MOCO_DIR:-workdirs/moco_v2_fmnist}:moco_v2_fashion_mnist"
  "${ROTATION_DIR:-workdirs/rotation_fmnist}:rotation_fashion_mnist"
)
DIRS=()
for run in "${RUNS[@]}"; do
  dir=${run%%:*}; cfg=${run##*:}
  pretrain \
    --config "experiments/configs/$cfg.py" --workdir "$dir"
  .venv/bin/python experiments/evaluate.py --workdir "$dir" \
    --suite "$SECTIONS" --finetune_steps "${FINETUNE_STEPS:-200}" --skip_done
  DIRS+=("$dir")
done
.venv/bin/python experiments/report.py --out "$OUT" "${DIRS[@]}"
