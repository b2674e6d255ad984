"""Command-line start-up shared by the ``experiments/`` scripts: a user's
mistake in the flags or the config file is one line on stderr and exit
status 1, never a traceback.

``app.run(main, flags_parser=flags_parser("pretrain"))`` parses the flags as
absl does, then loads each ``config_flags`` file at once (ml_collections loads
it lazily, so a missing file or a syntax error would otherwise surface as a
traceback inside ``main``) and reports, in one message naming the flag:

* a missing or unreadable ``--config`` file, a syntax error in it, a
  ``get_config`` that raises;
* a ``--config.key=value`` override of a key the config does not have, or
  with a value of the wrong type;
* any other flag error (absl's own message, without its "FATAL" banner).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence

from absl import flags

__all__ = ["flags_parser", "fail", "quiet_checkpoint_errors"]


class _DropOrbaxErrors(logging.Filter):
  def filter(self, record):
    return not (record.levelno >= logging.ERROR
                and "orbax" in (record.pathname or ""))


def quiet_checkpoint_errors() -> None:
  """Drop Orbax's own ERROR log records (with their tracebacks): the errors
  they describe reach the script as exceptions, which it reports in one
  message (a failed save names the step and the intact checkpoint)."""
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  handlers = list(logging.getLogger().handlers)
  handlers.append(absl_logging.get_absl_handler())
  for h in handlers:
    if not any(isinstance(f, _DropOrbaxErrors) for f in h.filters):
      h.addFilter(_DropOrbaxErrors())


def fail(prog: str, message: str, status: int = 1):
  """Print ``prog: message`` on stderr and exit with ``status``."""
  print(f"{prog}: {message}", file=sys.stderr, flush=True)
  sys.exit(status)


def _override_key(argv: Sequence[str], missing: str) -> str | None:
  for arg in argv:
    m = re.match(r"--([\w.]+)=?", arg)
    if m and m.group(1).split(".")[-1] == missing:
      return arg
  return None


def _config_args(argv: Sequence[str]) -> str:
  args = []
  for i, a in enumerate(argv[1:], 1):
    if a.startswith("--config"):
      args.append(a)
      if a == "--config" and i + 1 < len(argv):
        args.append(argv[i + 1])
  return " ".join(args) or "the --config flags"


def flags_parser(prog: str, config_flags: Sequence[str] = ("config",)
                 ) -> Callable[[list[str]], list[str]]:
  """An absl ``flags_parser`` for ``app.run`` that turns flag and config
  errors into :func:`fail` (see the module docstring)."""

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
    except flags.Error as e:
      fail(prog, f"{e} (see --helpshort).")
    except AttributeError as e:       # an override of a key the config lacks
      missing = str(e).strip("\"'")
      arg = _override_key(argv[1:], missing) or f"--config.{missing}"
      fail(prog, f"{arg}: the config has no key {missing!r}. Check the "
           "spelling (nested keys are --config.<section>.<key>); the config "
           "file's get_config() lists the keys there are.")
    except Exception as e:  # pylint: disable=broad-except
      # get_config() itself raised, or an override could not be applied.
      fail(prog, f"the config cannot be built from {_config_args(argv)} "
           f"({type(e).__name__}: {e}).")
    for name in config_flags:
      if name not in flags.FLAGS:
        continue
      try:
        flags.FLAGS[name].value.keys()   # a file that failed to load raises
      except Exception as e:  # pylint: disable=broad-except
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        path = next((a.split("=", 1)[1] if "=" in a else None
                     for a in argv if a.startswith(f"--{name}=")), None)
        if path is None and f"--{name}" in argv:
          i = argv.index(f"--{name}")
          path = argv[i + 1] if i + 1 < len(argv) else None
        fail(prog, f"--{name} {path or ''}: the config file cannot be loaded "
             f"({lines[-1] if lines else type(e).__name__}). Pass a Python "
             "file with a get_config(), e.g. "
             "experiments/configs/simclr_fashion_mnist.py.")
    return rest

  return parse
