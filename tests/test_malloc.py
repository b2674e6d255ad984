"""ssljax.cpu.malloc: finding, preloading and re-executing with a caching
allocator; ssljax.cpu.startup, the entry points' start-up line."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import load_module

from ssljax.cpu import malloc

REPO = Path(__file__).resolve().parents[1]

MAPS = textwrap.dedent("""\
    55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 1234  /usr/bin/python3.11
    7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0
    7f1e2d000000-7f1e2d020000 r-xp 00000000 fe:01 99  /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10
    7f1e2e000000-7f1e2e1b0000 r-xp 00000000 fe:01 77  /usr/lib/x86_64-linux-gnu/libc.so.6
    """)


def test_find_off_and_auto(tmp_path, monkeypatch):
  monkeypatch.delenv(malloc.ENV_CHOICE, raising=False)
  empty, full = tmp_path / "empty", tmp_path / "full"
  empty.mkdir()
  full.mkdir()
  (full / "libjemalloc.so.2").write_bytes(b"")
  (full / "libtcmalloc_minimal.so.4").write_bytes(b"")
  for off in ("off", "OFF", "system", "0"):
    assert malloc.find_fast_malloc(off, search_dirs=[str(full)]) is None
  assert malloc.find_fast_malloc("auto", search_dirs=[str(empty)]) is None
  # tcmalloc is preferred over jemalloc; the first folder that has one wins.
  assert malloc.find_fast_malloc("auto", search_dirs=[str(empty), str(full)]) \
      == str(full / "libtcmalloc_minimal.so.4")
  monkeypatch.setenv(malloc.ENV_CHOICE, "off")
  assert malloc.find_fast_malloc(search_dirs=[str(full)]) is None
  monkeypatch.setenv(malloc.ENV_CHOICE, "auto")
  assert malloc.find_fast_malloc(search_dirs=[str(full)]) is not None


def test_find_explicit_path(tmp_path):
  lib = tmp_path / "libmine.so"
  lib.write_bytes(b"")
  assert malloc.find_fast_malloc(str(lib)) == str(lib)
  with pytest.raises(FileNotFoundError, match="SSLJAX_MALLOC.*'off'"):
    malloc.find_fast_malloc(str(tmp_path / "missing.so"))


def test_loaded_malloc_reads_maps():
  assert malloc.loaded_malloc(MAPS) == "libtcmalloc_minimal.so.4.5.10"
  plain = "\n".join(l for l in MAPS.splitlines() if "tcmalloc" not in l)
  assert malloc.loaded_malloc(plain) is None
  assert malloc.loaded_malloc("") is None


def test_malloc_env():
  tc = "/x/libtcmalloc_minimal.so.4"
  env = malloc.malloc_env(tc, {"LD_PRELOAD": "/y/libother.so", "HOME": "/h"})
  assert env["LD_PRELOAD"] == f"{tc}:/y/libother.so"
  assert env["HOME"] == "/h"
  assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) == 1 << 40
  assert "MALLOC_CONF" not in env
  again = malloc.malloc_env(tc, env)                 # no duplicate entry
  assert again["LD_PRELOAD"] == env["LD_PRELOAD"]
  mine = malloc.malloc_env(tc, {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "5"})
  assert mine["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] == "5"  # user's kept
  je = malloc.malloc_env("/x/libjemalloc.so.2", {})
  assert je == {"LD_PRELOAD": "/x/libjemalloc.so.2",
                "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}


def test_shell_exports(tmp_path):
  lib = tmp_path / "libtcmalloc_minimal.so.4"
  lib.write_bytes(b"")
  assert malloc.shell_exports({malloc.ENV_CHOICE: "off"}) == ""
  out = malloc.shell_exports({malloc.ENV_CHOICE: str(lib)})
  assert f"export LD_PRELOAD={lib}" in out.splitlines()
  assert "export TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD=1099511627776" in out
  # Already in place: nothing to export.
  done = malloc.malloc_env(str(lib), {malloc.ENV_CHOICE: str(lib)})
  assert malloc.shell_exports(done) == ""


_CHILD = """
import json, os, sys
print("before", os.getpid(), os.environ.get("LD_PRELOAD", ""), flush=True)
from ssljax.cpu.malloc import reexec_with_fast_malloc, loaded_malloc
reexec_with_fast_malloc()
print("after", os.getpid(), os.environ.get("LD_PRELOAD", ""),
      os.environ.get("SSLJAX_MALLOC_REEXECUTED", "-"), loaded_malloc(),
      json.dumps(sys.argv[1:]), flush=True)
