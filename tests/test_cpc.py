"""CPC: the loss against numpy, its gradients against finite differences,
causality of both context networks, patches, train steps (sharded ==
single device), the espeak-ng dataset, the configs and their problems, and
the evaluation functions."""

import functools
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssljax import losses
from ssljax.config import ConfigReader, build
from ssljax.data import speech
from helpers import assert_only_problem, tiny_dataset
from ssljax.eval.cpc import (audio_probes, format_cpc, pool_sequence,
                             split_pooled,
                             held_out_prediction_accuracy, image_cpc_evaluation)
from ssljax.methods import TrainState
from ssljax.methods.cpc import ImageCPC, SequenceCPC
from ssljax.models.cpc import (CausalConvEncoder, GRUContext, ImageCPCModel,
                               PatchEncoder, RowCausalContext, SequenceCPCModel,
                               extract_patches)
from ssljax.parallel import data_sharding, make_data_mesh, replicated_sharding
from ssljax.train.build import EvalConfig, build_method, load_config_file
from ssljax.train.checkpoint import Checkpointer
from ssljax.train.logging import read_jsonl
from ssljax.train.loop import pretrain
from ssljax.train.validate import config_problems

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs")


def shipped(name):
  return load_config_file(os.path.join(CONFIGS, f"{name}.py"))


def init_key(seed=0):
  """Keys for parameter init and negative sampling in the tests: XLA:CPU
  compiles a program with threefry keys several times slower than with
  RngBitGenerator ones (7.7 s vs 1.6 s for the tiny patch encoder's init);
  the train steps keep default keys."""
  return jax.random.key(seed, impl="rbg")

# ---------------------------------------------------------------------------
# The loss against an independent numpy computation of its definition.


def _logsumexp(s):
  m = np.max(s)
  return m + np.log(np.sum(np.exp(s - m)))


def numpy_cpc(preds, targets, negatives="batch", skip=0, neg_idx=None):
  """Loops over every (k, b, t): candidates, dot-product scores, CE, argmax."""
  preds = np.asarray(preds, np.float64)
  targets = np.asarray(targets, np.float64)
  b_, t_, k_, d_ = preds.shape
  flat = targets.reshape(b_ * t_, d_)
  loss_k, acc_k = [], []
  for k in range(k_):
    ces, hits = [], []
    for b in range(b_):
      for t in range(t_):
        target_t = t + skip + k + 1
        if target_t >= t_:          # only pairs with t + skip + k + 1 < T
          continue
        if negatives == "batch":
          cands, true = flat, b * t_ + target_t
        elif negatives == "sequence":
          cands, true = targets[b], target_t
        else:  # sampled: the positive plus the drawn negatives that are not it
          keep = [m for m in neg_idx if m != b * t_ + target_t]
          cands, true = np.stack([flat[b * t_ + target_t]] + [flat[m] for m in keep]), 0
        s = cands @ preds[b, t, k]
        ces.append(_logsumexp(s) - s[true])
        hits.append(float(np.argmax(s) == true))
    loss_k.append(np.mean(ces))
    acc_k.append(np.mean(hits))
  return np.mean(loss_k), np.array(loss_k), np.array(acc_k)


def _random_pair(seed, b=3, t=6, k=3, d=4, scale=1.0):
  rng = np.random.default_rng(seed)
  preds = rng.normal(size=(b, t, k, d)).astype(np.float32) * scale
  targets = rng.normal(size=(b, t, d)).astype(np.float32) * scale
  return preds, targets


@pytest.mark.parametrize("negatives,skip", [("batch", 0), ("batch", 2),
                                            ("sequence", 0), ("sequence", 1),
                                            ("sampled", 0), ("sampled", 1)])
