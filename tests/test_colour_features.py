"""Linear probes on the frozen encoders of colorization / split-brain
(``ssljax.eval.colour_features``) and the ``colour_crops`` evaluation hook
(``ssljax.eval.by_method.evaluate_colour_crops_run``), on tiny networks and
synthetic crops (one test uses the real test sources, when opencv-doc is
installed)."""

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from helpers import tiny_dataset

import ssljax.run
from ssljax.data import ArrayDataset
from ssljax.data.colour import ColourCrops, load_colour_crops
from ssljax.data.photos import PHOTOS_DIR
from ssljax.eval import by_method
from ssljax.eval.colorization import evaluate_colorization
from ssljax.eval.colour_features import (FeatureProbeOptions, encode_with,
                                         evaluate_fashion_mnist_transfer,
                                         evaluate_source_id,
                                         feature_extractors, raw_l_pixels,
                                         source_id_split)
from ssljax.run import restore
from ssljax.train.build import build_method, load_config_file
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems

SIZE = 16
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "experiments", "configs")
#: A quick probe: few steps, two weight decays.
PROBE = FeatureProbeOptions(weight_decays=(1e-4, 1e-1), lr=0.1, batch_size=32,
                            min_epochs=2, min_steps=20, feature_batch_size=16)


def _crops(num_sources=4, per_source=12, seed=0, name="synthetic"):
  """Colour crops, each source its own hue plus noise (labels = source)."""
  rng = np.random.default_rng(seed)
  colours = rng.integers(30, 226, (num_sources, 3))
  sids = np.repeat(np.arange(num_sources), per_source).astype(np.int32)
  noise = rng.integers(-30, 31, (len(sids), SIZE, SIZE, 3))
  images = np.clip(colours[sids][:, None, None] + noise, 0, 255)
  names = tuple(f"photo:s{i}.png" for i in range(num_sources))
  return ColourCrops(images.astype(np.uint8), sids, num_classes=num_sources,
                     name=name, sources=names, source_ids=sids,
                     frame_ids=np.full(len(sids), -1, np.int32),
                     source_names=names)


def _config(method):
  return ml_collections.ConfigDict(dict(
      method=method, seed=0, dataset="colour_crops", data_dir="",
      data_source="auto", batch_size=8, num_epochs=1.0, num_steps=2,
      encoder=dict(name="small_resnet", widths=(4,), stage_sizes=(1,)),
      head=dict(hidden_dim=8, out_stride=2),
      colorization=dict(prior_images=8),
      optimizer=dict(name="adamw", base_lr=1e-3, lr_scaling="none",
                     warmup_epochs=0.0),
      log_every=1, checkpoint_every=2, keep_checkpoints=2))


@pytest.fixture(scope="module")
def methods():
  """``{name: (method, {"trained": ..., "random_init": ...})}`` (two init
  seeds stand in for trained and random)."""
  out = {}
  for name in ("colorization", "splitbrain"):
    method, _ = build_method(_config(name), _crops())
    states = {"trained": method.init(jax.random.key(1), (SIZE, SIZE, 3)),
              "random_init": method.init(jax.random.key(2), (SIZE, SIZE, 3))}
    out[name] = (method, states)
  return out


@pytest.mark.parametrize("name", ["colorization_colour_crops",
                                  "splitbrain_colour_crops"])
def test_shipped_config_validates(name):
  config = load_config_file(os.path.join(CONFIGS, f"{name}.py"))
  assert config.dataset == "colour_crops"
  assert config_problems(config, device_count=1) == []
  # no eval section: the probe is the standard protocol's
  assert FeatureProbeOptions.from_config(config) == FeatureProbeOptions()


