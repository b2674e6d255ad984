#!/usr/bin/env bash
# Pre-train on a Cloud TPU VM pod slice (every worker runs the same program).
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b [PROJECT=my-project] \
#   bash experiments/launch/tpu_pod.sh \
#       --config experiments/configs/simclr_fashion_mnist.py \
#       --workdir /mnt/shared/workdirs/simclr_fmnist [--config.batch_size=1024]
#
# Steps (each on ALL workers of the slice, via `gcloud compute tpus tpu-vm
# ... --worker=all`):
#   1. copy this checkout (without .venv/ and workdirs/) to ~/ssljax,
#   2. scripts/setup.sh (dataset package, .venv with ssljax) + jax[tpu],
#   3. SSLJAX_DISTRIBUTED=auto python experiments/pretrain.py "$@": every
#      worker calls jax.distributed.initialize(), which finds the other workers
#      through the TPU metadata server; each reads its share of every batch.
#
# --workdir must be ONE folder that every worker sees (NFS/Filestore or a
# gcsfuse mount): Orbax writes each checkpoint from all workers together and
# process 0 writes config.json and metrics.jsonl. A worker-local path would
# give each worker a partial checkpoint. Re-running the same command resumes.
# SKIP_COPY=1 / SKIP_SETUP=1 skip steps 1 / 2 on later runs.
#
# Not run in the ssljax CI (no TPU there); see experiments/launch/README.md.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME to the TPU VM slice name}"
: "${ZONE:?set ZONE to the zone of the slice}"
if [ $# -eq 0 ]; then
  echo "usage: TPU_NAME=... ZONE=... $0 --config CONFIG --workdir SHARED_DIR [--config.x=y ...]" >&2
  exit 2
fi
REPO_DIR=$(cd "$(dirname "$0")/../.." && pwd)
REMOTE_DIR=${REMOTE_DIR:-ssljax}          # relative to each worker's home
JAX_TPU_SPEC=${JAX_TPU_SPEC:-jax[tpu]}     # e.g. "jax[tpu]==0.10.2"
GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE" ${PROJECT:+--project="$PROJECT"})

on_all_workers() {  # run a shell command on every worker of the slice at once
  "${GCLOUD[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=all --command="$1"
}

if [ -z "${SKIP_COPY:-}" ]; then
  TARBALL=$(mktemp -t ssljax-XXXXXX.tar.gz)
  trap 'rm -f "$TARBALL"' EXIT
  tar -C "$REPO_DIR" --exclude=./.venv --exclude=./workdirs --exclude=.git \
      --exclude='__pycache__' -czf "$TARBALL" .
  "${GCLOUD[@]}" scp "$TARBALL" "$TPU_NAME:ssljax.tar.gz" "${WHERE[@]}" --worker=all
  on_all_workers "mkdir -p ~/$REMOTE_DIR && tar -xzf ~/ssljax.tar.gz -C ~/$REMOTE_DIR && rm ~/ssljax.tar.gz"
fi

if [ -z "${SKIP_SETUP:-}" ]; then
  on_all_workers "cd ~/$REMOTE_DIR && bash scripts/setup.sh && .venv/bin/python -m pip install -q -U '$JAX_TPU_SPEC' && .venv/bin/python -c 'import jax; print(jax.__version__, jax.local_devices())'"
fi

# The same command line on every worker; quoted once for the remote shell.
ARGS=$(printf ' %q' "$@")
on_all_workers "cd ~/$REMOTE_DIR && SSLJAX_DISTRIBUTED=auto .venv/bin/python experiments/pretrain.py$ARGS"