def test_loss_matches_numpy(negatives, skip):
  preds, targets = _random_pair(1, scale=1.5)
  key = init_key(7)            # any key type; rbg compiles faster on CPU
  m = 9 if negatives == "sampled" else None
  fn = jax.jit(functools.partial(losses.cpc_infonce_per_step, negatives=negatives,
                                 skip=skip, num_negatives=m))
  loss_k, acc_k = fn(preds, targets, key=key if m else None)
  neg_idx = None
  if m:   # the draw the loss makes: M distinct indices into the B*T targets
    neg_idx = np.asarray(jax.random.choice(key, 18, (m,), replace=False))
    assert len(set(neg_idx.tolist())) == m
  want, want_k, want_acc = numpy_cpc(preds, targets, negatives, skip, neg_idx)
  np.testing.assert_allclose(loss_k, want_k, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(acc_k, want_acc, atol=1e-6)
  total = jax.jit(functools.partial(losses.cpc_infonce, negatives=negatives,
                                    skip=skip, num_negatives=m))(
                                        preds, targets, key=key if m else None)
  np.testing.assert_allclose(total, want, rtol=1e-5)


def test_accuracy_is_one_for_a_perfect_predictor():
  # orthonormal targets: predicting the true one exactly scores 1, others 0
  targets = np.eye(10, dtype=np.float32)[np.random.default_rng(0).permutation(10)]
  targets = targets.reshape(2, 5, 10)
  preds = np.stack([np.roll(targets, -(k + 1), axis=1) for k in range(2)], axis=2)
  loss_k, acc_k = jax.jit(losses.cpc_infonce_per_step)(preds * 20, targets)
  np.testing.assert_allclose(acc_k, 1.0)
  assert float(loss_k.max()) < 1e-3


def test_loss_gradient_matches_finite_differences():
  """jax.grad of the float32 loss vs central differences of the float64
  numpy definition, along random directions."""
  preds, targets = _random_pair(2, b=2, t=5, k=2, d=3)
  g_p, g_z = jax.jit(jax.grad(losses.cpc_infonce, argnums=(0, 1)))(preds, targets)
  rng = np.random.default_rng(3)
  eps = 1e-5
  for _ in range(4):
    dp = rng.normal(size=preds.shape)
    dz = rng.normal(size=targets.shape)
    up = numpy_cpc(preds + eps * dp, targets + eps * dz)[0]
    down = numpy_cpc(preds - eps * dp, targets - eps * dz)[0]
    fd = (up - down) / (2 * eps)
    analytic = np.sum(np.asarray(g_p) * dp) + np.sum(np.asarray(g_z) * dz)
    np.testing.assert_allclose(analytic, fd, rtol=1e-4, atol=1e-5)


def test_loss_rejects_bad_shapes():
  preds, targets = _random_pair(0)
  with pytest.raises(ValueError, match=r"\[B, T, D\]"):
    losses.cpc_infonce(preds, targets[:, :, :2])
  with pytest.raises(ValueError, match=r"\[B, T, K, D\]"):
    losses.cpc_infonce(preds[0], targets)
  with pytest.raises(ValueError, match="no valid pair"):
    losses.cpc_infonce(preds, targets, skip=3)        # T=6, K=3: offset 6
  with pytest.raises(ValueError, match="negatives"):
    losses.cpc_infonce(preds, targets, negatives="queue")
  with pytest.raises(ValueError, match="num_negatives and key"):
    losses.cpc_infonce(preds, targets, negatives="sampled")


def test_loss_on_a_sharded_batch_equals_single_device():
  """Explicit 8-device mesh, batch sharded over ``data``: the candidates are
  the global batch, so value and gradients equal the unsharded ones."""
  preds, targets = _random_pair(4, b=8, t=5, k=2, d=3)
  fn = jax.jit(jax.value_and_grad(losses.cpc_infonce, argnums=(0, 1)))
  want_loss, want_grads = fn(preds, targets)
  mesh = make_data_mesh(explicit=True)
  assert mesh.size == 8
  with jax.set_mesh(mesh):
    p = jax.device_put(preds, data_sharding(mesh, 4))
    z = jax.device_put(targets, data_sharding(mesh, 3))
    loss, grads = fn(p, z)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss, numpy_cpc(preds, targets)[0], rtol=1e-5)