def test_source_id_split_is_disjoint_contiguous_and_covers_every_crop():
  sids = np.repeat([0, 1, 2, 3], [20, 10, 3, 2])
  split = source_id_split(sids)
  parts = [split[k] for k in ("fit", "validation", "test")]
  everything = np.concatenate(parts)
  assert len(everything) == len(sids) == len(np.unique(everything))
  for s, n in enumerate([20, 10, 3, 2]):
    got = [p[sids[p] == s] for p in parts]
    # contiguous blocks in stored order: fit, then validation, then test
    np.testing.assert_array_equal(np.concatenate(got),
                                  np.flatnonzero(sids == s))
    sizes = [len(g) for g in got]
    assert sizes == {20: [16, 2, 2], 10: [8, 1, 1], 3: [1, 1, 1],
                     2: [2, 0, 0]}[n]
  with pytest.raises(ValueError, match="summing to 1"):
    source_id_split(sids, (0.5, 0.1, 0.1))


@pytest.mark.skipif(not os.path.isfile(os.path.join(PHOTOS_DIR, "tree.avi")),
                    reason="Debian opencv-doc is not installed")
def test_source_id_split_of_the_real_test_sources():
  test = load_colour_crops("test", size=8, crops_per_source=20)
  split = source_id_split(test.source_ids)
  parts = [set(split[k]) for k in ("fit", "validation", "test")]
  assert not (parts[0] & parts[1] or parts[0] & parts[2]
              or parts[1] & parts[2])
  assert set().union(*parts) == set(range(len(test)))
  for k in ("fit", "validation", "test"):         # every source in each part
    assert set(test.source_ids[split[k]]) == set(range(test.num_classes))
  # the video's test crops come from its last frames, after all fit frames
  video = test.sources.index("video:tree.avi")
  frames = {k: test.frame_ids[split[k]][test.source_ids[split[k]] == video]
            for k in split}
  assert frames["fit"].max() <= frames["validation"].min()
  assert frames["validation"].max() <= frames["test"].min()


def test_feature_extractors_and_gray_input(methods):
  images = _crops().images[:8]
  method, states = methods["colorization"]
  ex = feature_extractors(method)
  assert list(ex) == ["L"]
  f = encode_with(ex["L"], states["trained"], images, batch_size=8)
  assert f.shape == (8, 4) and f.dtype == np.float32
  # a gray pixel g is the sRGB colour (g, g, g): 1-channel and RGB gray agree
  gray = images[..., :1]
  np.testing.assert_allclose(
      encode_with(ex["L"], states["trained"], gray, batch_size=8),
      encode_with(ex["L"], states["trained"], np.repeat(gray, 3, -1),
                  batch_size=8), rtol=1e-5, atol=1e-5)
  # resizing happens before encoding
  small = gray[:, ::2, ::2]
  want = method.encode(states["trained"], jax.image.resize(
      small / 255.0, (8, SIZE, SIZE, 1), "bilinear"))
  np.testing.assert_allclose(
      encode_with(ex["L"], states["trained"], small, batch_size=8,
                  size=(SIZE, SIZE)), want, rtol=1e-4, atol=1e-5)
  sb, sb_states = methods["splitbrain"]
  ex = feature_extractors(sb)
  assert list(ex) == ["L_half", "ab_half", "concat"]
  f = {k: encode_with(e, sb_states["trained"], images, batch_size=8)
       for k, e in ex.items()}
  np.testing.assert_allclose(f["concat"],
                             np.hstack([f["L_half"], f["ab_half"]]),
                             rtol=1e-5, atol=1e-6)
  assert list(feature_extractors(sb, gray=True)) == ["L_half"]
  # why: on gray images the ab half sees ab = 0 and gives one constant vector
  ab_gray = encode_with(ex["ab_half"], sb_states["trained"], gray,
                        batch_size=8)
  np.testing.assert_allclose(ab_gray, np.broadcast_to(ab_gray[:1],
                                                      ab_gray.shape),
                             atol=1e-5)
  np.testing.assert_allclose(raw_l_pixels(np.full((1, 2, 2, 3), 255,
                                                  np.uint8)), 1.0, atol=1e-3)


