"""Safety lint: no code-executing loads, no shells, no eval/exec.

Every Python file of the repository (tracked, or untracked and not ignored by
git: ssljax/, experiments/, benchmarks/, tests/, docs/, ...) and the code cells
of every notebook are parsed, and the lint flags:

* ``eval`` and ``exec`` (the builtins; a method such as ``model.eval()`` is
  fine);
* any use of ``pickle``, ``cPickle``, ``_pickle``, ``cloudpickle``, ``dill``,
  ``joblib``, ``shelve`` or ``marshal`` (their imports included), and
  ``pandas.read_pickle``;
* ``yaml.load``/``yaml.load_all`` without ``Loader=yaml.SafeLoader`` (or
  ``CSafeLoader``), ``yaml.unsafe_load``, ``yaml.full_load`` (``safe_load`` is
  fine);
* ``shell=`` other than a literal ``False`` in any call, ``os.system``,
  ``os.popen``, ``subprocess.getoutput``/``getstatusoutput``;
* ``torch.load`` without ``weights_only=True``;
* ``np.load`` (also ``jnp.load``, which passes its arguments to it) without
  ``allow_pickle=False``;
* those functions passed around uncalled (their arguments cannot be checked),
  and ``__import__``/``importlib.import_module`` of the modules above.

Names are resolved through each module's imports (anywhere in the module), so
``import numpy as xx; xx.load(...)``, ``from numpy import load`` and ``from
pickle import loads as l`` are caught. Only code is judged: a pattern inside a
string (this file's own examples) is data. The unit tests at the end run the
lint on small sources, so it cannot pass on paper.
"""

import ast
import json
import os
import subprocess
from typing import NamedTuple

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

#: Modules whose loading runs code from the data: never imported.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill",
                  "joblib", "shelve", "marshal"}

#: Qualified names that are flagged wherever they appear (called or not).
FORBIDDEN = {
    "builtins.eval": "eval() runs a string as code",
    "builtins.exec": "exec() runs a string as code",
    "os.system": "os.system runs a shell",
    "os.popen": "os.popen runs a shell",
    "posix.system": "os.system runs a shell",
    "subprocess.getoutput": "subprocess.getoutput runs a shell",
    "subprocess.getstatusoutput": "subprocess.getstatusoutput runs a shell",
    "yaml.unsafe_load": "yaml.unsafe_load builds arbitrary objects",
    "yaml.unsafe_load_all": "yaml.unsafe_load_all builds arbitrary objects",
    "yaml.full_load": "yaml.full_load: use yaml.safe_load",
    "yaml.full_load_all": "yaml.full_load_all: use yaml.safe_load_all",
    "pandas.read_pickle": "pandas.read_pickle unpickles",
}

#: Functions that are safe only with some arguments: name -> rule.
NUMPY_LOADS = ("numpy.load", "numpy.lib.npyio.load", "jax.numpy.load")
TORCH_LOADS = ("torch.load", "torch.serialization.load")
YAML_LOADS = ("yaml.load", "yaml.load_all")
SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader"}

#: Conventional aliases, used when a module does not import the name itself
#: (a notebook cell, a snippet): ``np.load`` is numpy's.
CONVENTIONAL = {"np": "numpy", "jnp": "jax.numpy", "pd": "pandas"}

BUILTINS = {"eval", "exec", "__import__"}


class Finding(NamedTuple):
  line: int
  code: str       # what was found: "eval", "pickle", "numpy.load", "shell=True", ...
  message: str


# ---------------------------------------------------------------------------
# The lint.


def _dotted(node) -> str | None:
  """``a.b.c`` for a chain of attributes on a name, else None."""
  parts = []
  while isinstance(node, ast.Attribute):
    parts.append(node.attr)
    node = node.value
  if not isinstance(node, ast.Name):
    return None
  parts.append(node.id)
  return ".".join(reversed(parts))


def _aliases(tree) -> dict[str, set[str]]:
  """Local name -> the qualified names it is bound to by the module's imports
  (all scopes together: a name imported twice may mean either)."""
  out: dict[str, set[str]] = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if a.asname:
          out.setdefault(a.asname, set()).add(a.name)
        else:                        # import os.path binds os
          top = a.name.split(".")[0]
          out.setdefault(top, set()).add(top)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for a in node.names:
        if a.name != "*":
          out.setdefault(a.asname or a.name, set()).add(f"{node.module}.{a.name}")
  return out


