"""Every accuracy on the README's front page comes from the results file it
names (benchmarks/results/): no figure without its file."""

import json
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PERCENT = re.compile(r"(\d+\.\d+)%")
FILE = re.compile(r"`(?:benchmarks/results/)?([\w.]+\.json)`")


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  elif isinstance(tree, list):
    for v in tree:
      yield from _leaves(v)
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    yield float(tree)


def _percents_in(path):
  with open(os.path.join(RESULTS, path), encoding="utf-8") as f:
    return {round(100 * v, 2) for v in _leaves(json.load(f)) if 0 <= v <= 1}


def _readme():
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    return f.read()


def test_methods_table_figures_are_in_their_results_files():
  rows = [line for line in _readme().splitlines()
          if line.startswith("|") and FILE.search(line)]
  assert len(rows) >= 6, rows
  for row in rows:
    files = FILE.findall(row)
    figures = [float(p) for cell in row.split("|")[4:5]
               for p in PERCENT.findall(cell)]
    known = set().union(*(_percents_in(f) for f in files))
    for p in figures:
      assert p in known, (row, p, files)


def test_front_table_comes_from_the_file_named_below_it():
  text = _readme()
  table = text[text.index("| encoder (same run)"):]
  table = table[:table.index("\n\n")]
  after = text[text.index(table) + len(table):]
  (path,) = FILE.findall(after[:after.index("\n\n", 2)])[:1]
  known = _percents_in(os.path.basename(path))
  figures = [float(p) for p in PERCENT.findall(table)]
  assert len(figures) == 6
  assert all(p in known for p in figures), (figures, path)