"""


def _run_child(tmp_path, env_extra):
  script = tmp_path / "child.py"
  script.write_text(_CHILD)
  env = {k: v for k, v in os.environ.items()
         if k not in ("LD_PRELOAD", malloc.ENV_REEXECUTED, malloc.ENV_CHOICE)}
  env.update(env_extra)
  out = subprocess.run([sys.executable, str(script), "--a", "b c"], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  return [line.split(" ", 5) for line in out.stdout.splitlines()]


def test_reexec_same_pid_and_arguments(tmp_path):
  """The mechanics, with a harmless library (libm) standing in for the
  allocator: one re-exec, same PID, same arguments, never a second time."""
  libm = next((os.path.join(d, "libm.so.6") for d in malloc.SEARCH_DIRS
               + ("/lib/x86_64-linux-gnu", "/lib64")
               if os.path.isfile(os.path.join(d, "libm.so.6"))), None)
  assert libm is not None, "libm.so.6 not found"
  lines = _run_child(tmp_path, {malloc.ENV_CHOICE: libm})
  before = [l for l in lines if l[0] == "before"]
  after = [l for l in lines if l[0] == "after"]
  assert len(before) == 2 and len(after) == 1      # printed again after exec
  assert before[0][1] == before[1][1] == after[0][1]  # same PID
  assert after[0][2] == libm and after[0][3] == "1"
  assert json.loads(after[0][5]) == ["--a", "b c"]  # argv kept as it was
  # SSLJAX_MALLOC=off: no re-exec at all.
  lines = _run_child(tmp_path, {malloc.ENV_CHOICE: "off"})
  assert [l[0] for l in lines] == ["before", "after"]


def test_reexec_loads_the_real_allocator(tmp_path):
  """With the library scripts/setup.sh installs: the re-executed process has
  it mapped."""
  library = malloc.find_fast_malloc("auto")
  if library is None:
    pytest.skip("no allocator library installed (scripts/setup.sh installs "
                "libtcmalloc-minimal4 where apt-get exists)")
  lines = _run_child(tmp_path, {malloc.ENV_CHOICE: "auto"})
  after = [l for l in lines if l[0] == "after"]
  assert after[0][4] == os.path.basename(os.path.realpath(library)) or \
      after[0][4].startswith(os.path.basename(library))


def test_malloc_step_benchmark(tmp_path):
  """benchmarks/malloc_step.py: one child per allocator, each really running
  the allocator it is labelled with, and the same loss under all of them."""
  bench = load_module(REPO / "benchmarks/malloc_step.py", "malloc_step_bench")
  fake = tmp_path / "lib"
  fake.mkdir()
  (fake / "libjemalloc.so.2").write_bytes(b"")
  envs = bench.allocator_envs({"LD_PRELOAD": "/x.so", "HOME": "/h"},
                              search_dirs=[str(fake)])
  assert sorted(envs) == ["glibc", "glibc-thp", "jemalloc"]
  assert "LD_PRELOAD" not in envs["glibc"] and envs["glibc"]["HOME"] == "/h"
  assert envs["glibc-thp"]["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
  assert envs["jemalloc"]["LD_PRELOAD"] == str(fake / "libjemalloc.so.2")
  assert all(e[malloc.ENV_CHOICE] == "off" for e in envs.values())

  out = bench.main(["--quick", "--out", str(tmp_path / "m.json")])
  summary = out["summary"]
  assert {"glibc", "glibc-thp"} <= set(summary)
  assert summary["glibc"]["malloc"].startswith("glibc")
  if "tcmalloc" in summary:
    assert summary["tcmalloc"]["malloc"].startswith("libtcmalloc")
  assert out["loss_relative_spread"] < 1e-6
  assert all(s["median_ms"] > 0 and s["minor_faults_per_step"] >= 0
             for s in summary.values())


_STARTUP_CHILD = """
import os, sys
print("start", os.getpid(), flush=True)
if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401
jax_loaded = "jax" in sys.modules
from ssljax.models import conv
print("ready", os.getpid(), os.environ.get("LD_PRELOAD", "-"),
      os.environ.get("SSLJAX_MALLOC_REEXECUTED", "-"),
      ssljax.cpu.startup.XLA_FLAGS_CHANGED, jax_loaded,
      ",".join(sorted(conv.CONV_IMPLS)), os.environ.get("XLA_FLAGS", "-"),
      flush=True)