# ---------------------------------------------------------------------------
# Models: causality and patches.


def _seq_model(steps=3):
  return SequenceCPCModel(
      encoder=CausalConvEncoder(features=(8, 8, 8), kernels=(6, 4, 4),
                                strides=(3, 2, 2)),
      context=GRUContext(8), num_steps=steps)


def test_sequence_context_is_causal():
  """d c_t / d x is exactly zero for every sample at or after (t+1)*stride,
  and d c_t / d z_u exactly zero for u > t; both nonzero just before."""
  model = _seq_model()
  hop, t_len = 12, 10                       # hop = 3 * 2 * 2
  x = jax.random.normal(jax.random.key(0), (1, t_len * hop))
  z = jax.random.normal(jax.random.key(2), (1, t_len, 8))
  params = jax.jit(model.init)(init_key(1), x)["params"]

  def c_of_x(x):                            # [T]: c_t summed over channels
    _, c = model.apply({"params": params}, x, method=SequenceCPCModel.encode)
    return jnp.sum(c[0], axis=-1)

  def c_of_z(z):
    c = model.apply({"params": params}, z, method=SequenceCPCModel.context_from_z)
    return jnp.sum(c[0], axis=-1)

  jac_x, jac_z = jax.jit(lambda x, z: (jax.jacrev(c_of_x)(x)[:, 0],
                                       jax.jacrev(c_of_z)(z)[:, 0]))(x, z)
  jac_x, jac_z = np.abs(np.asarray(jac_x)), np.abs(np.asarray(jac_z)).sum(-1)
  for t in range(t_len):
    assert np.all(jac_x[t, (t + 1) * hop:] == 0.0), t     # samples after t
    assert jac_x[t, (t + 1) * hop - 1] > 0, t              # the last one before
    assert np.all(jac_z[t, t + 1:] == 0.0), t              # frames after t
    assert np.all(jac_z[t, :t + 1] > 0), t


def test_image_context_is_causal_over_rows():
  """d c_ij / d z_uv is exactly zero for every row u > i (any column)."""
  ctx = RowCausalContext(features=6, num_blocks=3, kernel_size=(2, 3))
  z = jax.random.normal(jax.random.key(0), (2, 7, 7, 5))
  params = jax.jit(ctx.init)(init_key(1), z)["params"]
  # the output layers start at zero; randomize them so every path is live
  rng = np.random.default_rng(3)
  params = jax.tree.map(lambda p: p + 0.3 * rng.normal(size=p.shape), params)

  # [H, W] (channels summed) -> Jacobian [H, W, B, H, W, D]
  jac = jax.jit(jax.jacrev(lambda z: jnp.sum(ctx.apply({"params": params}, z)[0],
                                              axis=-1)))(z)
  jac = np.abs(np.asarray(jac)).sum(-1)                   # [H, W, B, H, W]
  for i in range(7):
    for j in range(7):
      g = jac[i, j]
      assert np.all(g[:, i + 1:] == 0.0), (i, j)          # rows below i
      assert np.all(g[1] == 0.0)                          # other images
      assert g[0, i, j] > 0 and (i == 0 or g[0, i - 1].sum() > 0)


def test_extract_patches_against_slicing():
  x = np.arange(2 * 12 * 16 * 3, dtype=np.float32).reshape(2, 12, 16, 3)
  p = np.asarray(jax.jit(extract_patches, static_argnums=(1, 2))(x, 4, 2))
  assert p.shape == (2, 5, 7, 4, 4, 3)
  for i in range(5):
    for j in range(7):
      np.testing.assert_array_equal(p[:, i, j], x[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4])
  with pytest.raises(ValueError, match="not tiled"):
    extract_patches(x, 5, 2)


# ---------------------------------------------------------------------------
# Train steps.


