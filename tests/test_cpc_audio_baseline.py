"""The trivial baseline of audio CPC: log-mel and MFCC features
(``ssljax.data.spectral``) against independent implementations (scipy's
window, FFT and DCT, a filter bank built by loops from the HTK mel formula),
and their probes in ``ssljax.eval.cpc`` (the same probe as the networks, its
weight decay chosen on training utterances only)."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from ssljax.data import spectral
from ssljax.data.speech import SpeechDataset
from ssljax.eval.cpc import (audio_spectral_baselines, format_cpc,
                             spectral_features)
from ssljax.eval.linear import linear_probe
from ssljax.train.build import EvalConfig

SR = 16000
#: One jitted front end shared by the tests (one compile per input shape).
LOG_MEL = jax.jit(spectral.log_mel_spectrogram)

# ---------------------------------------------------------------------------
# Independent implementations (numpy / scipy loops over the definitions).


def _htk_mel(f):
  return 2595.0 * math.log10(1.0 + f / 700.0)


def _htk_hz(m):
  return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def oracle_filterbank(sample_rate=SR, n_fft=512, num_mels=40):
  """Loops: filter j rises linearly from corner j to j+1 and falls to j+2,
  corners equally spaced in HTK mel from 0 Hz to the Nyquist frequency."""
  top = _htk_mel(sample_rate / 2)
  corners = [_htk_hz(top * i / (num_mels + 1)) for i in range(num_mels + 2)]
  fb = np.zeros((n_fft // 2 + 1, num_mels))
  for j in range(num_mels):
    lo, mid, hi = corners[j], corners[j + 1], corners[j + 2]
    for k in range(n_fft // 2 + 1):
      f = k * sample_rate / n_fft
      if lo <= f <= mid:
        fb[k, j] = (f - lo) / (mid - lo)
      elif mid < f <= hi:
        fb[k, j] = (hi - f) / (hi - mid)
  return fb, corners


def oracle_power(x, frame=400, hop=160, n_fft=512):
  """scipy's periodic Hann window and real FFT on frames sliced by hand."""
  window = scipy.signal.get_window("hann", frame)          # periodic
  t = 1 + (x.shape[-1] - frame) // hop
  frames = np.stack([x[..., i * hop:i * hop + frame] for i in range(t)], -2)
  return np.abs(scipy.fft.rfft(frames.astype(np.float64) * window, n=n_fft,
                               axis=-1)) ** 2


def oracle_log_mel_mfcc(x):
  log_mel = np.log(np.maximum(oracle_power(x) @ oracle_filterbank()[0], 1e-10))
  mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-1)[..., :13]
  return log_mel, mfcc


def _waves(n=2, length=2000, seed=0):
  """Noise plus two tones, in [-1, 1] (float32 ``[n, length]``)."""
  rng = np.random.default_rng(seed)
  t = np.arange(length) / SR
  tones = sum(0.3 * np.sin(2 * np.pi * f * t) for f in (440.0, 2300.0))
  return (0.05 * rng.normal(size=(n, length)) + tones).astype(np.float32)


# ---------------------------------------------------------------------------
# The front end.


