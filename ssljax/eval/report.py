"""Markdown / HTML comparison of several :func:`ssljax.eval.suite.evaluate_suite`
reports: one table per section (a row per run), then each run's pictures.

``report.json`` is read from disk, so its picture paths are not trusted:
:func:`write_report` copies only the pictures that lie inside the run's
``eval_suite`` folder (after following symlinks) and skips, with a
:class:`UnsafePictureWarning`, any absolute path, any path that leaves that
folder (``../``) and any symlink that points outside it.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import shutil
import warnings


class UnsafePictureWarning(UserWarning):
  """A picture path in ``report.json`` points outside its ``eval_suite`` folder."""


def _pct(x) -> str:
  return "" if x is None else f"{100 * float(x):.2f}"


def _num(x, fmt="{:.3f}") -> str:
  return "" if x is None else fmt.format(float(x))


def _get(d, *path):
  for p in path:
    if not isinstance(d, dict) or p not in d:
      return None
    d = d[p]
  return d


def _tables(reports: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
  """``[(title, header, rows)]`` for every section some report has."""
  names = [r.get("name") or os.path.basename(os.path.normpath(r["workdir"]))
           for r in reports]
  secs = [r.get("sections", {}) for r in reports]
  tables = []

  def add(title, header, row_fn, section):
    rows = [[n] + row_fn(s[section]) for n, s in zip(names, secs) if section in s]
    if rows:
      tables.append((title, ["run"] + header, rows))

  add("Linear probe, test accuracy (%)",
      ["SGD", "L-BFGS", "random init (SGD)", "raw pixels (SGD)"],
      lambda s: [_pct(_get(s, "trained", "sgd")), _pct(_get(s, "trained", "lbfgs")),
                 _pct(_get(s, "random_init", "sgd")),
                 _pct(_get(s, "raw_pixels", "sgd"))], "linear")
  add("Linear probe with augmentation (the papers' protocol), test accuracy (%)",
      ["trained", "random init", "preset", "lr", "epochs", "crop area"],
      lambda s: [_pct(_get(s, "trained")), _pct(_get(s, "random_init")),
                 str(_get(s, "preset")), _num(_get(s, "settings", "lr"), "{:g}"),
                 str(_get(s, "settings", "epochs")),
                 str(_get(s, "settings", "crop_area"))], "linear_aug")
  add("Weighted kNN, test accuracy (%)",
      ["cosine", "euclidean", "random init (cosine)"],
      lambda s: [_pct(_get(s, "trained", "cosine")),
                 _pct(_get(s, "trained", "euclidean")),
                 _pct(_get(s, "random", "cosine"))], "knn")
  add("k-means clustering of test features",
      ["NMI", "ARI", "accuracy (%)", "random init NMI", "raw pixels NMI"],
      lambda s: [_num(_get(s, "trained", "nmi")), _num(_get(s, "trained", "ari")),
                 _pct(_get(s, "trained", "cluster_acc")),
                 _num(_get(s, "random", "nmi")), _num(_get(s, "raw_pixels", "nmi"))],
      "cluster")
  rows = []
  for n, s in zip(names, secs):
    for frac, v in (_get(s, "few_labels", "fractions") or {}).items():
      rows.append([n, f"{100 * float(frac):g}%", str(v["labels"]),
                   _pct(v["finetune_pretrained"]), _pct(v["from_scratch"]),
                   _pct(v["linear_probe"])])
  if rows:
    tables.append(("Few labels, test accuracy (%)",
                   ["run", "labels", "images", "fine-tuned pretrained",
                    "from scratch", "linear probe"], rows))
  rows = []
  for n, s in zip(names, secs):
    for key, v in (_get(s, "few_labels", "curve") or {}).items():
      rows.append([n, key, str(v["labels"]), _pct(v["finetune_pretrained"]),
                   _pct(v["from_scratch"])])
  if rows:
    tables.append(("Test accuracy (%) against labels per class",
                   ["run", "per class", "images", "pretrained", "from scratch"],
                   rows))
  rows = []
  for n, s in zip(names, secs):
    rob = s.get("robustness")
    if rob:
      for c, acc in rob.get("mean_accuracy", {}).items():
        rel = acc / rob["clean"] if rob["clean"] else None
        rows.append([n, c, _pct(rob["clean"]), _pct(acc), _num(rel, "{:.3f}")])
  if rows:
    tables.append(("Robustness: probe accuracy (%) under corruption "
                   "(mean over severities)",
                   ["run", "corruption", "clean", "corrupted", "relative"], rows))
  add("Transfer: linear probe (L-BFGS) on another dataset, test accuracy (%)",
      ["dataset", "pretrained", "random init", "raw pixels"],
      lambda s: [str(s.get("dataset")), _pct(s.get("trained")),
                 _pct(s.get("random")), _pct(s.get("raw_pixels"))], "transfer")
  add("Representation health (test features)",
      ["alignment", "uniformity", "effective rank", "dim",
       "collapsed dims", "random-init eff. rank"],
      lambda s: [_num(_get(s, "trained", "alignment")),
                 _num(_get(s, "trained", "uniformity")),
                 _num(_get(s, "trained", "effective_rank"), "{:.1f}"),
                 str(_get(s, "trained", "feature_dim")),
                 _num(_get(s, "trained", "collapsed_dim_fraction"), "{:.2f}"),
                 _num(_get(s, "random", "effective_rank"), "{:.1f}")], "health")
  add("Efficiency",
      ["images/s (median)", "s/epoch", "checkpoints evaluated"],
      lambda s: [_num(s.get("images_per_sec_median"), "{:.0f}"),
                 _num(s.get("seconds_per_epoch"), "{:.0f}"),
                 str(len(s.get("checkpoints", [])))], "efficiency")
  return tables


def _pictures(report: dict) -> dict[str, str]:
  out = {}
  for sec in report.get("sections", {}).values():
    if isinstance(sec, dict):
      out.update(sec.get("files", {}))
  return out


def _run_folder(report: dict) -> str:
  """The run's sub-folder name in the report output: the workdir's last part,
  or ``run`` where that is not a plain name (``.``, ``..``, ``/``)."""
  name = os.path.basename(os.path.normpath(str(report["workdir"])))
  return name if name not in ("", ".", "..") else "run"


def picture_source(workdir: str, rel) -> str | None:
  """The file a ``report.json`` picture path ``rel`` names, or ``None`` (with an
  :class:`UnsafePictureWarning`) where it is not a relative path to a file
  inside ``workdir/eval_suite`` once symlinks are followed.

  Args:
    workdir: The run's workdir (the folder holding ``eval_suite/``).
    rel: The picture path as ``report.json`` gives it, relative to
      ``workdir/eval_suite``.

  Returns:
    The picture's real path, or ``None`` when it is unsafe or missing.
  """
  root = os.path.realpath(os.path.join(workdir, "eval_suite"))
  if not isinstance(rel, str) or not rel or os.path.isabs(rel):
    warnings.warn(
        f"{os.path.join(root, 'report.json')}: picture path {rel!r} skipped: "
        "it must be a path relative to the eval_suite folder; re-run "
        "experiments/evaluate.py to rewrite report.json.",
        UnsafePictureWarning, stacklevel=2)
    return None
  src = os.path.realpath(os.path.join(root, rel))
  if os.path.commonpath([root, src]) != root:
    warnings.warn(
        f"{os.path.join(root, 'report.json')}: picture path {rel!r} skipped: "
        f"it resolves to {src}, outside {root} (a '..' part or a symlink "
        "pointing out); only pictures inside the eval_suite folder are copied. "
        "Re-run experiments/evaluate.py to rewrite report.json.",
        UnsafePictureWarning, stacklevel=2)
    return None
  return src if os.path.isfile(src) else None


def markdown_report(reports: list[dict], image_root: str | None = None) -> str:
  """The tables (and, with ``image_root``, links to each run's pictures under
  ``image_root/<run>/``) as Markdown."""
  lines = ["# ssljax evaluation report", ""]
  for r in reports:
    lines.append(f"- `{r['workdir']}`: {r['method']} on {r['dataset']}, "
                 f"checkpoint step {r['step']}")
  for title, header, rows in _tables(reports):
    lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
  if image_root is not None:
    for r in reports:
      name = _run_folder(r)
      pics = _pictures(r)
      if pics:
        lines += ["", f"## Pictures: {name}", ""]
        lines += [f"![{k}]({image_root}/{name}/{os.path.basename(v)})"
                  for k, v in pics.items()]
  return "\n".join(lines) + "\n"


def html_report(reports: list[dict], image_root: str = ".") -> str:
  esc = html_lib.escape
  parts = ["<!doctype html><html><head><meta charset='utf-8'>"
           "<title>ssljax evaluation report</title><style>"
           "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
           "td:first-child{text-align:left}img{max-width:45%;margin:4px}"
           "</style></head><body><h1>ssljax evaluation report</h1><ul>"]
  for r in reports:
    parts.append(f"<li><code>{esc(r['workdir'])}</code>: {esc(r['method'])} on "
                 f"{esc(r['dataset'])}, step {r['step']}</li>")
  parts.append("</ul>")
  for title, header, rows in _tables(reports):
    parts.append(f"<h2>{esc(title)}</h2><table><tr>"
                 + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
      parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
  for r in reports:
    name = _run_folder(r)
    pics = _pictures(r)
    if pics:
      parts.append(f"<h2>Pictures: {esc(name)}</h2>")
      parts += [f"<img alt='{esc(k)}' title='{esc(k)}' "
                f"src='{esc(image_root)}/{esc(name)}/{esc(os.path.basename(v))}'>"
                for k, v in pics.items()]
  parts.append("</body></html>")
  return "\n".join(parts)


def load_report(workdir: str) -> dict:
  path = os.path.join(workdir, "eval_suite", "report.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: run experiments/evaluate.py "
                            f"--workdir {workdir} first.")
  with open(path) as f:
    return json.load(f)


def write_report(workdirs: list[str], out_dir: str) -> tuple[str, str]:
  """Write ``out_dir/report.md`` and ``report.html`` (pictures copied into
  ``out_dir/<run>/``); returns both paths.

  Only pictures inside each ``workdir/eval_suite`` are copied and linked; a
  picture path in ``report.json`` that is absolute or leads outside that
  folder (``..``, a symlink) is skipped with an :class:`UnsafePictureWarning`
  (see :func:`picture_source`).
  """
  reports = [load_report(w) for w in workdirs]
  os.makedirs(out_dir, exist_ok=True)
  for w, r in zip(workdirs, reports):
    name = _run_folder(r)
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for sec in r.get("sections", {}).values():
      if not isinstance(sec, dict) or not isinstance(sec.get("files"), dict):
        continue
      kept = {}
      for key, rel in sec["files"].items():
        src = picture_source(w, rel)
        if src is None:
          continue
        kept[key] = rel
        shutil.copy(src, os.path.join(out_dir, name, os.path.basename(rel)))
      sec["files"] = kept
  md_path = os.path.join(out_dir, "report.md")
  html_path = os.path.join(out_dir, "report.html")
  with open(md_path, "w") as f:
    f.write(markdown_report(reports, image_root="."))
  with open(html_path, "w") as f:
    f.write(html_report(reports, image_root="."))
  return md_path, html_path
