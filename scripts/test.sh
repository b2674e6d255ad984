#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The caching allocator of ssljax/cpu/malloc.py for the test processes too (and
# the scripts they launch), where it is installed.
eval "$(.venv/bin/python -m ssljax.cpu.malloc)"
# Two workers, one test file each at a time: the suite is dominated by XLA
# compilation, which is single-threaded, so this nearly halves it on 2 cores.
exec .venv/bin/python -m pytest -q -n "${SSLJAX_TEST_WORKERS:-2}" --dist loadfile tests "$@"
