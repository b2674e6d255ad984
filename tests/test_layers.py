"""The layers of ssljax (docs/design.md, "Layers"): imports point down only, no
import cycle, no function-level import that hides one.

Every module under ssljax/ is parsed with ``ast`` (nothing is imported), and
its ssljax-internal imports, at module level and inside functions, make the
import graph the tests below check.
"""

from __future__ import annotations

import ast
import collections
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(REPO, "ssljax")

#: The layers, bottom first. A package may import the packages of the layers
#: below its own, never one of its own layer (other than itself) or above.
#: ``run`` is the module ssljax/run.py (restore a run for evaluation).
LAYERS = (
    ("config", "losses", "cli"),   # they import no other ssljax package
    ("parallel",),          # mesh, shardings (re-exports losses' gather)
    ("data",),              # sources, pipelines, global arrays
    ("augment",),
    ("models",),
    ("methods",),
    ("train",),
    ("run",),
    ("eval",),              # gets a restored run / encode function
)
#: Opt-in CPU speed-ups: they may use any layer, nothing outside imports them.
OPT_IN = ("cpu",)
#: Imports the layer order allows but the design forbids: evaluation receives
#: a restored run (or its encode function) from its caller, so it never
#: imports the training loop or ssljax.run.
FORBIDDEN = {
    "eval": ("ssljax.train.loop", "ssljax.run"),
}
#: Function-level imports of ssljax modules that stay, ``(module, imported):
#: reason``. A function-level import must not hide a cycle; lazy imports of
#: optional third-party libraries (TFDS, matplotlib, ...) are not listed here
#: (only ssljax-internal imports are checked).
ALLOWED_FUNCTION_LEVEL: dict[tuple[str, str], str] = {}
#: The packages whose function-level imports
#: test_no_function_level_imports_in_methods_and_train checks on its own.
LATER = ("methods", "train")

_RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _modules() -> dict[str, str]:
  """``{"ssljax.data.sources": path}`` for every .py file under ssljax/."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(ROOT):
    dirnames[:] = sorted(d for d in dirnames
                         if not d.startswith((".", "_")) and d != "__pycache__")
    for name in sorted(filenames):
      if not name.endswith(".py"):
        continue
      path = os.path.join(dirpath, name)
      parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      out[".".join(parts)] = path
  return out


MODULES = _modules()


def _resolve(name: str) -> str:
  """The ssljax module ``name`` lives in (its longest known prefix)."""
  while name and name not in MODULES:
    name = name.rpartition(".")[0]
  return name


def _package(module: str) -> str:
  """``"data"`` for ssljax.data.sources, ``"run"`` for ssljax.run, ``""``
  for ssljax itself."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


Import = collections.namedtuple("Import", "source target line function_level")


