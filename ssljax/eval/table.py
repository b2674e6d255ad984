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
  from ssljax.eval.standard import summary   # noqa: PLC0415 (JAX-free import path)
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


def table(results: dict[str, dict[int, dict]], order=None) -> dict:
  """Rows ``{name: {column: cell}}``: one per method (over its seeds), then
  the baselines."""
  rows: dict[str, dict] = {}
  methods = [m for m in (order or []) if m in results] + sorted(
      m for m in results if m not in (order or []))
  for method in methods:
    sums = [_summary(r)["trained"] for r in results[method].values()]
    rows[method] = {h: _cell([s[k] for s in sums]) if all(k in s for s in sums)
                    else None for h, k in COLUMNS}
    rows[method]["seeds"] = sorted(results[method])
  base = next((results[m][min(results[m])] for m in methods), None)
  if base is not None:
    s = _summary(base)
    for name in ("random_init", "raw_pixels"):
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
  """Test accuracy against the share of labels: each method fine-tuned
  (mean over seeds), the frozen probe of the best, and the network trained
  from scratch on the labels alone."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  xs = [1, 10]
  for name in results:
    row = rows[name]
    ys = [row.get(f"{x}% labels") for x in xs]
    if all(ys):
      ax.errorbar(xs, [y["mean"] for y in ys], yerr=[y["std"] or 0 for y in ys],
                  marker="o", capsize=3, label=f"{name} (fine-tuned)")
  sc = rows.get("scratch")
  if sc:
    pts = [(x, sc.get(f"{x}% labels")) for x in (1, 10)] + [
        (100, sc.get("100% labels"))]
    pts = [(x, c["mean"]) for x, c in pts if c]
    ax.plot(*zip(*pts), "k--", marker="s", label="from scratch (labels only)")
  for name, style in (("raw_pixels", ":"), ("random_init", "-.")):
    if name in rows:
      ys = [rows[name].get(f"{x}% frozen") for x in xs]
      if all(ys):
        ax.plot(xs, [y["mean"] for y in ys], style, color="gray",
                label=f"{name.replace('_', ' ')} (linear probe)")
  ax.set_xscale("log")
  ax.set_xticks([1, 10, 100], ["1%", "10%", "100%"])
  ax.set_xlabel("share of the Fashion-MNIST training labels")
  ax.set_ylabel("test accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
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
  md = os.path.join(results_dir, "table.md")
  with open(md, "w") as f:
    f.write(markdown(rows) + "\n")
  with open(os.path.join(results_dir, "table.json"), "w") as f:
    json.dump({"rows": rows, "files": {m: [f"{m}_s{s}.json" for s in sorted(r)]
                                       for m, r in results.items()}}, f, indent=1)
  few_label_picture(results, rows, os.path.join(results_dir, "few_labels.png"))
  return md
