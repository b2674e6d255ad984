"""The methods table and the few-label picture, from the results files of
``experiments/reproduce.py`` (one ``<method>_s<seed>.json`` per run, written by
``experiments/evaluate.py --results``; ``ssljax.eval.standard``).

Every cell is a test accuracy of the configuration chosen on validation; with
several seeds, mean +- standard deviation (ddof 1). The baseline rows (random
init, raw pixels, from scratch) come from the same files (seed 0 of the first
method with them): they do not depend on the pre-training.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from ssljax.eval.standard import summary

#: Columns: (header, encoder entry, key in ``standard.summary`` rows).
COLUMNS = (("linear", "linear"), ("kNN", "knn"),
           ("1% labels", "finetune 1%"), ("10% labels", "finetune 10%"),
           ("1% frozen", "probe 1%"), ("10% frozen", "probe 10%"))

_NAME = re.compile(r"^(?P<method>.+)_s(?P<seed>\d+)\.json$")


def load_results(results_dir: str) -> dict[str, dict[int, dict]]:
  """``{method: {seed: result}}`` of the protocol results in ``results_dir``."""
  out: dict[str, dict[int, dict]] = {}
  for path in sorted(glob.glob(os.path.join(results_dir, "*_s*.json"))):
    m = _NAME.match(os.path.basename(path))
    if not m:
      continue
    with open(path) as f:
      result = json.load(f)
    if "results" not in result:      # not a standard-protocol result
      continue
    out.setdefault(m["method"], {})[int(m["seed"])] = result
  return out


def _summary(result):
  return summary(result)


def _cell(values) -> dict:
  v = np.asarray(values, np.float64) * 100
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1
          else None, "n": int(len(v)), "values": [float(x) for x in v]}


def _fmt(cell) -> str:
  if cell is None:
    return "-"
  if cell["std"] is None:
    return f"{cell['mean']:.2f}"
  return f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def _baseline_rows(result) -> dict:
  """random init / raw pixels / from scratch rows of one result file."""
  s = _summary(result)
  rows = {}
  for name in ("random_init", "raw_pixels"):
    if name in s:
      rows[name] = {h: _cell([s[name][k]]) if k in s[name] else None
                    for h, k in COLUMNS}
      # nothing to fine-tune: their few-label cells are the frozen probe's
      for pct in ("1%", "10%"):
        rows[name][f"{pct} labels"] = rows[name][f"{pct} frozen"]
  if "scratch" in s:
    sc = s["scratch"]
    rows["scratch"] = {h: _cell([sc[k.split()[-1]]]) if k.startswith(
        "finetune") and k.split()[-1] in sc else None for h, k in COLUMNS}
    if "100%" in sc:
      rows["scratch"]["100% labels"] = _cell([sc["100%"]])
  return rows


def table(results: dict[str, dict[int, dict]], order=None) -> dict:
  """Rows ``{name: {column: cell}}``: per method (over its seeds), then its
  own network at random init (``"<method> random_init"``) and trained from
  scratch on the labels alone (``"<method> scratch"``), both from its seed-0
  (lowest seed) file; then raw pixels (the same for every method). With one
  method, the baseline rows are also under ``random_init`` / ``scratch``."""
  rows: dict[str, dict] = {}
  methods = [m for m in (order or []) if m in results] + sorted(
      m for m in results if m not in (order or []))
  raw = None
  for method in methods:
    sums = [_summary(r)["trained"] for r in results[method].values()]
    rows[method] = {h: _cell([s[k] for s in sums]) if all(k in s for s in sums)
                    else None for h, k in COLUMNS}
    rows[method]["seeds"] = sorted(results[method])
    base = _baseline_rows(results[method][min(results[method])])
    for name in ("random_init", "scratch"):
      if name in base:
        rows[f"{method} {name}"] = base[name]
        if len(methods) == 1:
          rows[name] = base[name]
    raw = raw or base.get("raw_pixels")
  if raw is not None:
    rows["raw_pixels"] = raw
  return rows


#: The margins table: (header, method column, baseline row, baseline column).
#: The baseline row is ``raw_pixels`` or the method's own ``random_init`` /
#: ``scratch`` row.
MARGINS = (("linear vs raw pixels", "linear", "raw_pixels", "linear"),
           ("kNN vs raw pixels", "kNN", "raw_pixels", "kNN"),
           ("linear vs random init", "linear", "random_init", "linear"),
           ("1% vs from scratch", "1% labels", "scratch", "1% labels"),
           ("10% vs from scratch", "10% labels", "scratch", "10% labels"))


def margins(rows: dict) -> dict:
  """``{method: {header: points}}``: how far each method's mean is above
  (> 0) or below (< 0) its baselines -- raw pixels, its own network at random
  init, the same network trained from scratch on the same labels -- in
  accuracy points (test split), for the headers of :data:`MARGINS`. A
  baseline or cell that is missing gives None."""
  out = {}
  for name, row in rows.items():
    if "seeds" not in row:           # a baseline row
      continue
    out[name] = {}
    for head, col, base, bcol in MARGINS:
      brow = rows.get(base if base == "raw_pixels" else f"{name} {base}")
      a, b = row.get(col), (brow or {}).get(bcol)
      out[name][head] = (None if a is None or b is None
                         else a["mean"] - b["mean"])
  return out


def fmt_margin(value) -> str:
  """``+3.88`` / ``-0.70`` (points, two decimals), ``-`` when missing."""
  return "-" if value is None else f"{value:+.2f}"


def margins_markdown(rows: dict) -> str:
  heads = [h for h, *_ in MARGINS]
  lines = ["| method | " + " | ".join(heads) + " |",
           "|---|" + "---|" * len(heads)]
  for name, m in margins(rows).items():
    lines.append(f"| {name} | " + " | ".join(fmt_margin(m[h]) for h in heads)
                 + " |")
  return "\n".join(lines)


def markdown(rows: dict) -> str:
  heads = [h for h, _ in COLUMNS]
  lines = ["| encoder | seeds | " + " | ".join(heads) + " |",
           "|---|---|" + "---|" * len(heads)]
  for name, row in rows.items():
    seeds = ",".join(map(str, row.get("seeds", []))) or "-"
    lines.append(f"| {name} | {seeds} | " + " | ".join(
        _fmt(row.get(h)) for h in heads) + " |")
  return "\n".join(lines)


def few_label_picture(results: dict, rows: dict, path: str) -> str:
  """Test accuracy with 1% and 10% of the labels, one panel each: per method
  its encoder fine-tuned and frozen (linear probe), mean +- std over seeds,
  next to its own network trained from scratch on the labels alone; the
  dotted line is a linear probe on raw pixels."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  names = list(results)
  fig, axes = plt.subplots(1, 2, figsize=(3 + 1.6 * len(names), 4.2), dpi=120,
                           sharey=True)
  kinds = (("labels", "pre-trained, fine-tuned", "C0"),
           ("frozen", "pre-trained, frozen (linear probe)", "C2"),
           ("scratch", "same network from scratch", "C3"))
  width = 0.26
  lows = []
  for ax, pct in zip(axes, ("1%", "10%")):
    for k, (kind, label, color) in enumerate(kinds):
      xs, ys, es = [], [], []
      for i, name in enumerate(names):
        row = rows.get(f"{name} scratch") if kind == "scratch" else rows[name]
        cell = (row or {}).get(f"{pct} labels" if kind != "frozen"
                               else f"{pct} frozen")
        if cell:
          xs.append(i + (k - 1) * width)
          ys.append(cell["mean"])
          es.append(cell["std"] or 0)
      if xs:
        ax.bar(xs, ys, width, yerr=es, capsize=2, color=color, label=label)
        lows.extend(ys)
    raw = rows.get("raw_pixels", {}).get(f"{pct} frozen")
    if raw:
      ax.axhline(raw["mean"], color="gray", ls=":", label="raw pixels, linear probe")
      lows.append(raw["mean"])
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_title(f"{pct} of the labels")
    ax.grid(axis="y", alpha=0.3)
  axes[0].set_ylabel("Fashion-MNIST test accuracy (%)")
  if lows:
    axes[0].set_ylim(max(0, min(lows) - 5), 100)
  handles, labels = axes[1].get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4)
  fig.tight_layout(rect=(0, 0.07, 1, 1))
  fig.savefig(path)
  plt.close(fig)
  return path


def write_table(results_dir: str, order=None) -> str:
  """Write ``table.md``, ``table.json`` and ``few_labels.png`` into
  ``results_dir``; returns the markdown path."""
  results = load_results(results_dir)
  if not results:
    raise FileNotFoundError(f"no protocol results (*_s<seed>.json) in "
                            f"{results_dir}: run experiments/reproduce.py first.")
  rows = table(results, order)
  ordered = [m for m in (order or []) if m in results]
  results = {m: results[m] for m in ordered + sorted(set(results) - set(ordered))}
  md = os.path.join(results_dir, "table.md")
  with open(md, "w") as f:
    f.write(markdown(rows) + "\n\nMargins (accuracy points; > 0: the "
            "method is above the baseline):\n\n" + margins_markdown(rows)
            + "\n")
  with open(os.path.join(results_dir, "table.json"), "w") as f:
    json.dump({"rows": rows, "margins": margins(rows), "files": {m: [f"{m}_s{s}.json" for s in sorted(r)]
                                       for m, r in results.items()}}, f, indent=1)
  few_label_picture(results, rows, os.path.join(results_dir, "few_labels.png"))
  return md
