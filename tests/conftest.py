"""Test session set-up: fake 8 CPU devices before JAX is first used, and
share compiled programs between tests through JAX's persistent compilation
cache (many tests build the same small train step; on 2 CPU cores the suite
is dominated by XLA compilation). The cache lives in pytest's own cache
folder, keyed by JAX on the program, the JAX version and the flags."""

import os

# Set through the environment (before JAX is imported) so that subprocesses
# the tests start (notebook kernel, multi-process and preemption runs) share
# the cache too.
if os.environ.get("SSLJAX_TEST_COMPILE_CACHE", "1") != "0":
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      ".pytest_cache", "jax_compilation_cache"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # pylint: disable=wrong-import-position

jax.config.update("jax_num_cpu_devices", 8)

# The opt-in CPU layer, as the experiments/ and benchmarks/ scripts load it:
# the shipped configs' conv_impl="auto" then runs what they run on this CPU.
import ssljax.cpu.conv  # noqa: E402,F401  pylint: disable=wrong-import-position
