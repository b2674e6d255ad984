"""ssljax/cpu/xla_flags.py: the XLA_FLAGS it sets, when it leaves them alone, and
(in fresh processes) that the flag really moves convolutions off YNNPACK
while dots stay on it, with the same values."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ssljax.cpu import xla_flags

FLAG = xla_flags.CPU_XLA_FLAGS[0]


def test_flags_appended_or_left_alone():
  new = (0, 10, 2)
  assert xla_flags.cpu_xla_flags({}, new) == FLAG
  assert xla_flags.cpu_xla_flags(
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, new) == (
          "--xla_force_host_platform_device_count=8 " + FLAG)
  for off in ("off", "OFF", "0", "false"):
    assert xla_flags.cpu_xla_flags({xla_flags.ENV_CHOICE: off}, new) is None
  # the user's own YNNPACK choice wins
  assert xla_flags.cpu_xla_flags(
      {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}, new) is None
  # jaxlib too old to know the flag, or missing
  assert xla_flags.cpu_xla_flags({}, (0, 9, 9)) is None
  assert xla_flags.cpu_xla_flags({}, None) is None
  # the installed jaxlib is read when no version is given
  installed = xla_flags._jaxlib_version()  # pylint: disable=protected-access
  assert installed >= (0, 7)
  assert (xla_flags.cpu_xla_flags({}) is not None) == (installed[:2] >= xla_flags.MIN_JAXLIB)
  assert xla_flags.shell_exports({xla_flags.ENV_CHOICE: "off"}) == ""
  assert xla_flags.shell_exports({"XLA_FLAGS": "-a"}) in (
      "", f"export XLA_FLAGS='-a {FLAG}'")


CHILD = textwrap.dedent("""
    import json, re, sys, warnings
    from ssljax.cpu.xla_flags import apply_cpu_xla_flags
    changed = apply_cpu_xla_flags()
    import jax, jax.numpy as jnp, numpy as np
    from jax import lax
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 7, 7, 64), np.float32))
    w = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 64, 64), np.float32))
    conv = jax.jit(lambda a, b: lax.conv_general_dilated(
        a, b, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
    dot = jax.jit(lambda a, b: a.reshape(-1, 64) @ b[0, 0])
    def ynn_ops(f):
      text = f.lower(x, w).compile().as_text()
      ops = set()
      for line in text.splitlines():
        if "__ynn_fusion" not in line:
          continue
        name = re.search(r"calls=%?([\\w.\\-]+)", line).group(1)
        body = re.search(r"\\n%?" + re.escape(name) + r" [^{]*\\{(.*?)\\n\\}", text, re.S)
        if body:
          ops |= set(re.findall(r"= \\S+ ([a-z\\-]+)\\(", body.group(1)))
      return sorted(ops)
    print(json.dumps(dict(changed=changed, conv_ynn=ynn_ops(conv), dot_ynn=ynn_ops(dot),
                          y=np.asarray(conv(x, w)).ravel()[:2000].tolist())))
""")


LATE = textwrap.dedent("""
    import json, os, warnings
    import jax.numpy as jnp
    jnp.ones(1).block_until_ready()          # the backend exists now
    from ssljax.cpu.xla_flags import apply_cpu_xla_flags
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      changed = apply_cpu_xla_flags()
    print(json.dumps(dict(changed=changed, flags=os.environ.get("XLA_FLAGS", ""),
                          warnings=[str(w.message) for w in caught])))
""")


def _child(code=CHILD, **env):
  base = {k: v for k, v in os.environ.items()
          if k not in ("XLA_FLAGS", xla_flags.ENV_CHOICE)}
  out = subprocess.run([sys.executable, "-c", code], env={**base, **env},
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(xla_flags.cpu_xla_flags({}) is None,
                    reason="this jaxlib predates the flag; nothing is set")
def test_flag_moves_convolutions_off_ynnpack():
  on, off = _child(), _child(**{xla_flags.ENV_CHOICE: "off"})
  assert on["changed"] and not off["changed"]
  # jaxlib's default puts this convolution on YNNPACK; the flag takes it off,
  # and leaves the matrix products there
  assert "convolution" in off["conv_ynn"]
  assert "convolution" not in on["conv_ynn"]
  assert "dot" in on["dot_ynn"] and "dot" in off["dot_ynn"]
  # the same convolution either way, up to float rounding
  err = max(abs(a - b) for a, b in zip(on["y"], off["y"]))
  assert err < 1e-4 * max(abs(b) for b in off["y"])


@pytest.mark.skipif(xla_flags.cpu_xla_flags({}) is None,
                    reason="this jaxlib predates the flag; nothing is set")
def test_too_late_warns_and_changes_nothing():
  late = _child(LATE)
  assert late["changed"] is False and late["flags"] == ""
  assert any("no effect" in m for m in late["warnings"])