def _imports_of(module: str, path: str) -> list[Import]:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  is_package = path.endswith("__init__.py")
  found = []

  def add(name, node, in_function):
    if name == "ssljax" or name.startswith("ssljax."):
      target = _resolve(name)
      if target and target != module:
        found.append(Import(module, target, node.lineno, in_function))

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      inside = in_function or isinstance(
          child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
      if isinstance(child, ast.Import):
        for alias in child.names:
          add(alias.name, child, in_function)
      elif isinstance(child, ast.ImportFrom):
        if child.level:           # relative: from the module's own package
          base = module.split(".")
          base = base if is_package else base[:-1]
          base = base[:len(base) - (child.level - 1)]
          origin = ".".join(base + ([child.module] if child.module else []))
        else:
          origin = child.module or ""
        for alias in child.names:
          sub = f"{origin}.{alias.name}"
          add(sub if sub in MODULES else origin, child, in_function)
      visit(child, inside)

  visit(tree, False)
  return found


IMPORTS = list(dict.fromkeys(imp for module, path in MODULES.items()
                             for imp in _imports_of(module, path)))


def _where(imp: Import) -> str:
  kind = "function-level " if imp.function_level else ""
  return f"{imp.source}:{imp.line} {kind}imports {imp.target}"


def _cycles(edges) -> list[list[str]]:
  """The strongly connected components of more than one node (Tarjan)."""
  graph = collections.defaultdict(set)
  for a, b in edges:
    if a != b:
      graph[a].add(b)
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def strong(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        strong(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(list(graph)):
    if v not in index:
      strong(v)
  return out


def test_the_graph_is_read():
  """The parser sees the library (a guard against a vacuous pass)."""
  assert "ssljax.losses.contrastive" in MODULES and "ssljax.run" in MODULES
  assert Import("ssljax.data.photos", "ssljax.data.dataset", 0, False)._replace(
      line=0) in [i._replace(line=0) for i in IMPORTS]
  assert any(i.source.startswith("ssljax.eval.") and i.target.startswith(
      "ssljax.losses") for i in IMPORTS)


def test_every_package_has_a_layer():
  unknown = sorted({_package(m) for m in MODULES} - set(_RANK) - set(OPT_IN)
                   - {""})
  assert not unknown, (
      f"ssljax packages/modules {unknown} have no layer: add them to LAYERS "
      "in tests/test_layers.py (and to docs/design.md).")


def test_no_import_cycles_between_modules():
  """Module level and function level alike: a function-level import that
  closes a cycle is still a cycle."""
  cycles = _cycles((i.source, i.target) for i in IMPORTS)
  details = [" <-> ".join(c) + ":\n    " + "\n    ".join(
      _where(i) for i in IMPORTS if i.source in c and i.target in c)
             for c in cycles]
  assert not cycles, "import cycles:\n  " + "\n  ".join(details)


def test_no_import_cycles_between_packages():
  edges = {(_package(i.source), _package(i.target)) for i in IMPORTS
           if _package(i.source) and _package(i.target)}
  cycles = _cycles(edges)
  details = [" <-> ".join(c) + ":\n    " + "\n    ".join(
      _where(i) for i in IMPORTS if _package(i.source) in c
      and _package(i.target) in c and _package(i.source) != _package(i.target))
             for c in cycles]
  assert not cycles, "package cycles:\n  " + "\n  ".join(details)


def test_imports_point_down_the_layers():
  bad = []
  for imp in IMPORTS:
    src, dst = _package(imp.source), _package(imp.target)
    if src == dst or not src or src in OPT_IN or dst in OPT_IN:
      continue
    if src not in _RANK or dst not in _RANK:
      continue            # test_every_package_has_a_layer reports these
    if _RANK[dst] >= _RANK[src]:
      bad.append(f"{_where(imp)}: layer {dst!r} is not below {src!r}")
  assert not bad, ("imports that do not point down (order, bottom first: "
                   f"{LAYERS}):\n  " + "\n  ".join(bad))


def test_losses_import_no_other_ssljax_package():
  bad = [_where(i) for i in IMPORTS if _package(i.source) == "losses"
         and _package(i.target) != "losses"]
  assert not bad, "losses/ imports only jax/optax/numpy:\n  " + "\n  ".join(bad)


def test_forbidden_imports():
  bad = [_where(i) for i in IMPORTS
         for pkg, targets in FORBIDDEN.items() if _package(i.source) == pkg
         for t in targets if i.target == t or i.target.startswith(t + ".")]
  assert not bad, ("eval/ gets a restored run or an encode function from its "
                   "caller:\n  " + "\n  ".join(bad))


def test_train_never_imports_eval():
  bad = [_where(i) for i in IMPORTS if _package(i.source) == "train"
         and _package(i.target) == "eval"]
  assert not bad, "train/ must not import eval/:\n  " + "\n  ".join(bad)


def test_cpu_layer_is_opt_in():
  """Nothing outside ssljax/cpu imports it (tolerates its absence)."""
  bad = [_where(i) for i in IMPORTS if _package(i.target) in OPT_IN
         and _package(i.source) not in OPT_IN]
  assert not bad, "ssljax.cpu is opt-in:\n  " + "\n  ".join(bad)


def _function_level(packages, include: bool) -> list[str]:
  out = []
  for imp in IMPORTS:
    if not imp.function_level:
      continue
    if (_package(imp.source) in packages) != include:
      continue
    if (imp.source, imp.target) in ALLOWED_FUNCTION_LEVEL:
      continue
    out.append(_where(imp))
  return out


def test_no_function_level_imports_of_ssljax_modules():
  """Outside methods/ and train/ (their own test below): every ssljax import
  sits at the top of its module, where a cycle would show."""
  bad = _function_level(LATER, include=False)
  assert not bad, (
      "function-level ssljax imports (move them to the top of the module; "
      "a cycle they would close is a layering problem to fix, not to hide):"
      "\n  " + "\n  ".join(bad))


def test_no_function_level_imports_in_methods_and_train():
  bad = _function_level(LATER, include=True)
  assert not bad, (
      "function-level ssljax imports in methods/ and train/:\n  "
      + "\n  ".join(bad))


def test_allow_list_is_current():
  present = {(i.source, i.target) for i in IMPORTS if i.function_level}
  stale = sorted(set(ALLOWED_FUNCTION_LEVEL) - present)
  assert not stale, f"remove from ALLOWED_FUNCTION_LEVEL: {stale}"
