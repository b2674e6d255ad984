#!/bin/bash
# The GPU session (issue 28): SimCLR train-step images/s, ratios with
# bootstrap intervals, loss checks and MFU of ssljax against PyTorch eager and
# PyTorch whole-step torch.compile, float32 and bfloat16 (PyTorch: AMP), on
# one GPU, in under 8 minutes of wall time with every section under its own
# time limit. Written for a lent H100 (or H200): 15 minutes of device time
# in all, the machine's start included.
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_session.sh      # on the GPU machine
#   bash benchmarks/gpu_session.sh --dry_run             # CPU: tiny, every path
#   bash benchmarks/gpu_session.sh --plan                # sections and limits
#
# (DRY_RUN=1 is the same as --dry_run.) Sections, each a process of
# benchmarks/gpu_session_step.py under `timeout`, so that one that fails or
# hangs costs at most its own limit:
#
#   env       30 s  versions (jax, jaxlib, its CUDA plugin, flax, optax,
#                   torch, CUDA, cuDNN, triton), devices, commit; nvidia-smi
#   resnet50 245 s  ResNet-50, ImageNet stem, 224x224, 64 images = 128 views
#   resnet18 170 s  ResNet-18, CIFAR stem, 32x32, 256 images = 512 views
#   summary   10 s  the table of both (summary.md)
#
# Limits: 455 s, plus 5 s of kill grace each: at most 475 s (7 min 55 s) even
# if every section runs to its limit (and the env section also warms the
# page cache for the torch and jax imports of the others). Each encoder
# section gets a deadline 15 s before its limit (GPU_SESSION_DEADLINE_S): it
# prepares its sides in priority order -- ssljax bf16, PyTorch eager AMP,
# PyTorch compiled AMP (the goal figures), then the same three in float32 --
# leaves out a side that would not be ready in time
# (an alarm cuts its compilation), times the rest in 10 interleaved rounds of
# 8 steps (benchmarks/_compare.py) and writes its record; it also rewrites
# the record after every side it prepares, so a section killed by its limit
# leaves what it had.
#
# What lands in $OUT (5 files; the device tool brings back at most 8):
#   device.log  this script's output    env.json  versions and devices
#   resnet50.json, resnet18.json        the sections' records (every round's
#               times, images/s, ratios with 95% intervals, MFU, checks)
#   summary.md  images/s, MFU and ratios of both sections, checks, statuses
#
# Assumes (the device image 'cuda', /work/.library/device/KINDS.md): python3
# with jax + its CUDA plugin, flax, optax, chex and numpy; torch (2.11 +
# cu130 there) is optional -- without it, or without CUDA in it, the sections
# time the ssljax sides alone. dm-pix (imported by ssljax.augment) is not in
# that image: WHEELS=<folder of wheels>, or a .whl/ folder in the repository
# (git-ignored; carry it), is installed into /tmp/site first when dm_pix is
# missing. ml_collections is not needed (the configs are plain dicts).
# Nothing is fetched from the network.
set -u
cd "$(dirname "$0")/.."

DRY=${DRY_RUN:-0}
PLAN=0
for arg in "$@"; do
  case "$arg" in
    --dry_run|--dry-run) DRY=1 ;;
    --plan) PLAN=1 ;;
    *) echo "unknown argument: $arg (--dry_run, --plan)" >&2; exit 2 ;;
  esac
done

SECTIONS_TOTAL=0
FAILED=0
START=$(date +%s)

# section NAME LIMIT_S COMMAND...: runs COMMAND under `timeout LIMIT_S`
# (SIGTERM, SIGKILL 5 s later), with GPU_SESSION_DEADLINE_S = LIMIT_S - 15.
section() {
  local name=$1 limit=$2
  shift 2
  SECTIONS_TOTAL=$((SECTIONS_TOTAL + limit + 5))
  if [ "$PLAN" = 1 ]; then
    printf '%-10s %4d s\n' "$name" "$limit"
    return 0
  fi
  local t0 rc
  t0=$(date +%s)
  echo "=== $name (limit $limit s; $((t0 - START)) s into the session) ==="
  GPU_SESSION_DEADLINE_S=$((limit - 15)) timeout -k 5 "$limit" "$@"
  rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - t0 )) s ==="
  [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
  return 0
}

if [ "$PLAN" = 0 ]; then
  if [ "$DRY" = 1 ]; then
    OUT=${OUT:-/tmp/gpu_session_dry_run}
    if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
      PYTHON=.venv/bin/python
    fi
    # The CPU, quickly: no GPU for either framework, XLA:CPU without its
    # costly optimizations (nothing is timed).
    export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=
    export XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    # A second dry run reuses the first one's XLA programs.
    export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/gpu_session_dry_run_jax_cache}
    export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5
  else
    OUT=${OUT:-/tmp/gpu_out}
  fi
  PY=${PYTHON:-python3}
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/device.log") 2>&1
  export PYTHONUNBUFFERED=1
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  # JAX would otherwise take 75% of the GPU's memory before torch starts.
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
  if ! $PY -c "import importlib.util as u, sys; sys.exit(u.find_spec('dm_pix') is None)" 2>/dev/null; then
    WHEELS=${WHEELS:-.whl}
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
      echo "dm_pix missing: installing the wheels of $WHEELS into /tmp/site"
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$WHEELS"/*.whl \
        && export PYTHONPATH=/tmp/site:$PYTHONPATH
    else
      echo "WARNING: dm_pix is missing and no wheels were found ($WHEELS):" \
           "ssljax cannot be imported; set WHEELS or carry .whl/"
    fi
  fi
  date -u
  echo "session: dry run $DRY, OUT $OUT, python $PY"
fi

DRY_ARG=()
[ "$DRY" = 1 ] && DRY_ARG=(--dry_run)
REQUIRE_GPU=(--require-gpu)
[ "$DRY" = 1 ] && REQUIRE_GPU=()

section env 30 bash -c "
  if [ '$DRY' = 0 ]; then
    timeout 15 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  fi
  ${PY:-python3} benchmarks/gpu_session_step.py --env --out '${OUT:-.}/env.json'"
section resnet50 245 ${PY:-python3} benchmarks/gpu_session_step.py \
  --encoder resnet50 --allow_load "${REQUIRE_GPU[@]}" "${DRY_ARG[@]}" \
  --out "${OUT:-.}/resnet50.json"
section resnet18 170 ${PY:-python3} benchmarks/gpu_session_step.py \
  --encoder resnet18 --allow_load "${REQUIRE_GPU[@]}" "${DRY_ARG[@]}" \
  --out "${OUT:-.}/resnet18.json"
section summary 10 ${PY:-python3} benchmarks/gpu_session_step.py \
  --summarize "${OUT:-.}" --out "${OUT:-.}/summary.md"

if [ "$PLAN" = 1 ]; then
  echo "worst case: $SECTIONS_TOTAL s (limits + 5 s kill grace each)"
  exit 0
fi
[ "$DRY" = 1 ] || timeout 10 nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
date -u
echo "session: $(( $(date +%s) - START )) s, $FAILED section(s) failed; files in $OUT:"
ls -la "$OUT"
[ "$FAILED" = 0 ]