def _resolve(dotted: str, aliases) -> set[str]:
  head, _, rest = dotted.partition(".")
  if head in aliases:
    bases = aliases[head]
  elif head in BUILTINS:
    bases = {f"builtins.{head}"}
  else:
    bases = {CONVENTIONAL.get(head, head)}
  return {f"{b}.{rest}" if rest else b for b in bases}


def _kw(call, name):
  for k in call.keywords:
    if k.arg == name:
      return k.value
  return None


def _is_const(node, value) -> bool:
  return isinstance(node, ast.Constant) and node.value is value


def _name_rule(q: str) -> tuple[str, str] | None:
  """(code, message) for a name flagged wherever it appears, else None."""
  root = q.split(".")[0]
  if root in UNSAFE_MODULES:
    return root, f"{q}: {root} loads run code from the data"
  if q in FORBIDDEN:
    return q.split(".")[-1] if q.startswith("builtins.") else q, FORBIDDEN[q]
  return None


def _call_rule(q: str, call, aliases) -> tuple[str, str] | None:
  """(code, message) when a call of ``q`` with these arguments is unsafe."""
  if q in NUMPY_LOADS and not _is_const(_kw(call, "allow_pickle"), False):
    return "numpy.load", f"{q} must pass allow_pickle=False"
  if q in TORCH_LOADS and not _is_const(_kw(call, "weights_only"), True):
    return "torch.load", f"{q} must pass weights_only=True"
  if q in YAML_LOADS:
    loader = _kw(call, "Loader")
    if loader is None and len(call.args) > 1:
      loader = call.args[1]
    dotted = _dotted(loader) if loader is not None else None
    if not dotted or not _resolve(dotted, aliases) <= SAFE_YAML_LOADERS:
      return "yaml.load", f"{q} needs Loader=yaml.SafeLoader (or yaml.safe_load)"
  if q in ("builtins.__import__", "importlib.import_module") and call.args:
    arg = call.args[0]
    if (isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        and arg.value.split(".")[0] in UNSAFE_MODULES):
      root = arg.value.split(".")[0]
      return root, f"{q}({arg.value!r}): {root} loads run code from the data"
  return None


def lint_tree(tree) -> list[Finding]:
  """The findings of a parsed module, by line."""
  aliases = _aliases(tree)
  parents = {}
  for node in ast.walk(tree):
    for child in ast.iter_child_nodes(node):
      parents[child] = node
  found = []

  for node in ast.walk(tree):
    # Imports of unsafe modules, and of flagged names (from os import system).
    if isinstance(node, ast.Import):
      for a in node.names:
        if a.name.split(".")[0] in UNSAFE_MODULES:
          root = a.name.split(".")[0]
          found.append(Finding(node.lineno, root, f"imports {a.name}"))
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      root = node.module.split(".")[0]
      if root in UNSAFE_MODULES:
        found.append(Finding(node.lineno, root, f"imports from {node.module}"))
      else:
        for a in node.names:
          rule = _name_rule(f"{node.module}.{a.name}")
          if rule:
            found.append(Finding(node.lineno, *rule))

    # shell=True (or anything but a literal False) in any call.
    elif isinstance(node, ast.Call):
      shell = _kw(node, "shell")
      if shell is not None and not _is_const(shell, False):
        found.append(Finding(node.lineno, "shell=True",
                             "shell= other than False runs a shell"))

    # Names: the whole chain a.b.c only, not its parts.
    elif (isinstance(node, (ast.Name, ast.Attribute))
          and isinstance(node.ctx, ast.Load)
          and not isinstance(parents.get(node), ast.Attribute)):
      dotted = _dotted(node)
      if dotted is None:
        continue
      parent = parents.get(node)
      called = isinstance(parent, ast.Call) and parent.func is node
      for q in sorted(_resolve(dotted, aliases)):
        rule = _name_rule(q)
        if rule is None and called:
          rule = _call_rule(q, parent, aliases)
        elif rule is None and q in NUMPY_LOADS + TORCH_LOADS + YAML_LOADS:
          rule = (q, f"{q} used uncalled: its arguments cannot be checked")
        if rule:
          found.append(Finding(node.lineno, *rule))
          break
  return sorted(set(found))


def lint_source(source: str, filename: str = "<string>") -> list[Finding]:
  return lint_tree(ast.parse(source, filename))


def notebook_source(path: str) -> tuple[str, list[int]]:
  """The code cells of a notebook as one module (later cells see earlier
  imports), IPython magics and shell escapes blanked; and the number of the
  cell each line comes from."""
  with open(path, encoding="utf-8") as f:
    nb = json.load(f)
  lines, cell_of = [], []
  for i, cell in enumerate(nb.get("cells", [])):
    if cell.get("cell_type") != "code":
      continue
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else src
    for line in src.splitlines():
      stripped = line.lstrip()
      if stripped.startswith(("%", "!")):
        line = line[:len(line) - len(stripped)] + "pass"
      lines.append(line)
      cell_of.append(i)
  return "\n".join(lines) + "\n", cell_of


