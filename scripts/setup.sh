#!/usr/bin/env bash
# Set up ssljax on a fresh machine (idempotent):
#   - the Debian package dataset-fashion-mnist (where apt-get exists and the
#     files are missing),
#   - a virtual environment at .venv/ with ssljax installed in editable mode
#     plus the extras the README's two commands need: test, cpu (oneDNN),
#     data (TFDS), eval (scikit-learn, matplotlib, UMAP), video (OpenCV); set
#     SSLJAX_EXTRAS to choose others (e.g. test,cpu,data,eval,video,bench).
set -euo pipefail
cd "$(dirname "$0")/.."

FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian package dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
# espeak-ng synthesizes the spoken-word dataset of sequence CPC
# (ssljax/data/speech.py, experiments/cpc_audio.py).
if ! command -v espeak-ng >/dev/null && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian package espeak-ng"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng
fi

# opencv-doc ships the natural colour photos of colorization
# (ssljax/data/photos.py, experiments/configs/*_photos.py).
if [ ! -d /usr/share/doc/opencv-doc/examples/data ] && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian package opencv-doc"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq opencv-doc
fi

# libtcmalloc-minimal4: a caching allocator; the train step ran 1.15-1.55x
# faster on CPU with it (XLA's per-step buffers stop being page-faulted in
# afresh; ssljax/cpu/malloc.py, BENCHMARKS.md "Memory allocator"). The entry
# points preload it themselves; SSLJAX_MALLOC=off keeps glibc's malloc.
have_tcmalloc() {
  for f in /usr/lib/*/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4 \
           /usr/lib/libtcmalloc_minimal.so.4; do
    [ -f "$f" ] && return 0
  done
  return 1
}
if ! have_tcmalloc && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian package libtcmalloc-minimal4"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libtcmalloc-minimal4 \
    || echo "[setup] libtcmalloc-minimal4 not installed: CPU steps run with glibc malloc (slower)"
fi

# g++ compiles ssljax's oneDNN convolution kernels (conv_impl="auto" on CPU,
# ssljax/cpu/onednn.py; oneDNN itself comes from pip, the `cpu` extra).
if ! command -v g++ >/dev/null && ! command -v c++ >/dev/null && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian package g++"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++ \
    || echo "[setup] g++ not installed: conv_impl='auto' takes 'cpu' instead of 'onednn' (slower)"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
EXTRAS=${SSLJAX_EXTRAS:-test,cpu,data,eval,video}
STAMP=.venv/.ssljax-installed
WANT="$(cat setup.cfg pyproject.toml | sha1sum | cut -c1-16)-$EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[setup] installing ssljax[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
# Build the oneDNN kernels now rather than in the first training step (a few
# seconds; reports and goes on where they cannot be built).
.venv/bin/python -m ssljax.cpu.onednn | tail -1
echo "[setup] ready: $(.venv/bin/python -c 'import jax, flax; print("jax", jax.__version__, "flax", flax.__version__)')"
