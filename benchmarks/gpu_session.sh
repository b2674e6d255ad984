#!/bin/bash
# One GPU session (written for the H200 lent to this project, 15 minutes of
# device time in all): versions; the SimCLR train-step benchmark (JAX vs
# PyTorch on CUDA, images/s and model FLOP utilization) at batch 256 and 1024;
# the MoCo v2 one at batch 256; the linear probe vs scikit-learn on raw
# Fashion-MNIST pixels (JAX on the GPU, scikit-learn on the CPUs); then, with
# RUN_SWEEP=1, the Fashion-MNIST accuracy sweep (several trials at once on the
# one GPU) and the loss tests on the GPU backend. Everything lands in $OUT.
#
#   OUT=/tmp/gpu_out WHEELS=.whl SSLJAX_DATA_DIR=/usr/share/datasets/fashion-mnist \
#     bash benchmarks/gpu_session.sh
#
# WHEELS (optional): a folder of wheels for packages the GPU image lacks
# (ml_collections, dm-pix, tensorboardX), installed into /tmp/site.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY - <<'EOF'
import importlib
for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "chex", "dm_pix",
          "ml_collections", "torch", "numpy"):
  try:
    mod = importlib.import_module(m)
    print(f"{m:18s} {getattr(mod, '__version__', '?')}")
  except Exception as e:  # noqa: BLE001
    print(f"{m:18s} MISSING: {e}")
import jax
print("jax devices:", jax.devices())
EOF

# JAX would otherwise take 75% of the GPU's memory before torch starts.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# --conv-impl xla: the backend's own convolutions (what the command-1 config's
# conv_impl "auto" resolves to on a GPU; explicit here). --allow_load: a lent
# session is not thrown away by the host load check (benchmarks/_compare.py);
# a busy host is still recorded, as load_flagged, in each JSON.
echo "=== throughput, batch 256 (the config's) ==="
timeout -k 5 110 $PY benchmarks/simclr_throughput.py --torch-device cuda --conv-impl xla \
  --rounds 10 --steps 10 --warmup 3 --allow_load --out "$OUT/throughput_b256.json"
date -u
echo "=== throughput, batch 1024 ==="
timeout -k 5 100 $PY benchmarks/simclr_throughput.py --torch-device cuda --conv-impl xla \
  --batch-size 1024 --rounds 10 --steps 10 --warmup 3 --allow_load \
  --out "$OUT/throughput_b1024.json"

date -u
echo "=== MoCo v2 throughput, batch 256 ==="
timeout -k 5 110 $PY benchmarks/moco_throughput.py --torch-device cuda --conv-impl xla \
  --rounds 10 --steps 10 --warmup 3 --allow_load --out "$OUT/moco_throughput_b256.json"
date -u
echo "=== linear probe vs scikit-learn (raw pixels) ==="
timeout -k 5 150 $PY benchmarks/probe_vs_sklearn.py --features raw \
  --repeats 2 --out "$OUT/probe_vs_sklearn_raw.json"
date -u
[ "${RUN_SWEEP:-0}" = 1 ] || exit 0
echo "=== accuracy sweep ==="
(timeout -k 5 200 $PY -m pytest -q -x tests/test_losses.py -p no:cacheprovider \
   > "$OUT/pytest_losses_gpu.log" 2>&1; echo "pytest exit $?" >> "$OUT/pytest_losses_gpu.log") &
PYTEST_PID=$!
timeout -k 5 "${SWEEP_S:-300}" $PY benchmarks/fashion_mnist_sweep.py \
  --trials "${TRIALS:-long_100ep_b512_out512,long_w64_100ep_b512_out1024,long_60ep_out512,long_w64_100ep_b512,long_100ep_b512,long_w64_60ep,shipped}" \
  --parallel "${PARALLEL:-8}" --deadline-s "$(( ${SWEEP_S:-300} - 20 ))" \
  --out "$OUT/sweep.jsonl"
wait "$PYTEST_PID"   # not a bare wait: that would wait for the tee above
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
date -u