def test_power_spectrogram_matches_scipy_under_jit():
  x = _waves()
  got = jax.jit(functools.partial(spectral.power_spectrogram,
                                  sample_rate=SR))(x)
  want = oracle_power(x)
  assert got.shape == want.shape == (2, 1 + (2000 - 400) // 160, 257)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * want.max())


def test_mel_filterbank_matches_loops_over_the_htk_formula():
  fb = spectral.mel_filterbank(sample_rate=SR, n_fft=512, num_mels=40)
  want, corners = oracle_filterbank()
  assert fb.shape == (257, 40)
  np.testing.assert_allclose(fb, want, atol=1e-6)
  # Neighbouring triangles add up to 1 between the first and last centres.
  freqs = np.arange(257) * SR / 512
  inside = (freqs >= corners[1]) & (freqs <= corners[-2])
  np.testing.assert_allclose(fb[inside].sum(1), 1.0, atol=1e-5)
  np.testing.assert_allclose(spectral.mel_to_hz(spectral.hz_to_mel(corners)),
                             corners, rtol=1e-9)


def test_log_mel_and_mfcc_match_scipy_under_jit():
  x = _waves(seed=1)
  log_mel = LOG_MEL(x)
  mfcc = jax.jit(spectral.mfcc)(x)
  want_log_mel, want_mfcc = oracle_log_mel_mfcc(x)
  assert log_mel.shape == (2, 11, 40) and mfcc.shape == (2, 11, 13)
  np.testing.assert_allclose(log_mel, want_log_mel, atol=2e-3)
  np.testing.assert_allclose(mfcc, want_mfcc, atol=1e-2)
  np.testing.assert_allclose(
      jax.jit(spectral.mfcc_from_log_mel)(want_log_mel.astype(np.float32)),
      want_mfcc, rtol=1e-5, atol=1e-4)


def test_a_tone_lands_in_the_band_centred_nearest_it():
  """1 kHz: the loudest mel band is the one whose centre is nearest 1 kHz."""
  t = np.arange(2000) / SR
  tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
  log_mel = LOG_MEL(np.stack([tone, tone]))
  _, corners = oracle_filterbank()
  nearest = int(np.argmin(np.abs(np.array(corners[1:-1]) - 1000.0)))
  assert int(np.argmax(np.asarray(log_mel[0]).mean(0))) == nearest


def test_pool_frames_mean_and_std_under_jit():
  f = np.random.default_rng(2).normal(size=(3, 7, 5)).astype(np.float32)
  pool = jax.jit(spectral.pool_frames, static_argnames="pool")
  np.testing.assert_allclose(pool(f, pool="mean"), f.mean(1), rtol=1e-5)
  np.testing.assert_allclose(
      pool(f, pool="mean_std"),
      np.concatenate([f.mean(1), f.std(1)], -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda: spectral.log_mel_spectrogram(np.zeros((2, 399))), r"\(2, 399\)"),
    (lambda: spectral.power_spectrogram(np.zeros(800), n_fft=256), "n_fft 256"),
    (lambda: spectral.mfcc(np.zeros(800), num_coeffs=41), "num_coeffs 41"),
    (lambda: spectral.mfcc_from_log_mel(np.zeros((3, 4)), num_coeffs=5),
     r"\(3, 4\)"),
    (lambda: spectral.pool_frames(np.zeros(5)), r"\(5,\)"),
    (lambda: spectral.pool_frames(np.zeros((2, 5)), pool="max"), "'max'"),
    (lambda: spectral.mel_filterbank(fmax=9000.0), "fmax 9000"),
    (lambda: spectral_features(np.zeros(5, np.int16), sample_rate=SR),
     r"\(5,\)"),
])
def test_bad_inputs_name_the_problem(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_spectral_features_pool_int16_clips_in_padded_batches():
  """Batches of 2 (the last one padded) give what the jitted front end gives
  on the int16 clips / 32768, pooled by numpy."""
  audio = (_waves(n=3, seed=3) * 32767).astype(np.int16)
  feats = spectral_features(audio, sample_rate=SR, batch_size=2)
  log_mel = np.concatenate([LOG_MEL(audio[:2].astype(np.float32) / 32768),
                            LOG_MEL(audio[1:].astype(np.float32) / 32768)[1:]])
  mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-1)[..., :13]
  np.testing.assert_allclose(feats["log_mel"]["mean"], log_mel.mean(1),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(feats["log_mel"]["mean_std"][:, 40:],
                             log_mel.std(1), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(feats["mfcc"]["mean_std"],
                             np.concatenate([mfcc.mean(1), mfcc.std(1)], -1),
                             rtol=1e-4, atol=1e-4)
  assert feats["mfcc"]["mean"].shape == (3, 13)
  assert feats["log_mel"]["mean_std"].shape == (3, 80)


# ---------------------------------------------------------------------------
# The probes: the same probe as the networks, chosen on training utterances.


def _speech(n=40, length=960, seed=0):
  """Two 'words' (a low or a high tone) in two 'voices' (loud or soft)."""
  rng = np.random.default_rng(seed)
  word = np.arange(n) % 2
  voice = (np.arange(n) // 2) % 2
  t = np.arange(length) / SR
  f = np.where(word == 1, 1800.0, 500.0)[:, None] * rng.uniform(0.9, 1.1, (n, 1))
  gain = np.where(voice == 1, 0.5, 0.05)[:, None]
  audio = gain * np.sin(2 * np.pi * f * t) + 0.01 * rng.normal(size=(n, length))
  z = np.zeros(n, np.int32)
  return SpeechDataset(audio=(audio * 32767).astype(np.int16),
                       word=word.astype(np.int32), voice=voice.astype(np.int32),
                       rate=z + 150, pitch=z + 50, words=("low", "high"),
                       voices=("loud", "soft"), name="spoken_words:synthetic")


EV = EvalConfig(linear_epochs=3, linear_lr=0.1,
                linear_weight_decay=(1e-4, 1e-1, 10.0), linear_batch_size=8,
                feature_batch_size=16, pools=("c",))


def test_baselines_use_the_probe_and_choose_on_training_utterances_only():
  """Each row's weight decay is the best on the validation part of the
  training utterances; the accuracy is ``linear_probe``'s (the networks'
  probe); other test labels change no choice. (One front end and one pool:
  every feature width compiles the probe anew.)"""
  train, test = _speech(), _speech(n=16, seed=1)
  run = functools.partial(audio_spectral_baselines, ev=EV, seed=0,
                          val_fraction=0.25, front_ends=("log_mel",),
                          pools=("mean",))
  results, choices = run(train, test)
  assert set(results) == set(choices) == {"log_mel"}
  assert set(choices["log_mel"]) == {"word/mean", "voice/mean"}
  for key, choice in choices["log_mel"].items():
    scores = {float(k): v for k, v in choice["validation"].items()}
    assert set(scores) == {1e-4, 1e-1, 10.0}
    # the best validation score, ties to the stronger weight decay
    assert choice["weight_decay"] == max(sorted(scores, reverse=True),
                                         key=scores.get)
    assert 0.0 <= results["log_mel"][key] <= 1.0
  # The networks' probe: linear_probe with the same arguments.
  feats, feats_te = (spectral_features(ds.audio, sample_rate=SR,
                                       batch_size=16)["log_mel"]["mean"]
                     for ds in (train, test))
  direct = linear_probe(feats, train.word, feats_te, test.word, num_classes=2,
                        epochs=3, lr=0.1, batch_size=8,
                        weight_decay=(1e-4, 1e-1, 10.0), val_fraction=0.25,
                        seed=0)
  assert results["log_mel"]["word/mean"] == direct["accuracy"]
  assert choices["log_mel"]["word/mean"]["weight_decay"] == direct["weight_decay"]
  # Other test labels change no choice (the test split chooses nothing).
  flipped = dataclasses.replace(test, word=1 - test.word, voice=1 - test.voice)
  results2, choices2 = run(train, flipped)
  assert choices2 == choices
  np.testing.assert_allclose(results2["log_mel"]["word/mean"],
                             1.0 - results["log_mel"]["word/mean"])
  with pytest.raises(ValueError, match="'max'"):
    audio_spectral_baselines(train, test, ev=EV, seed=0, pools=("max",))


def test_format_cpc_shows_the_baselines_and_how_the_probe_chose():
  """The table of an ``audio_probes`` result lists every baseline row and
  says the weight decay was chosen on training utterances."""
  net = {"word/c": 0.5, "voice/c": 0.25, "test_step_accuracy": [0.1, 0.05]}
  base = {f"{label}/{pool}": 0.125 for label in ("word", "voice")
          for pool in spectral.POOLS}
  results = {"cpc": net, "random_init": net, "log_mel": base, "mfcc": base,
             "probe": {"epochs": 100, "lr": 0.1, "val_fraction": 0.2,
                       "weight_decay": [1e-4, 1e-3]}}
  text = format_cpc(results)
  for row in ("word/c", "log-mel mean ", "log-mel mean+std", "MFCC mean ",
              "MFCC mean+std", "12.50%", "chosen per row from [0.0001, 0.001] "
              "on a seeded 20% of the training utterances"):
    assert row in text, text