def test_fashion_mnist_transfer_chooses_on_validation(methods):
  method, states = methods["splitbrain"]
  data = tuple(dataclasses.replace(tiny_dataset(n, side=12, seed=s),
                                   name=f"gray{s}")
               for n, s in ((48, 0), (24, 1), (24, 2)))
  out = evaluate_fashion_mnist_transfer(method, states, data=data,
                                        image_size=(SIZE, SIZE),
                                        options=PROBE)
  assert set(out["trained"]) == set(out["random_init"]) == {"L_half"}
  assert out["trained"]["L_half"]["features"] == 4
  assert out["raw_pixels"]["features"] == 12 * 12
  assert out["splits"]["sizes"] == [48, 24, 24]
  for r in (out["trained"]["L_half"], out["raw_pixels"]):
    assert set(r["validation_grid"]) == {1e-4, 1e-1}
    assert r["weight_decay"] in (1e-4, 1e-1) and 0 <= r["test"] <= 1
  # wrong test labels change nothing that is chosen
  fit, val, test = data
  wrong = ArrayDataset(test.images, (test.labels + 1) % test.num_classes,
                       test.num_classes, "wrong")
  again = evaluate_fashion_mnist_transfer(method, states,
                                          data=(fit, val, wrong),
                                          image_size=(SIZE, SIZE),
                                          options=PROBE)
  for key in ("trained", "random_init"):
    for field in ("weight_decay", "validation_grid", "validation"):
      assert again[key]["L_half"][field] == out[key]["L_half"][field]
  assert again["raw_pixels"]["weight_decay"] == out["raw_pixels"][
      "weight_decay"]


def test_source_id_probes(methods):
  method, states = methods["splitbrain"]
  crops = _crops(per_source=10)
  out = evaluate_source_id(method, states, crops, options=PROBE)
  for key in ("trained", "random_init"):
    assert set(out[key]) == {"L_half", "ab_half", "concat"}
    assert out[key]["concat"]["features"] == 8
  assert out["raw_pixels_L"]["features"] == SIZE * SIZE
  assert out["raw_pixels_rgb"]["features"] == SIZE * SIZE * 3
  assert out["splits"]["sizes"] == [32, 4, 4]
  assert out["sources"] == list(crops.sources)
  # each source has its own colour: raw RGB tells them apart
  assert out["raw_pixels_rgb"]["test"] == 1.0
  # wrong labels on the test crops only: the same choices
  test_idx = source_id_split(crops.source_ids)["test"]
  labels = crops.labels.copy()
  labels[test_idx] = (labels[test_idx] + 1) % crops.num_classes
  wrong = dataclasses.replace(crops, labels=labels)
  again = evaluate_source_id(method, states, wrong, options=PROBE)
  assert again["trained"]["concat"]["weight_decay"] == out["trained"][
      "concat"]["weight_decay"]
  assert again["raw_pixels_rgb"]["validation_grid"] == out[
      "raw_pixels_rgb"]["validation_grid"]
  assert again["raw_pixels_rgb"]["test"] == 0.0


