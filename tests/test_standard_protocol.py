"""The standard evaluation protocol (ssljax.eval.standard), the methods table
(ssljax.eval.table) and experiments/reproduce.py: choices on validation only,
the same label subsets for every method, the cached scratch baseline, and the
table's numbers against an independent computation."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import tiny_config

from ssljax.eval import standard, table
from ssljax.eval.linear import train_linear_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blobs(n, seed, d=6, classes=3):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n).astype(np.int32)
  centres = np.eye(classes, d) * 3
  return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_probe_reports_on_test_the_classifier_chosen_on_validation():
  (xa, ya), (xb, yb), (xc, yc) = _blobs(300, 0), _blobs(100, 1), _blobs(100, 2)
  wds = (1e-4, 1.0)          # 1.0 shrinks the classifier to near chance
  out = standard.probe(xa, ya, xb, yb, xc, yc, num_classes=3,
                       weight_decays=wds, lr=0.1, batch_size=64, min_epochs=5,
                       min_steps=50)
  # independently: standardize with train statistics, fit each decay alone
  mean, std = xa.mean(0), xa.std(0) + 1e-6
  z = lambda x: (x - mean) / std
  accs = {}
  for wd in wds:
    p = train_linear_classifier(z(xa), ya, num_classes=3, epochs=out["epochs"],
                                batch_size=64, lr=0.1, weight_decay=wd)
    pred = lambda x: np.argmax(z(x) @ np.asarray(p["w"]) + np.asarray(p["b"]), 1)
    accs[wd] = (np.mean(pred(xb) == yb), np.mean(pred(xc) == yc))
  best = max(wds, key=lambda w: accs[w][0])
  assert out["weight_decay"] == best == 1e-4
  assert out["validation"] == pytest.approx(accs[best][0], abs=0.011)
  assert out["test"] == pytest.approx(accs[best][1], abs=0.011)
  assert out["test"] > 0.9


def test_choices_do_not_depend_on_the_test_labels():
  (xa, ya), (xb, yb), (xc, yc) = _blobs(300, 0), _blobs(100, 1), _blobs(100, 2)
  kw = dict(num_classes=3, weight_decays=(1e-4, 1e-2, 1.0), lr=0.1,
            batch_size=64, min_epochs=3, min_steps=30)
  a = standard.probe(xa, ya, xb, yb, xc, yc, **kw)
  b = standard.probe(xa, ya, xb, yb, xc, (yc + 1) % 3, **kw)   # wrong test labels
  assert a["weight_decay"] == b["weight_decay"]
  assert a["validation_grid"] == b["validation_grid"]
  assert a["test"] > 0.9 and b["test"] < 0.1


def test_label_subsets_are_balanced_seeded_and_shared():
  labels = np.repeat(np.arange(10), [600] * 9 + [400]).astype(np.int32)
  s1 = standard.label_subsets(labels)
  s2 = standard.label_subsets(labels.copy())
  for f in (0.01, 0.1):
    np.testing.assert_array_equal(s1[f], s2[f])
    counts = np.bincount(labels[s1[f]], minlength=10)
    np.testing.assert_array_equal(counts, [round(f * 600)] * 9 + [round(f * 400)])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  from ssljax.train.loop import pretrain
  workdir = str(tmp_path_factory.mktemp("run"))
  config = tiny_config(dataset="digits", num_steps=3, batch_size=32)
  config.eval = type(config.eval)({**config.eval.to_dict(), "knn_k": 10,
                                   "feature_batch_size": 64,
                                   "linear_batch_size": 64})
  pretrain(config, workdir, progress=False)
  return workdir


def _tiny_options():
  R = standard.FinetuneRecipe
  return standard.ProtocolOptions(
      probe_steps=30, finetune=((0.01, R(2, 0.05, 16)), (0.1, R(2, 0.05, 16))),
      scratch=((0.01, R(2, 0.1, 16)), (0.1, R(2, 0.1, 16)), (1.0, R(2, 0.1, 16))))


def test_evaluate_on_a_restored_run(digits_run, tmp_path, monkeypatch):
  from ssljax.run import restore
  cache = str(tmp_path / "baselines")
  with restore(digits_run) as run:
    res = standard.evaluate(run, _tiny_options(), cache_dir=cache,
                            progress=False)
  n_fit, n_val, n_test = res["splits"]["sizes"]
  assert (n_fit + n_val, n_test) == (1500, 297) and n_val == 150
  from ssljax import data
  counts = np.bincount(data.load("digits", "train").labels[:n_fit])
  assert res["label_subsets"] == {
      f"{p}%": int(sum(max(1, round(p / 100 * c)) for c in counts)) for p in (1, 10)}
  s = standard.summary(res)
  assert set(s) == {"trained", "random_init", "raw_pixels", "scratch"}
  assert set(s["trained"]) == {"linear", "knn", "probe 1%", "probe 10%",
                               "finetune 1%", "finetune 10%"}
  assert set(s["scratch"]) == {"1%", "10%", "100%"}
  assert s["raw_pixels"]["linear"] > 0.85      # digits pixels are easy
  # the scratch baseline is cached: a second evaluation does not train it
  calls, probes, encodes = [], [], []
  real = standard.finetune_scores
  monkeypatch.setattr(standard, "finetune_scores",
                      lambda *a, **k: calls.append(1) or real(*a, **k))
  real_probe = standard.probe
  monkeypatch.setattr(standard, "probe",
                      lambda *a, **k: probes.append(1) or real_probe(*a, **k))
  with restore(digits_run) as run:
    real_encode = run.encode
    run.encode = lambda *a, **k: encodes.append(1) or real_encode(*a, **k)
    again = standard.evaluate(run, _tiny_options(), cache_dir=cache,
                              progress=False)
  assert len(calls) == 2                      # the two fine-tunings only
  assert again["results"]["scratch"] == json.loads(json.dumps(
      res["results"]["scratch"]))
  # the frozen baselines are cached too: only the trained encoder is probed
  # (linear + the two few-label probes) and encoded (fit+val, then test)
  assert len(probes) == 3 and len(encodes) == 2
  for which in ("random_init", "raw_pixels"):
    assert again["results"][which] == json.loads(json.dumps(
        res["results"][which]))
    assert again["seconds"][f"{which} (cached)"] == 0.0
  assert json.dumps(again["results"]["trained"], sort_keys=True) == \
      json.dumps(res["results"]["trained"], sort_keys=True)


def test_frozen_baseline_keys(digits_run, tmp_path):
  """The random-init key follows the random weights and the encoder's config,
  not the pre-training fields; the raw-pixel key follows the data only."""
  import dataclasses
  from ssljax.run import restore
  opts = _tiny_options()
  with restore(digits_run) as run:
    keys = {w: standard.frozen_baseline_key(run, opts, w, "d0")
            for w in ("random_init", "raw_pixels")}
    assert keys["random_init"] != keys["raw_pixels"]
    assert standard.frozen_baseline_key(run, opts, "raw_pixels", "d1") != \
        keys["raw_pixels"]
    other = dataclasses.replace(opts, weight_decays=(1e-3,))
    assert standard.frozen_baseline_key(run, other, "random_init", "d0") != \
        keys["random_init"]
    config = run.config
    run.config = config.copy_and_resolve_references()
    run.config.num_steps = 1000           # pre-training only: same key
    run.config.optimizer.base_lr = 9.0
    run.config.eval.finetune_lr = 0.01    # fine-tuning only: same key
    assert standard.frozen_baseline_key(run, opts, "random_init", "d0") == \
        keys["random_init"]
    run.config.encoder.conv_impl = "xla" if config.encoder.get(
        "conv_impl") != "xla" else "auto"           # the network: new key
    assert standard.frozen_baseline_key(run, opts, "random_init", "d0") != \
        keys["random_init"]
    run.config = config
    real = run.random_state                   # other random weights: new key
    run.random_state = real.replace(params=jax.tree.map(
        lambda a: a + 1, real.params))
    assert standard.frozen_baseline_key(run, opts, "random_init", "d0") != \
        keys["random_init"]
    assert standard.frozen_baseline_key(run, opts, "raw_pixels", "d0") == \
        keys["raw_pixels"]
    run.random_state = real


def _fake_result(trained, seed=0):
  acc = {"test": 0.5, "validation": 0.5}
  r = {k: {"linear": dict(acc), "knn": dict(acc), "probe_1%": dict(acc),
           "probe_10%": dict(acc)} for k in ("random_init", "raw_pixels")}
  r["trained"] = {"linear": {"test": trained[0]}, "knn": {"test": trained[1]},
                  "probe_1%": {"test": 0.6}, "probe_10%": {"test": 0.7},
                  "finetune_1%": {"test": trained[2]},
                  "finetune_10%": {"test": trained[3]}}
  r["scratch"] = {"key": "x", "1%": {"test": 0.4}, "10%": {"test": 0.6},
                  "100%": {"test": 0.9}}
  return {"method": "m", "step": 1, "results": r}


def test_table_means_and_stds(tmp_path):
  seeds = {0: (0.80, 0.70, 0.60, 0.75), 1: (0.82, 0.72, 0.62, 0.77),
           2: (0.84, 0.71, 0.61, 0.79)}
  for s, t in seeds.items():
    with open(tmp_path / f"simclr_s{s}.json", "w") as f:
      json.dump(_fake_result(t, s), f)
  with open(tmp_path / "rotation_s0.json", "w") as f:
    json.dump(_fake_result((0.5, 0.4, 0.3, 0.2)), f)
  md = open(table.write_table(str(tmp_path), order=["simclr", "rotation"])).read()
  lin = np.array([v[0] for v in seeds.values()]) * 100
  row = [l for l in md.splitlines() if l.startswith("| simclr |")][0]
  assert f"{lin.mean():.2f} ± {lin.std(ddof=1):.2f}" in row
  assert row.split("|")[2].strip() == "0,1,2"
  assert "| rotation | 0 | 50.00 | 40.00 | 30.00 | 20.00 |" in md
  # each method's own network at random init and from scratch
  assert "| simclr scratch | - | - | - | 40.00 | 60.00 |" in md
  assert "| rotation random_init | - | 50.00 | 50.00 |" in md
  # random init / raw pixels: their few-label cells are the frozen probe's
  assert "| raw_pixels | - | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 |" in md
  # margins, by hand: simclr's means 82 / 71 / 61 / 77 against raw pixels
  # 50 / 50, its random init 50 and its from-scratch 40 / 60
  assert "| simclr | +32.00 | +21.00 | +32.00 | +21.00 | +17.00 |" in md
  assert "| rotation | +0.00 | -10.00 | +0.00 | -10.00 | -40.00 |" in md
  saved = json.load(open(tmp_path / "table.json"))
  assert saved["margins"]["simclr"]["1% vs from scratch"] == pytest.approx(21.0)
  rows = saved["rows"]
  assert rows["simclr scratch"]["100% labels"]["mean"] == pytest.approx(90.0)
  assert open(tmp_path / "few_labels.png", "rb").read(4) == b"\x89PNG"


def test_reproduce_orders_seed_zero_first_and_dry_runs(tmp_path):
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import reproduce
  jobs = reproduce.jobs()
  seeds = [s for _, s in jobs]
  assert seeds == sorted(seeds) and seeds.count(0) == len(reproduce.RUNS)
  for run in reproduce.RUNS:        # every row has a shipped config
    assert os.path.exists(os.path.join(ROOT, "experiments", "configs", run.config))
  out = subprocess.run(
      [sys.executable, "experiments/reproduce.py", "--dry_run", "--only",
       "simclr,jigsaw", "--seeds", "0", "--workdirs", str(tmp_path)],
      cwd=ROOT, capture_output=True,
      text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  lines = [l for l in out.stdout.splitlines() if "experiments/" in l]
  assert len(lines) == 4 and "simclr_fashion_mnist.py" in lines[0]
  assert "--results" in lines[1] and "simclr_s0.json" in lines[1]


def test_reproduce_pretrain_stage_leaves_an_older_evaluation_alone(
    tmp_path, monkeypatch):
  """``--stage pretrain`` does not write the new run's speed into a results
  file that an earlier evaluation wrote; the evaluate stage annotates it."""
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import reproduce
  from absl import flags
  fl = flags.FLAGS
  was_parsed = fl.is_parsed()
  old = {k: fl[k].value for k in ("workdirs", "results")} if was_parsed else None
  fl.mark_as_parsed()
  fl.workdirs, fl.results = str(tmp_path / "w"), str(tmp_path / "r")
  try:
    run = reproduce.RUNS[0]
    name = reproduce.run_name(run, 0)
    workdir = tmp_path / "w" / name
    workdir.mkdir(parents=True)
    (workdir / "finished.json").write_text("{}")        # nothing to pre-train
    (workdir / "metrics.jsonl").write_text(
        json.dumps({"step": 2, "images_per_sec": 9.0}) + "\n")
    (tmp_path / "r").mkdir()
    out = tmp_path / "r" / f"{name}.json"
    out.write_text(json.dumps({"pretrain": {"median_images_per_sec": 1.0}}))
    assert reproduce._do(run, 0, "pretrain", {}) == f"{name}: ok"
    assert json.loads(out.read_text())["pretrain"]["median_images_per_sec"] == 1.0
    monkeypatch.setattr(reproduce.subprocess, "call", lambda *a, **k: 0)
    assert reproduce._do(run, 0, "evaluate", {}) == f"{name}: ok"
    assert json.loads(out.read_text())["pretrain"]["median_images_per_sec"] == 9.0
  finally:
    if was_parsed:
      fl.workdirs, fl.results = old["workdirs"], old["results"]
    else:
      fl.unparse_flags()
