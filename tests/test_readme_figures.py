"""Every accuracy on the README's front page comes from the results file it
names (benchmarks/results/): no figure without its file."""

import json
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PERCENT = re.compile(r"(\d+\.\d+)%")
REPRO = re.compile(r"`(?:benchmarks/results/reproduce/)?([a-z0-9_]+_s\d+\.json)`")
FILE = re.compile(r"`(?:benchmarks/results/)?([\w./]+\.json)`")


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
  """Rows naming other results files (not the reproduce runs, checked cell
  by cell below): every percentage in the row is a value of those files."""
  rows = [line for line in _readme().splitlines()
          if line.startswith("|") and FILE.search(line)
          and not REPRO.search(line)]
  for row in rows:
    files = FILE.findall(row)
    figures = [float(p) for p in PERCENT.findall(row)]
    known = set().union(*(_percents_in(f) for f in files))
    for p in figures:
      assert p in known, (row, p, files)


def test_front_table_comes_from_the_file_named_below_it():
  text = _readme()
  table = text[text.index("| encoder (same run)"):]
  table = table[:table.index("\n\n")]
  after = text[text.index(table) + len(table):]
  (path,) = FILE.findall(after[:after.index("\n\n", 2)])[:1]
  known = _percents_in(path)
  figures = [float(p) for p in PERCENT.findall(table)]
  assert len(figures) == 6
  assert all(p in known for p in figures), (figures, path)



def test_reproduce_rows_match_the_table_computed_from_their_files():
  """Each methods-table row that names reproduce results files
  (benchmarks/results/reproduce/<method>_s<seed>.json) shows exactly what
  ssljax.eval.table computes from those files: the method's mean (± std over
  seeds), or, for the baseline rows, random init / raw pixels / from scratch."""
  from ssljax.eval import table as tbl
  text = _readme()
  start = text.index("| method | paper |")
  lines = text[start:text.index("\n\n", start)].splitlines()
  heads = [h.strip() for h in lines[0].strip("|").split("|")]
  rows = [l for l in lines[2:] if REPRO.search(l)]
  assert rows, "no methods-table row names its reproduce results files"
  for line in rows:
    cells = dict(zip(heads, (c.strip() for c in line.strip("|").split("|"))))
    files = REPRO.findall(line)
    results = {}
    for f in files:
      m = re.match(r"(.+)_s(\d+)\.json", f)
      with open(os.path.join(RESULTS, "reproduce", f), encoding="utf-8") as fh:
        results.setdefault(m[1], {})[int(m[2])] = json.load(fh)
    computed = tbl.table(results)
    name = cells["method"].lower()
    key = ("random_init" if name.startswith("random init") else
           "raw_pixels" if name.startswith("raw pixels") else
           "scratch" if name.startswith("from scratch") else
           next(iter(results)))
    for col in ("linear", "kNN", "1% labels", "10% labels"):
      want = tbl._fmt(computed[key].get(col))
      got = cells[col].replace("**", "")
      assert got == want, (line, col, got, want)


def test_margins_table_is_computed_from_the_methods_table_files():
  """The README's margins table (method above / below its baselines, in
  points) equals ssljax.eval.table.margins of the results files that the
  methods table names for the same method, row for row."""
  from ssljax.eval import table as tbl
  text = _readme()
  start = text.index("| method | paper |")
  files_of = {}
  for line in text[start:text.index("\n\n", start)].splitlines()[2:]:
    name = line.strip("|").split("|")[0].strip()
    files = REPRO.findall(line)
    if files and not name.lower().startswith(("random init", "from scratch",
                                              "raw pixels")):
      files_of[name] = files
  heads_want = [h for h, *_ in tbl.MARGINS]
  start = text.index("| method | " + heads_want[0])
  lines = text[start:text.index("\n\n", start)].splitlines()
  heads = [h.strip() for h in lines[0].strip("|").split("|")]
  assert heads == ["method"] + heads_want
  rows = lines[2:]
  assert len(rows) == len(files_of), (len(rows), sorted(files_of))
  # all the methods table's files together, as ssljax.eval.table does: the
  # raw-pixels row is the methods table's (the first method's file)
  results, key_of = {}, {}
  for name, files in files_of.items():
    for f in files:
      m = re.match(r"(.+)_s(\d+)\.json", f)
      with open(os.path.join(RESULTS, "reproduce", f), encoding="utf-8") as fh:
        results.setdefault(m[1], {})[int(m[2])] = json.load(fh)
      key_of[name] = m[1]
  computed = tbl.margins(tbl.table(results, order=list(key_of.values())))
  for line in rows:
    cells = [c.strip() for c in line.strip("|").split("|")]
    want = computed[key_of[cells[0]]]
    assert cells[1:] == [tbl.fmt_margin(want[h]) for h in heads_want], line


DECIMAL = re.compile(r"(?<![\d.])(0\.\d{3})(?![\d%])")


def _decimals_in(path):
  with open(os.path.join(RESULTS, path), encoding="utf-8") as f:
    return {round(v, 3) for v in _leaves(json.load(f))}


def test_own_measure_table_figures_are_in_their_results_files():
  """The table of methods judged by their paper's own measure (AuC,
  cluster accuracy, J, probe accuracy): every 3-decimal figure of a row is
  a value of the files the row names, rounded (percentages: the test
  above)."""
  text = _readme()
  table = text[text.index("| method | paper | config | measure (held out)"):]
  table = table[:table.index("\n\n")]
  rows = table.splitlines()[2:]
  assert len(rows) >= 5
  checked = 0
  for row in rows:
    files = FILE.findall(row)
    assert files, row
    known = set().union(*(_decimals_in(f) for f in files))
    for d in DECIMAL.findall(row):
      assert round(float(d), 3) in known, (row[:60], d, files)
      checked += 1
  assert checked >= 15
