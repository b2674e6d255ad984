"""What the frozen encoders of colorization / split-brain have learnt:
linear probes on their features (Zhang et al. 2016 and 2017 judge the
representation by classification on frozen features).

Two labelled tasks, each with fit / validation / test parts: every choice
(the probe's weight decay, :func:`ssljax.eval.standard.probe`) is made on
validation, and test is read once, for the choice.

* :func:`evaluate_fashion_mnist_transfer`: Fashion-MNIST (gray). The
  network's input is ``(L - 50) / 50`` with ``L`` the CIE lightness of the
  sRGB pixel (``ssljax.augment.lab``): a gray pixel ``g`` is the sRGB colour
  ``(g, g, g)``, whose ``L`` the method's own preprocessing computes from the
  1-channel image. The 28x28 images are first resized (bilinear) to the
  network's training size (32x32 for the colour crops), so the objects have
  about the scale the network was trained on. Parts: the standard protocol's
  (:func:`ssljax.eval.standard.splits`): ``fit`` = the training split minus
  its last 10 %, ``validation`` = that last 10 %, ``test`` = the test split.
  Baseline: raw pixels (the 28x28 gray values in [0, 1], as in the
  standard protocol).
* :func:`evaluate_source_id`: which source a crop comes from, on the
  ``colour_crops`` *test* sources (held out from pre-training; labels =
  source). Each source's crops, in stored order (a video's frame by frame),
  are cut into contiguous blocks: the first 80 % fit, the next 10 %
  validation, the last 10 % test (:func:`source_id_split`; no crop is in two
  parts, but crops of one still image overlap, so this measures how well
  the features tell the sources' colours and textures apart, not
  generalization to new images). Baselines: raw pixels of the ``L`` channel
  (``L / 100``, ``H * W`` values) and of RGB (``/ 255``, ``H * W * 3``).

Features (:func:`feature_extractors`): colorization's ``encode`` (the L
encoder, ``"L"``). Split-brain: ``"L_half"`` (the L -> ab network's
encoder on L), ``"ab_half"`` (the ab -> L network's encoder on ab) and
``"concat"`` (``SplitBrain.encode``: both, concatenated, as the paper
evaluates). Fashion-MNIST has no colour: the ab half would see ab = 0 for
every image and give one constant vector, so there only ``"L_half"`` is
probed (``concat`` would be the L half plus constant columns). Each for the
trained state and the same network at random init (any ``states``
mapping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssljax.augment import to_float
from ssljax.augment.lab import rgb_to_lab
from ssljax.data import ArrayDataset, holdout, load
from ssljax.eval.features import extract_features, map_in_batches
from ssljax.eval.standard import ProtocolOptions, probe
from ssljax.methods.base import encoder_variables
from ssljax.methods.colorization import AB_SCALE, L_CENTER, L_SCALE

__all__ = [
    "FeatureProbeOptions",
    "SOURCE_ID_FRACTIONS",
    "encode_with",
    "evaluate_fashion_mnist_transfer",
    "evaluate_source_id",
    "feature_extractors",
    "probe_features",
    "raw_l_pixels",
    "raw_rgb_pixels",
    "source_id_split",
]

#: Shares of each source's crops (in stored order) for fit, validation, test.
SOURCE_ID_FRACTIONS = (0.8, 0.1, 0.1)


@dataclasses.dataclass(frozen=True)
class FeatureProbeOptions:
  """The linear probe (:func:`ssljax.eval.standard.probe`) and feature
  extraction; the defaults are the standard protocol's (weight decays and
  at least 5,000 steps of :class:`~ssljax.eval.standard.ProtocolOptions`,
  the lr / batch / epochs of ``config.eval``'s defaults).

  Attributes:
    weight_decays: the grid; the best on validation is reported on test.
    lr, batch_size, min_epochs, min_steps: the probe's SGD.
    seed: the probe's minibatch order.
    feature_batch_size: images per feature batch.
  """
  weight_decays: tuple[float, ...] = ProtocolOptions.weight_decays
  lr: float = 0.5
  batch_size: int = 1024
  min_epochs: int = 100
  min_steps: int = ProtocolOptions.probe_steps
  seed: int = 0
  feature_batch_size: int = 500

  @classmethod
  def from_config(cls, config) -> "FeatureProbeOptions":
    """The options of a run's config: ``config.eval``'s ``linear_lr``,
    ``linear_batch_size``, ``linear_epochs`` and ``feature_batch_size``
    where it sets them, the defaults otherwise."""
    ev = config.get("eval") or {}
    get = lambda key, default: type(default)(ev.get(key, default))
    d = cls()
    return dataclasses.replace(
        d, lr=get("linear_lr", d.lr),
        batch_size=get("linear_batch_size", d.batch_size),
        min_epochs=get("linear_epochs", d.min_epochs),
        feature_batch_size=get("feature_batch_size", d.feature_batch_size))


# ---------------------------------------------------------------------------
# Features.


def _lab(images):
  x = to_float(images)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return rgb_to_lab(x)


def _split_brain_half(net: str, lab_to_input: Callable):
  def encode(method, variables, images):
    return method.model.apply(
        encoder_variables(variables), lab_to_input(_lab(images)),
        method=lambda m, x: getattr(m, net).encode(x, train=False))
  return encode


_L_HALF = _split_brain_half("l_net",
                            lambda lab: (lab[..., :1] - L_CENTER) / L_SCALE)
_AB_HALF = _split_brain_half("ab_net", lambda lab: lab[..., 1:] / AB_SCALE)


def feature_extractors(method, *, gray: bool = False
                       ) -> dict[str, Callable[[Any, jax.Array], jax.Array]]:
  """``{name: encode(variables_or_state, images) -> [N, F]}`` of a
  colorization or split-brain method (module docstring): ``{"L"}`` for
  colorization; ``{"L_half", "ab_half", "concat"}`` for split-brain, only
  ``{"L_half"}`` when ``gray`` (images without colour)."""
  model = getattr(method, "model", None)
  if hasattr(model, "l_net") and hasattr(model, "ab_net"):   # split-brain
    out = {"L_half": lambda v, x: _L_HALF(method, v, x)}
    if not gray:
      out["ab_half"] = lambda v, x: _AB_HALF(method, v, x)
      out["concat"] = method.encode
    return out
  return {"L": method.encode}


def _resized(encode, size):
  if size is None:
    return encode

  def fn(variables, images):
    x = to_float(images)
    if x.shape[1:3] != tuple(size):
      x = jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear")
    return encode(variables, jnp.clip(x, 0.0, 1.0))
  return fn


def encode_with(encode, state, images, *, batch_size: int = 500,
                size: tuple[int, int] | None = None) -> np.ndarray:
  """``encode(variables, images)`` over uint8 ``images [N, H, W, C]`` in
  batches (sharded over the devices), ``[N, F]`` float32 on the host; with
  ``size``, each batch is first resized (bilinear) to ``size``."""
  feats = extract_features(_resized(encode, size), encoder_variables(state),
                           images, batch_size=batch_size, progress=False)
  return np.asarray(feats, np.float32).reshape(len(images), -1)


def raw_l_pixels(images, batch: int = 512) -> np.ndarray:
  """The ``L`` channel of uint8 RGB ``images`` divided by 100, flattened:
  ``[N, H * W]``."""
  lab = map_in_batches(jax.jit(lambda x: _lab(x)[..., 0] / 100.0),
                       np.asarray(images), batch)
  return lab.reshape(len(images), -1).astype(np.float32)


def raw_rgb_pixels(images) -> np.ndarray:
  """uint8 ``images`` divided by 255, flattened: ``[N, H * W * C]``."""
  return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0


# ---------------------------------------------------------------------------
# Probes.


def probe_features(features: Mapping[str, tuple], labels: tuple, *,
                   num_classes: int, options: FeatureProbeOptions) -> dict:
  """A linear probe per entry of ``features`` ``{name: (fit, validation,
  test)}`` on the labels ``(fit, validation, test)``: the weight decay with
  the best validation accuracy, its test accuracy
  (:func:`ssljax.eval.standard.probe`) and the feature width."""
  out = {}
  for name, (a, b, c) in features.items():
    r = probe(a, labels[0], b, labels[1], c, labels[2],
              num_classes=num_classes, weight_decays=options.weight_decays,
              lr=options.lr, batch_size=options.batch_size,
              min_epochs=options.min_epochs, min_steps=options.min_steps,
              seed=options.seed)
    out[name] = {**r, "features": int(np.prod(np.shape(a)[1:]))}
  return out


def _nest(results: dict, sep: str = "/") -> dict:
  """``{"trained/L": r}`` -> ``{"trained": {"L": r}}``."""
  out: dict = {}
  for key, value in results.items():
    head, _, tail = key.partition(sep)
    if tail:
      out.setdefault(head, {})[tail] = value
    else:
      out[head] = value
  return out


def evaluate_fashion_mnist_transfer(
    method, states: Mapping[str, Any], *,
    data: tuple[ArrayDataset, ArrayDataset, ArrayDataset] | None = None,
    image_size: tuple[int, int] | None = (32, 32),
    options: FeatureProbeOptions = FeatureProbeOptions(),
    data_dir: str | None = None) -> dict:
  """Linear probes of the frozen L-encoder(s) on gray Fashion-MNIST (module
  docstring), for each of ``states`` (e.g. ``{"trained": ...,
  "random_init": ...}``), beside raw pixels.

  Args:
    method: a colorization or split-brain method (split-brain: the L half
      only: the images have no colour).
    states: name -> state (or variables).
    data: ``(fit, validation, test)`` uint8 gray ``[N, H, W, 1]`` datasets;
      default Fashion-MNIST's training split without / with its last 10 %,
      and its test split.
    image_size: resize the images to this before encoding (the network's
      training size); ``None``: as they are.
    options: the probe.
    data_dir: where to look for Fashion-MNIST first.

  Returns:
    ``{state: {feature: probe result}, "raw_pixels": probe result,
    "splits": {...}, "input": ...}``.
  """
  if data is None:
    fit, val = holdout(load("fashion_mnist", "train", data_dir=data_dir))
    test = load("fashion_mnist", "test", data_dir=data_dir)
  else:
    fit, val, test = data
  size = None if image_size is None else tuple(int(s) for s in image_size)
  feats = {}
  parts = (fit.images, val.images, test.images)
  for fname, encode in feature_extractors(method, gray=True).items():
    for sname, st in states.items():
      feats[f"{sname}/{fname}"] = tuple(
          encode_with(encode, st, x, batch_size=options.feature_batch_size,
                      size=size) for x in parts)
  feats["raw_pixels"] = tuple(raw_rgb_pixels(x) for x in parts)
  labels = (fit.labels, val.labels, test.labels)
  res = probe_features(feats, labels, num_classes=fit.num_classes,
                       options=options)
  return {**_nest(res),
          "splits": {"fit": fit.name, "validation": val.name,
                     "test": test.name,
                     "sizes": [len(fit), len(val), len(test)]},
          "input": (f"gray pixel g as sRGB (g, g, g) -> CIE L -> (L - 50) / "
                    f"50, resized (bilinear) to {size}" if size else
                    "gray pixel g as sRGB (g, g, g) -> CIE L -> (L - 50) / 50"),
          "raw_pixels_input": "the gray pixels / 255, as stored (28x28)",
          "options": dataclasses.asdict(options)}


def source_id_split(source_ids, fractions: tuple[float, float, float] =
                    SOURCE_ID_FRACTIONS) -> dict[str, np.ndarray]:
  """``{"fit", "validation", "test"}`` -> sorted indices: each source's crops
  (``source_ids [N]``, in stored order) cut into contiguous blocks of
  ``fractions`` of its count (validation and test rounded, at least one
  each when the source has three crops or more; fit the rest)."""
  source_ids = np.asarray(source_ids)
  if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(
      sum(fractions), 1.0):
    raise ValueError(f"fractions must be three shares >= 0 summing to 1; got "
                     f"{fractions}.")
  out = {"fit": [], "validation": [], "test": []}
  for s in np.unique(source_ids):
    idx = np.flatnonzero(source_ids == s)
    n = len(idx)
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
      n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_fit = n - n_val - n_test
    out["fit"].append(idx[:n_fit])
    out["validation"].append(idx[n_fit:n_fit + n_val])
    out["test"].append(idx[n_fit + n_val:])
  return {k: np.sort(np.concatenate(v)).astype(np.int64)
          for k, v in out.items()}


def evaluate_source_id(method, states: Mapping[str, Any], crops, *,
                       options: FeatureProbeOptions = FeatureProbeOptions(),
                       fractions=SOURCE_ID_FRACTIONS) -> dict:
  """Source identification on held-out colour crops (module docstring):
  linear probes of each feature (:func:`feature_extractors`) of each of
  ``states``, beside raw ``L`` and raw RGB pixels.

  Args:
    method: a colorization or split-brain method.
    states: name -> state (or variables).
    crops: uint8 RGB crops with ``labels`` (the source) and, as a
      :class:`~ssljax.data.ColourCrops` has, ``source_ids`` (else the labels
      say the source), e.g. ``load_colour_crops("test")``.
    options: the probe.
    fractions: fit / validation / test shares of each source
      (:func:`source_id_split`).

  Returns:
    ``{state: {feature: probe result}, "raw_pixels_L": ...,
    "raw_pixels_rgb": ..., "majority_class": (test accuracy of the most
    frequent fit label), "splits": {...}, "sources": [...]}``.
  """
  images = np.asarray(crops.images)
  sids = getattr(crops, "source_ids", None)
  sids = crops.labels if sids is None else sids
  split = source_id_split(sids, fractions)
  order = ("fit", "validation", "test")
  feats = {}
  for fname, encode in feature_extractors(method).items():
    for sname, st in states.items():
      f = encode_with(encode, st, images, batch_size=options.feature_batch_size)
      feats[f"{sname}/{fname}"] = tuple(f[split[k]] for k in order)
  raw_l = raw_l_pixels(images)
  feats["raw_pixels_L"] = tuple(raw_l[split[k]] for k in order)
  raw_rgb = raw_rgb_pixels(images)
  feats["raw_pixels_rgb"] = tuple(raw_rgb[split[k]] for k in order)
  labels = tuple(np.asarray(crops.labels)[split[k]] for k in order)
  res = probe_features(feats, labels, num_classes=crops.num_classes,
                       options=options)
  counts = np.bincount(labels[0], minlength=crops.num_classes)
  return {**_nest(res),
          "majority_class": float(np.mean(labels[2] == counts.argmax())),
          "splits": {"sizes": [len(split[k]) for k in order],
                     "fractions": list(fractions),
                     "rule": "each source's crops in stored order: first "
                             "fit, then validation, then test"},
          "sources": list(getattr(crops, "sources", ()) or ()),
          "raw_pixels": "L: CIE L / 100 (H*W values); rgb: RGB / 255 "
                        "(H*W*3 values)",
          "options": dataclasses.asdict(options)}