@pytest.mark.parametrize("method", ["colorization", "splitbrain"])
def test_hook_end_to_end_on_a_tiny_workdir(tmp_path, monkeypatch, method):
  train = _crops(per_source=8, seed=3, name="colour_crops:train[tiny]")
  test = _crops(per_source=10, seed=4, name="colour_crops:test[tiny]")
  validation = _crops(per_source=4, seed=5, name="colour_crops:val[tiny]")
  workdir = str(tmp_path / "run")
  pretrain(_config(method), workdir, dataset=train, progress=False)
  # restore() reloads config.dataset: give it the tiny splits
  monkeypatch.setattr(ssljax.run, "load_dataset",
                      lambda config, split: {"train": train, "test": test,
                                             "validation": validation}[split])
  gray = tuple(tiny_dataset(n, side=12, seed=s)
               for n, s in ((40, 0), (16, 1), (16, 2)))
  options = by_method.ColourCropsEvalOptions(
      probe=PROBE, fashion_mnist_data=gray, png_crops_per_source=1,
      train_subset_every=4, batch_size=16)
  assert by_method.METHOD_EVALUATIONS[method] is (
      by_method.evaluate_colorization_run)
  with restore(workdir) as run:
    assert run.step == 2
    out = by_method.evaluate_colorization_run(run, str(tmp_path),
                                              options=options)
  json.dumps(out)                      # what evaluate.py writes
  col = out["colorization"]
  assert {"trained", "random_init", "gray_ab0", "train_mean_ab",
          "train_mode_bin", "trained_on_train_crops"} <= set(col)
  assert {"auc", "auc_rebalanced", "psnr_db"} <= set(col["trained"]["T=0.38"])
  assert ("splitbrain" in out) == (method == "splitbrain")
  if method == "splitbrain":
    assert {"trained", "random_init", "train_marginal"} <= set(
        out["splitbrain"])
  feature = "L" if method == "colorization" else "L_half"
  for task in ("source_id", "fashion_mnist"):
    for key in ("trained", "random_init"):
      assert 0 <= out[task][key][feature]["test"] <= 1
  assert "raw_pixels_L" in out["source_id"] and "raw_pixels" in out[
      "fashion_mnist"]
  assert out["test_split"]["crops"] == len(test)
  with open(out["png"], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  # per source: equal-sized crops, so the crop-weighted mean of the
  # per-source ab errors is the pooled one; wins count the sources
  by = out["colorization_by_source"]
  counts = np.bincount(np.asarray(test.labels))
  names = list(test.sources)
  assert by["sources"] == len(names) == len(by["per_source"])
  for state in ("trained", "random_init", "gray_ab0"):
    pooled = col[state].get("T=0.38", col[state])["ab_error"]
    per = [by["per_source"][n][state]["ab_error"] for n in names]
    assert np.isclose(np.average(per, weights=counts), pooled, rtol=1e-4)
  assert by["wins"]["trained > gray_ab0"]["auc_rebalanced"] == sum(
      r["trained"]["auc_rebalanced"] > r["gray_ab0"]["auc_rebalanced"]
      for r in by["per_source"].values())


def test_step_curve_chooses_the_checkpoint_on_validation(tmp_path, monkeypatch):
  """colorization_step_curve: every kept checkpoint scored on the
  validation crops (the figure of the last one is evaluate_colorization's
  on them), the best rebalanced AuC chosen."""
  train = _crops(per_source=8, seed=3, name="colour_crops:train[tiny]")
  validation = _crops(per_source=4, seed=5, name="colour_crops:val[tiny]")
  config = _config("colorization")
  config.num_steps, config.checkpoint_every, config.keep_checkpoints = 3, 1, 3
  workdir = str(tmp_path / "run")
  pretrain(config, workdir, dataset=train, progress=False)
  monkeypatch.setattr(ssljax.run, "load_dataset",
                      lambda config, split: {"train": train, "test": train,
                                             "validation": validation}[split])
  with restore(workdir) as run:
    assert run.checkpoint_steps() == [1, 2, 3]
    sel = by_method.colorization_step_curve(run, validation, batch_size=8)
    direct = evaluate_colorization(
        run.method, {"trained": run.state}, train.images, validation.images,
        temperatures=(0.38,), batch_size=8, train_subset_every=0)
    first = evaluate_colorization(
        run.method, {"trained": run.state_at(1)}, train.images,
        validation.images, temperatures=(0.38,), batch_size=8,
        train_subset_every=0)
  assert sorted(sel["by_step"]) == [1, 2, 3]
  for step, ref in ((3, direct), (1, first)):
    assert sel["by_step"][step]["auc_rebalanced"] == pytest.approx(
        ref["trained"]["T=0.38"]["auc_rebalanced"], rel=1e-6)
  best = max(v["auc_rebalanced"] for v in sel["by_step"].values())
  assert sel["by_step"][sel["chosen_step"]]["auc_rebalanced"] == best
  assert sel["split"] == "colour_crops:val[tiny]" and sel["crops"] == len(
      validation.images)
  json.dumps(sel)
