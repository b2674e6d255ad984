#!/usr/bin/env bash
# Pre-train on a SLURM GPU cluster: one process per GPU on every node.
#
#   sbatch [--nodes=4] experiments/launch/slurm_gpu.sh \
#       --config experiments/configs/simclr_fashion_mnist.py \
#       --workdir /shared/workdirs/simclr_fmnist [--config.batch_size=1024]
#
# (submit from the repository root; once: bash scripts/setup.sh &&
# .venv/bin/python -m pip install -U "jax[cuda12]" on a node that sees the
# shared file system.)
#
# srun starts SLURM_NTASKS = nodes x ntasks-per-node copies of pretrain.py.
# Each calls ssljax.parallel.maybe_initialize_distributed(), which sees a
# SLURM job step with several tasks and calls jax.distributed.initialize()
# with no arguments: JAX reads SLURM_STEP_NODELIST (coordinator = first node,
# port from the job id, or JAX_COORDINATOR_PORT), SLURM_NTASKS, SLURM_PROCID,
# and gives task SLURM_LOCALID the GPU with that local index. So: keep
# ntasks-per-node equal to the GPUs per node, and do NOT bind GPUs per task
# (no --gpus-per-task / --gpu-bind): every task must see all GPUs of its node
# for JAX to pick its own. The global batch (--config.batch_size) must divide
# by the total number of GPUs.
#
# --workdir must be on a file system every node sees (Lustre, NFS, ...):
# Orbax writes each checkpoint from all processes together; process 0 writes
# config.json, metrics.jsonl and TensorBoard events. SLURM sends SIGTERM 300 s
# before the time limit (--signal): every process finishes its step, they
# agree at the next log step, save a checkpoint and exit 0; resubmitting the
# same command resumes (with --requeue, SLURM can do that itself).
#
# Not run in the ssljax CI (no SLURM there); see experiments/launch/README.md.
#
#SBATCH --job-name=ssljax-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@300
#SBATCH --output=%x-%j.out
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: sbatch $0 --config CONFIG --workdir SHARED_DIR [--config.x=y ...]" >&2
  exit 2
fi
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/../..}"
PYTHON=${PYTHON:-.venv/bin/python}
echo "ssljax: ${SLURM_JOB_NUM_NODES:-?} node(s) x ${SLURM_NTASKS_PER_NODE:-?} task(s): ${SLURM_JOB_NODELIST:-?}"

# --kill-on-bad-exit: one failed task ends the step instead of leaving the
# others blocked in a collective.
srun --kill-on-bad-exit=1 "$PYTHON" experiments/pretrain.py "$@"
