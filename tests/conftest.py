"""Test session set-up: run JAX on 8 faked CPU devices, and share compiled
programs between tests through JAX's persistent compilation cache (many tests
build the same small train step; on 2 CPU cores the suite is dominated by XLA
compilation). The cache lives in pytest's own cache folder, keyed by JAX on
the program, the JAX version and the flags.

Platform: the suite runs on the CPU even on a host with an accelerator, so
that the tests of sharding over 8 devices run everywhere (a missing device
count fails them, see ``helpers.require_devices``; it never skips them).
This sets ``JAX_PLATFORMS`` (replacing the caller's) before JAX is first used;
subprocesses the tests start (notebook kernel, preemption and allocator runs)
inherit it. Environment knobs:

  SSLJAX_TEST_PLATFORMS: the value ``JAX_PLATFORMS`` gets, "cpu" when unset.
      ``SSLJAX_TEST_PLATFORMS=cuda`` (or ``gpu``, ``tpu``) runs the suite on
      an accelerator, where the 8-device tests fail unless it has 8 devices;
      an empty value leaves ``JAX_PLATFORMS`` as the caller set it.
  SSLJAX_TEST_COMPILE_CACHE: "0" turns the persistent compilation cache off.
"""

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

# The platform, also through the environment, for the same reason.
_PLATFORMS = os.environ.get("SSLJAX_TEST_PLATFORMS", "cpu")
if _PLATFORMS:
  os.environ["JAX_PLATFORMS"] = _PLATFORMS

import jax  # pylint: disable=wrong-import-position

if _PLATFORMS:
  # In case JAX was imported before this file (a plugin): the backends are
  # only made on first use, so this still takes effect.
  jax.config.update("jax_platforms", _PLATFORMS)
jax.config.update("jax_num_cpu_devices", 8)

# The opt-in CPU layer, as the experiments/ and benchmarks/ scripts load it:
# the shipped configs' conv_impl="auto" then runs what they run on this CPU.
import ssljax.cpu.conv  # noqa: E402,F401  pylint: disable=wrong-import-position
