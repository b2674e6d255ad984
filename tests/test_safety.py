"""No code-executing file format is read: no pickle, no np.load with pickles,
no torch.load / joblib in the library, experiments or benchmarks."""

import ast
import glob
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
SOURCES = sorted(
    f for d in ("ssljax", "experiments", "benchmarks")
    for f in glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True))

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}


def _calls(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      yield node


def _name(func) -> str:
  parts = []
  while isinstance(func, ast.Attribute):
    parts.append(func.attr)
    func = func.value
  if isinstance(func, ast.Name):
    parts.append(func.id)
  return ".".join(reversed(parts))


def test_sources_found():
  assert len(SOURCES) > 30


@pytest.mark.parametrize("path", SOURCES,
                         ids=[os.path.relpath(p, ROOT) for p in SOURCES])
def test_no_code_executing_loads(path):
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      bad = {a.name.split(".")[0] for a in node.names} & UNSAFE_MODULES
      assert not bad, f"{path}: imports {bad}"
    if isinstance(node, ast.ImportFrom) and node.module:
      assert node.module.split(".")[0] not in UNSAFE_MODULES, path
  for call in _calls(tree):
    name = _name(call.func)
    kwargs = {k.arg: k.value for k in call.keywords}
    if name in ("np.load", "numpy.load"):
      flag = kwargs.get("allow_pickle")
      assert isinstance(flag, ast.Constant) and flag.value is False, (
          f"{path}:{call.lineno}: np.load must pass allow_pickle=False")
    assert name not in ("torch.load", "pd.read_pickle"), f"{path}:{call.lineno}"