"""


def test_startup_line_does_all_three(tmp_path):
  """ssljax/cpu/startup.py, the entry points' one start-up line: the
  allocator re-exec first (libm standing in), without importing JAX, then the
  XLA:CPU flags, set once, in the re-executed process; and the CPU
  convolutions registered once the models are imported. Each switch turns its
  own part off."""
  from ssljax.cpu import xla_flags  # pylint: disable=import-outside-toplevel
  libm = next((os.path.join(d, "libm.so.6") for d in malloc.SEARCH_DIRS
               + ("/lib/x86_64-linux-gnu", "/lib64")
               if os.path.isfile(os.path.join(d, "libm.so.6"))), None)
  assert libm is not None, "libm.so.6 not found"
  script = tmp_path / "startup_child.py"
  script.write_text(_STARTUP_CHILD)
  base = {k: v for k, v in os.environ.items()
          if k not in ("LD_PRELOAD", "XLA_FLAGS", malloc.ENV_REEXECUTED,
                       malloc.ENV_CHOICE, xla_flags.ENV_CHOICE)}
  expected_flags = xla_flags.cpu_xla_flags({})

  def run(extra):
    out = subprocess.run([sys.executable, str(script)], env={**base, **extra},
                         capture_output=True, text=True, timeout=120, check=True)
    return [line.split(" ", 7) for line in out.stdout.splitlines()]

  lines = run({malloc.ENV_CHOICE: libm})
  assert [l[0] for l in lines] == ["start", "start", "ready"]   # one re-exec
  ready = lines[-1]
  assert ready[2] == libm and ready[3] == "1"
  assert ready[4] == str(expected_flags is not None)
  # JAX comes in with the CPU convolutions, after the re-exec and the flags
  # (the modules before that are standard library only: test below).
  assert ready[5] == "True"
  assert ready[6] == "cpu,matmul,onednn,xla"
  assert ready[7] == (expected_flags or "-")
  lines = run({malloc.ENV_CHOICE: "off", xla_flags.ENV_CHOICE: "off"})
  assert [l[0] for l in lines] == ["start", "ready"]
  assert lines[-1][2:] == ["-", "-", "False", "True", "cpu,matmul,onednn,xla", "-"]


def test_startup_runs_standard_library_only_before_the_reexec():
  """What ``import ssljax.cpu.startup`` runs before it re-executes the
  process (the package ``__init__``, ``malloc``, ``xla_flags``) imports only
  the standard library at module level, so no second of JAX import is wasted
  per re-exec."""
  import ast  # pylint: disable=import-outside-toplevel
  root = os.path.join(os.path.dirname(__file__), "..", "ssljax", "cpu")
  for name in ("__init__.py", "malloc.py", "xla_flags.py"):
    tree = ast.parse(open(os.path.join(root, name), encoding="utf-8").read())
    top = tree.body                  # what runs on import (module level)
    mods = {a.name.split(".")[0] for n in top
            if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in top
             if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    mods -= {"ssljax", "__future__"}
    assert mods <= set(sys.stdlib_module_names), (name, mods)