def lint_file(path: str) -> list[str]:
  """``path:line: code: message`` for each finding of a .py or .ipynb file."""
  rel = os.path.relpath(path, ROOT)
  if path.endswith(".ipynb"):
    source, cell_of = notebook_source(path)
    return [f"{rel} cell {cell_of[f.line - 1]}: {f.code}: {f.message}"
            for f in lint_source(source, rel)]
  with open(path, encoding="utf-8") as f:
    source = f.read()
  return [f"{rel}:{f.line}: {f.code}: {f.message}"
          for f in lint_source(source, rel)]


def repository_files() -> list[str]:
  """The repository's .py and .ipynb files: tracked, or untracked and not
  ignored (``git ls-files``); without git, a walk that skips hidden folders,
  virtual environments, build outputs and run folders."""
  try:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = [n for n in out.split("\0") if n]
  except (OSError, subprocess.CalledProcessError):
    skip = {"build", "dist", "runs", "workdirs", "reports", "__pycache__",
            "node_modules", "venv"}
    names = []
    for d, subdirs, files in os.walk(ROOT):
      subdirs[:] = [s for s in subdirs if not s.startswith(".") and s not in skip
                    and not s.endswith(".egg-info")]
      names += [os.path.relpath(os.path.join(d, f), ROOT) for f in files]
  paths = [os.path.join(ROOT, n) for n in names if n.endswith((".py", ".ipynb"))]
  return sorted(p for p in paths if os.path.isfile(p))   # deleted, not committed


FILES = repository_files()


# ---------------------------------------------------------------------------
# The repository.


def test_files_found():
  rel = [os.path.relpath(p, ROOT) for p in FILES]
  assert len(rel) > 100
  for top in ("ssljax", "experiments", "benchmarks", "tests"):
    assert any(r.startswith(top + os.sep) for r in rel), top
  assert os.path.join("tests", "test_safety.py") in rel
  assert any(r.endswith(".ipynb") for r in rel)


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(p, ROOT) for p in FILES])
def test_repository_file_is_clean(path):
  problems = lint_file(path)
  assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# The lint itself: what it must flag, what it must let through.

FLAGGED = [
    # (source, code expected among the findings)
    ("eval('1 + 1')", "eval"),
    ("exec('x = 1')", "exec"),
    ("import builtins\nbuiltins.eval('1')", "eval"),
    ("f = eval\nf('1')", "eval"),
    ("import yaml\nyaml.load(s)", "yaml.load"),
    ("import yaml\nyaml.load(s, Loader=yaml.Loader)", "yaml.load"),
    ("import yaml\nyaml.load(s, yaml.FullLoader)", "yaml.load"),
    ("import yaml\nyaml.load_all(s)", "yaml.load"),
    ("import yaml as y\ny.load(s)", "yaml.load"),
    ("from yaml import load\nload(s)", "yaml.load"),
    ("import yaml\nyaml.unsafe_load(s)", "yaml.unsafe_load"),
    ("import yaml\nyaml.full_load(s)", "yaml.full_load"),
    ("import pickle\npickle.loads(b)", "pickle"),
    ("import pickle\npickle.load(f)", "pickle"),
    ("import pickle as pk\npk.loads(b)", "pickle"),
    ("from pickle import loads as l\nl(b)", "pickle"),
    ("from pickle import *", "pickle"),
    ("import cPickle\ncPickle.loads(b)", "cPickle"),
    ("import _pickle\n_pickle.loads(b)", "_pickle"),
    ("import dill\ndill.loads(b)", "dill"),
    ("import joblib\njoblib.load(p)", "joblib"),
    ("from joblib import load\nload(p)", "joblib"),
    ("import shelve\nshelve.open(p)", "shelve"),
    ("__import__('pickle').loads(b)", "pickle"),
    ("import importlib\nimportlib.import_module('dill')", "dill"),
    ("import marshal\nmarshal.loads(b)", "marshal"),
    ("from marshal import loads\nloads(b)", "marshal"),
    ("import pandas as pd\npd.read_pickle(p)", "pandas.read_pickle"),
    ("pd.read_pickle(p)", "pandas.read_pickle"),
    ("import subprocess\nsubprocess.run('ls', shell=True)", "shell=True"),
    ("import subprocess as sp\nsp.Popen(cmd, shell=flag)", "shell=True"),
    ("from subprocess import check_output\ncheck_output('ls', shell=True)",
     "shell=True"),
    ("import subprocess\nsubprocess.getoutput('ls')", "subprocess.getoutput"),
    ("import os\nos.system('ls')", "os.system"),
    ("import os as o\no.system('ls')", "os.system"),
    ("from os import system\nsystem('ls')", "os.system"),
    ("from os import system as run_it\nrun_it('ls')", "os.system"),
    ("import os\nos.popen('ls')", "os.popen"),
    ("import torch\ntorch.load(p)", "torch.load"),
    ("import torch\ntorch.load(p, weights_only=False)", "torch.load"),
    ("import torch\ntorch.load(p, weights_only=flag)", "torch.load"),
    ("import torch as t\nt.load(p)", "torch.load"),
    ("from torch import load\nload(p)", "torch.load"),
    ("from torch import load as tl\ntl(p)", "torch.load"),
    ("import numpy as np\nnp.load(p)", "numpy.load"),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "numpy.load"),
    ("import numpy as np\nnp.load(p, allow_pickle=flag)", "numpy.load"),
    ("import numpy\nnumpy.load(p)", "numpy.load"),
    ("import numpy as xx\nxx.load(p)", "numpy.load"),
    ("from numpy import load\nload(p)", "numpy.load"),
    ("from numpy import load as ld\nld(p, allow_pickle=True)", "numpy.load"),
    ("np.load(p)", "numpy.load"),
    ("import jax.numpy as jnp\njnp.load(p)", "numpy.load"),
    ("import numpy as np\nloaders = [np.load]", "numpy.load"),
    ("def f(p):\n  import numpy as q\n  return q.load(p)", "numpy.load"),
]