def _image_method(**kw):
  model = ImageCPCModel(
      encoder=PatchEncoder(widths=(4, 8), blocks=(0, 1), features=8),
      context=RowCausalContext(features=8, num_blocks=1), num_steps=2)
  return ImageCPC(model=model, tx=optax.sgd(0.1, momentum=0.9), patch_size=4,
                  patch_stride=2, pad=0, skip=1, mean=(0.3,), std=(0.3,), **kw)


def test_image_step_sharded_equals_single_device():
  method = _image_method()
  images = np.random.default_rng(0).integers(0, 255, (8, 12, 12, 1)).astype(np.uint8)
  state = method.init(init_key(), images.shape[1:])
  assert isinstance(state, TrainState) and state.batch_stats == {}
  key = jax.random.key(5)
  step = jax.jit(method.train_step)
  single, m_single = step(state, jnp.asarray(images), key)
  # the reported loss is the loss of the model's own outputs (no flip here:
  # recompute with the same flip draw)
  flip = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 0), 0.5, (8,)))
  flipped = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  z, _, preds = jax.jit(lambda p, x: method.model.apply(
      {"params": p}, method.patches(x)))(state.params, jnp.asarray(flipped))
  b, gh, gw, d = z.shape
  want = numpy_cpc(np.transpose(np.asarray(preds), (0, 2, 1, 3, 4)).reshape(b * gw, gh, 2, d),
                   np.transpose(np.asarray(z), (0, 2, 1, 3)).reshape(b * gw, gh, d),
                   skip=1)
  np.testing.assert_allclose(m_single["loss"], want[0], rtol=1e-4)
  np.testing.assert_allclose([m_single["acc_k1"], m_single["acc_k2"]], want[2])
  assert int(single.step) == 1

  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    sharded, m_sharded = step(jax.device_put(state, replicated_sharding(mesh)),
                              jax.device_put(images, data_sharding(mesh, 4)), key)
  np.testing.assert_allclose(m_sharded["loss"], m_single["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               sharded.params, single.params)
  feats = jax.jit(method.encode)(single, images)
  assert feats.shape == (8, 8)


def test_sequence_step_sharded_equals_single_device_and_trains():
  model = _seq_model(steps=2)
  method = SequenceCPC(model=model, tx=optax.sgd(0.05, momentum=0.9))
  rng = np.random.default_rng(0)
  t = np.arange(8 * 12)
  waves = np.stack([np.sin(2 * np.pi * (f * t / 96.0 + ph)) * 8000
                    for f, ph in rng.uniform(2, 9, (8, 2))]).astype(np.int16)
  state = method.init(init_key(), (waves.shape[1],))
  step = jax.jit(method.train_step)
  key = jax.random.key(1)
  single, m1 = step(state, jnp.asarray(waves), key)
  z, _, preds = jax.jit(lambda p, x: model.apply({"params": p}, x))(
      state.params, waves.astype(np.float32) / 32768)
  np.testing.assert_allclose(m1["loss"], numpy_cpc(preds, z)[0], rtol=1e-4)
  np.testing.assert_allclose(m1["mi_bound"], np.log(64) - m1["loss"], rtol=1e-5)
  mesh = make_data_mesh()
  with jax.set_mesh(mesh):
    sharded, m8 = step(jax.device_put(state, replicated_sharding(mesh)),
                       jax.device_put(waves, data_sharding(mesh, 2)), key)
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               sharded.params, single.params)
  # a few more steps lower the loss on this fixed batch
  for _ in range(15):
    single, m = step(single, jnp.asarray(waves), key)
  assert float(m["loss"]) < float(m1["loss"]) - 0.2
  assert jax.jit(method.encode)(single, waves).shape == (8, 8)


# ---------------------------------------------------------------------------
# Data and configs.


@pytest.mark.skipif(not shutil.which("espeak-ng"),
                    reason="espeak-ng not installed")
def test_spoken_words_are_deterministic_cached_and_labelled(tmp_path):
  kw = dict(words=("yes", "no"), voices=("en-us+m1", "en-gb+f2"), repeats=3,
            seed=3, length=12800, test_fraction=1 / 3, progress=False)
  a = speech.spoken_words("all", cache_dir=str(tmp_path / "a"), **kw)
  b = speech.spoken_words("all", cache_dir=str(tmp_path / "b"), **kw)
  np.testing.assert_array_equal(a.audio, b.audio)
  assert a.audio.shape == (12, 12800) and a.audio.dtype == np.int16
  assert np.abs(a.audio).max() > 5000
  np.testing.assert_array_equal(np.bincount(a.word), [6, 6])
  np.testing.assert_array_equal(np.bincount(a.voice), [6, 6])
  train = speech.spoken_words("train", cache_dir=str(tmp_path / "a"), **kw)
  test = speech.spoken_words("test", cache_dir=str(tmp_path / "a"), **kw)
  assert len(train) == 8 and len(test) == 4
  assert sorted(zip(test.word, test.voice)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
  assert len(os.listdir(tmp_path / "a")) == 1          # one cached file
  c = speech.spoken_words("all", cache_dir=str(tmp_path / "c"), **{**kw, "seed": 4})
  assert not np.array_equal(c.audio, a.audio)
  assert np.all((a.rate >= 120) & (a.rate <= 220))
  # The config's data section: the same dataset, its facts without synthesis.
  kw.pop("progress")
  words = speech.SpokenWords(cache_dir=str(tmp_path / "a"), **kw)
  assert (words.num_examples("train"), words.num_examples("test")) == (8, 4)
  assert words.input_shape == (12800,) and words.num_classes == 2
  np.testing.assert_array_equal(words.load("test", progress=False).audio,
                                test.audio)


def test_spoken_words_data_section_is_checked():
  reader = ConfigReader({"data": dict(repeats=12, test_fraction=0.25,
                                      length=16000, cache_dir="")})
  words = build(speech.SpokenWords, reader.data)
  assert reader.all_problems() == []
  assert words.input_shape == (16000,) and words.dtype == "int16"
  assert (words.num_examples("train"), words.num_examples("test")) == (900, 300)
  reader = ConfigReader({"data": dict(repeats=4, test_fraction=0.01,
                                      lenght=16000)})
  build(speech.SpokenWords, reader.data)
  problems = {p.key: p.message for p in reader.all_problems()}
  assert set(problems) == {"data.test_fraction", "data.lenght"}
  assert "at least one repeat in each split" in problems["data.test_fraction"]
  assert "did you mean 'data.length'" in problems["data.lenght"]


# ---------------------------------------------------------------------------
# Configs: shipped ones validate, bad values and typos name their keys.


@pytest.mark.parametrize("name", ["cpc_audio", "cpc_fashion_mnist"])
def test_shipped_configs_validate(name):
  config = shipped(name)
  method, steps = build_method(config, 60000 if "fashion" in name else 900)
  assert steps > 0
  assert isinstance(method, SequenceCPC if name == "cpc_audio" else ImageCPC)
  assert method.name == {"cpc_audio": "cpc_sequence",
                         "cpc_fashion_mnist": "cpc_image"}[name]
  assert config_problems(config, device_count=1) == []


def _problems(name, **changes):
  config = shipped(name)
  for key, value in changes.items():
    section, _, field = key.rpartition(".")
    config[section][field] = value
  return config_problems(config, device_count=1, check_shapes=False)


@pytest.mark.parametrize("name,key,value,words", [
    ("cpc_fashion_mnist", "cpc.skip", 0,
     ["(skip + 1) * patch_stride >= patch_size", "skip >= 1"]),
    ("cpc_fashion_mnist", "cpc.negatives", "batches", ["did you mean 'batch'"]),
    ("cpc_fashion_mnist", "cpc.pool", "c_last", ["'z', 'c', 'zc'"]),
    ("cpc_fashion_mnist", "cpc.num_steps", 0, ["integer >= 1"]),
    ("cpc_fashion_mnist", "context.name", "row_casual",
     ["did you mean 'row_causal'"]),
    ("cpc_audio", "cpc.num_negatives", 0, ["sampled", "num_negatives >= 1"]),
    ("cpc_audio", "encoder.name", "patch_encoder", ["'causal_conv'"]),
    ("cpc_audio", "encoder.kernels", (10, 8, 4, 4, 1), ["its stride"]),
    ("cpc_audio", "cpc.input_scale", 0.0, ["must be > 0"]),
])
def test_bad_values_name_their_key(name, key, value, words):
  assert_only_problem(_problems(name, **{key: value}), key, *words)


def test_misspelt_keys_suggest_the_closest():
  config = shipped("cpc_fashion_mnist")
  config.cpc.skipp = 1
  config.context.num_block = 2
  problems = {p.key: p.message for p in config_problems(
      config, device_count=1, check_shapes=False)}
  assert set(problems) == {"cpc.skipp", "context.num_block"}
  assert "did you mean 'cpc.skip'" in problems["cpc.skipp"]
  assert "did you mean 'context.num_blocks'" in problems["context.num_block"]


def test_grid_geometry_is_refused_when_traced():
  """A grid too small for skip + num_steps, and patches that do not tile the
  padded image: clear ValueErrors from init, reported by the trace."""
  for changes, words in ((dict(num_steps=5), ["7 rows", "skip=2",
                                              "num_steps=5"]),
                         (dict(patch_stride=5), ["not tiled", "stride 5"])):
    config = shipped("cpc_fashion_mnist")
    config.cpc.update(changes)
    [problem] = config_problems(config, device_count=1)
    assert problem.key == "method"
    for word in words:
      assert word in problem.message, problem.message


def _tiny_speech(n=16, length=960, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length)
  waves = np.stack([np.sin(2 * np.pi * (f * t / length + ph)) * 8000
                    for f, ph in rng.uniform(2, 9, (n, 2))]).astype(np.int16)
  z = np.zeros(n, np.int32)
  return speech.SpeechDataset(
      audio=waves, word=(np.arange(n) % 2).astype(np.int32),
      voice=(np.arange(n) // 8).astype(np.int32), rate=z + 150, pitch=z + 50,
      words=("a", "b"), voices=("v", "w"), name="spoken_words:synthetic")


def test_sequence_cpc_through_the_shared_loop_resumes_exactly(tmp_path):
  """The audio config trains with ssljax.train.pretrain on a SpeechDataset:
  a run stopped at step 2 logs steps 1-2 and leaves a checkpoint that
  restores into the template a resume builds (bit-identical resume itself is
  tested on images in test_train; one loop run only, as each compiles its
  step); held_out_prediction_accuracy is the mean over batches of
  prediction_accuracy, and the audio probes run on the result."""
  config = shipped("cpc_audio")
  config.unlock()
  del config["data"]                   # the tiny dataset is given
  config.update(dict(batch_size=8, num_steps=3, log_every=1, checkpoint_every=100))
  config.encoder.features = (8, 8, 8, 8, 8)
  config.context.features = 8
  config.cpc.num_steps = 2
  config.cpc.num_negatives = 8
  config.cpc.negatives = "sequence"    # the cheapest step to compile
  ds = _tiny_speech()
  method, stopped = pretrain(config, str(tmp_path / "b"), dataset=ds,
                             progress=False, stop_at=2)
  assert int(stopped.step) == 2
  steps = [r["step"] for r in read_jsonl(str(tmp_path / "b" / "metrics.jsonl"))]
  assert steps == [1, 2]
  # what a resume restores: the step-2 checkpoint into the loop's template
  ckpt = Checkpointer(str(tmp_path / "b" / "checkpoints"))
  resumed = ckpt.restore(method.init(jax.random.key(5), ds.input_shape))
  ckpt.close()
  assert int(resumed.step) == 2
  jax.tree.map(np.testing.assert_array_equal, resumed.params, stopped.params)
  loss, acc = held_out_prediction_accuracy(method, resumed, ds.audio,
                                           batch_size=8)
  fn = jax.jit(functools.partial(method.prediction_accuracy, negatives="batch"))
  per = [fn(resumed, jnp.asarray(ds.audio[i:i + 8])) for i in (0, 8)]
  np.testing.assert_allclose(loss, np.mean([p[0] for p in per], 0), rtol=1e-5)
  np.testing.assert_allclose(acc, np.mean([p[1] for p in per], 0), rtol=1e-5)
  with pytest.raises(ValueError, match="no full batch"):
    held_out_prediction_accuracy(method, resumed, ds.audio[:7], batch_size=8)
  # The audio probes: word / voice accuracies per pool, the step accuracy.
  ev = EvalConfig(pools=("c", "z"), linear_epochs=2, linear_lr=0.1,
                  linear_weight_decay=1e-3, linear_batch_size=8,
                  feature_batch_size=8)
  results = audio_probes(method, {"cpc": resumed, "random_init": method.init(
      jax.random.key(5), ds.input_shape)}, ds, ds, ev=ev, seed=0, batch_size=8)
  assert set(results["cpc"]) == {"word/c", "voice/c", "word/z", "voice/z",
                                 "test_step_loss", "test_step_accuracy",
                                 "seconds"}
  assert all(0.0 <= results[n]["word/c"] <= 1.0 for n in ("cpc", "random_init"))
  np.testing.assert_allclose(results["cpc"]["test_step_accuracy"], acc,
                             rtol=1e-5)
  assert "word/c" in format_cpc(results)


def test_image_cpc_evaluation_beside_random_init_and_pixels():
  method = _image_method()
  train, test = tiny_dataset(n=32, side=12), tiny_dataset(n=16, side=12, seed=1)
  state = method.init(init_key(), train.image_shape)
  ev = EvalConfig(knn_k=5, linear_epochs=2, linear_batch_size=16,
                  feature_batch_size=16, step_accuracy_batches=1,
                  probe_train_examples=24)
  results = image_cpc_evaluation(method, {"cpc": state, "random_init": state},
                                 train, test, ev=ev, seed=0, batch_size=8)
  assert results["probe_examples"] == {"train": 24, "test": 16}
  for pool in ("z", "c", "zc"):
    assert results["cpc"][pool] == results["random_init"][pool]
  assert set(results["cpc"]["z"]) == {"linear", "knn"}
  loss_k, acc_k = held_out_prediction_accuracy(method, state, test.images[:8],
                                               batch_size=8)
  np.testing.assert_allclose(results["cpc"]["test_step_accuracy"], acc_k)
  assert 0.0 <= results["raw_pixels"]["pixels"]["knn"] <= 1.0
  assert "raw pixels" in format_cpc(results)


def test_sequence_pools_against_numpy():
  """The audio probes' pools: z's and c's means over time, c's last step,
  and c's mean and (population) standard deviation, the spectral baseline's
  mean_std pooling."""
  rng = np.random.default_rng(0)
  z = rng.standard_normal((3, 7, 4)).astype(np.float32)
  c = rng.standard_normal((3, 7, 5)).astype(np.float32)
  pools = split_pooled(jax.jit(pool_sequence)(z, c), 4, 5)
  np.testing.assert_allclose(pools["z"], z.mean(1), rtol=1e-5)
  np.testing.assert_allclose(pools["c"], c.mean(1), rtol=1e-5)
  np.testing.assert_allclose(pools["c_last"], c[:, 6], rtol=1e-6)
  np.testing.assert_allclose(pools["c_mean_std"],
                             np.concatenate([c.mean(1), c.std(1)], -1),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="pooled features"):
    split_pooled(np.zeros((3, 18)), 4, 5)