NOT_FLAGGED = [
    "import yaml\nyaml.safe_load(s)",
    "from yaml import safe_load\nsafe_load(s)",
    "import yaml\nyaml.safe_load_all(s)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "import yaml\nyaml.load(s, yaml.CSafeLoader)",
    "import yaml\nfrom yaml import SafeLoader\nyaml.load(s, Loader=SafeLoader)",
    "model.eval()",
    "self.model.eval().exec()",
    "import ast\nast.literal_eval('[1, 2]')",
    "from ast import literal_eval\nliteral_eval('[1, 2]')",
    "evaluate(x)\nexecute(y)\nretrieval(z)",
    "x = 'eval(1); import pickle; np.load(p); os.system(c)'",   # data, not code
    "import numpy as np\nnp.load(p, allow_pickle=False)",
    "from numpy import load\nload(p, allow_pickle=False)",
    "import jax.numpy as jnp\njnp.load(p, allow_pickle=False)",
    "import numpy as np\nnp.save(p, x)\nnp.loadtxt(p)",
    "import torch\ntorch.load(p, weights_only=True)",
    "import torch\ntorch.save(x, p)",
    "import subprocess\nsubprocess.run(['ls'], check=True)",
    "import subprocess\nsubprocess.run(['ls'], shell=False)",
    "import os\nos.path.join('a', 'b')\nos.environ.get('X')",
    "import json\njson.loads(s)",
    "import orbax.checkpoint as ocp\nocp.StandardCheckpointer().restore(p)",
    "state.load(p)\nckpt.load(p)",
]


@pytest.mark.parametrize("source,code", FLAGGED,
                         ids=[f"{i}-{c}" for i, (_, c) in enumerate(FLAGGED)])
def test_lint_flags(source, code):
  codes = {f.code for f in lint_source(source)}
  assert code in codes, (source, codes)


@pytest.mark.parametrize("source", NOT_FLAGGED)
def test_lint_lets_through(source):
  assert lint_source(source) == []


def test_lint_reports_the_line():
  found = lint_source("import numpy as np\n\nx = 1\nnp.load(p)\n")
  assert [(f.line, f.code) for f in found] == [(4, "numpy.load")]


def test_lint_reads_notebook_code_cells(tmp_path):
  nb = {"cells": [
      {"cell_type": "markdown", "source": ["eval('1')  # prose, not code"]},
      {"cell_type": "code", "source": ["%matplotlib inline\n", "import numpy as xx\n"]},
      {"cell_type": "code", "source": "!ls\nyy = xx.load(p)\n"},
  ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
  path = tmp_path / "nb.ipynb"
  path.write_text(json.dumps(nb))
  assert lint_file(str(path)) == [
      f"{os.path.relpath(str(path), ROOT)} cell 2: numpy.load: "
      "numpy.load must pass allow_pickle=False"]
