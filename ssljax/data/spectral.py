"""Log-mel and MFCC features of waveforms: the trivial baseline of speech.

The usual speech front end (HTK, Kaldi, Davis & Mermelstein 1980), computed
here in ``jnp`` from the waveform (every function traces under ``jax.jit``;
the filter bank and the DCT matrix are numpy constants of the static
arguments):

* **frames**: windows of ``window_ms = 25`` ms (400 samples at 16 kHz) every
  ``hop_ms = 10`` ms (160 samples), no padding: a clip of ``L`` samples gives
  ``T = 1 + (L - 400) // 160`` frames (98 for 1 s at 16 kHz); no
  pre-emphasis, no dither, no mean removal;
* **window**: periodic Hann; **FFT** of ``n_fft`` points (default: the next
  power of two of the window, 512 at 16 kHz); power spectrum ``|X_k|^2``,
  ``k = 0 .. n_fft / 2`` (257 bins);
* **mel filter bank**: ``num_mels = 40`` triangular filters of peak 1 (not
  area-normalized) whose corners are equally spaced on the HTK mel scale
  ``mel(f) = 2595 log10(1 + f / 700)`` from ``fmin = 0`` Hz to ``fmax =
  sample_rate / 2``, evaluated at the bin frequencies ``k * sample_rate /
  n_fft``;
* **log-mel**: ``ln(max(mel energy, floor))``, ``floor = 1e-10``;
* **MFCC**: the orthonormal DCT-II of the 40 log-mel energies, first
  ``num_coeffs = 13`` (``c0`` included, no liftering, no deltas).

Waveforms are floats in ``[-1, 1]`` (int16 / 32768, what the sequence CPC
reads with ``input_scale = 1 / 32768``). :func:`pool_frames` pools a
``[..., T, F]`` feature map over time as the CPC evaluation pools its
features: ``"mean"`` (``[..., F]``) or ``"mean_std"`` (``[..., 2F]``: mean,
then standard deviation over frames).
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

__all__ = ["HOP_MS", "LOG_FLOOR", "NUM_MELS", "NUM_MFCC", "POOLS", "WINDOW_MS",
           "dct_matrix", "default_n_fft", "frame_signal", "hann_window",
           "hz_to_mel", "log_mel_spectrogram", "mel_filterbank", "mel_to_hz",
           "mfcc", "mfcc_from_log_mel", "num_frames", "pool_frames",
           "power_spectrogram"]

#: The defaults: 25 ms windows every 10 ms, 40 mel bands, 13 MFCCs, log floor.
WINDOW_MS, HOP_MS, NUM_MELS, NUM_MFCC, LOG_FLOOR = 25.0, 10.0, 40, 13, 1e-10
#: The ways :func:`pool_frames` pools over time.
POOLS = ("mean", "mean_std")


def hz_to_mel(f):
  """HTK mel scale: ``2595 log10(1 + f / 700)`` (numpy, any shape)."""
  return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
  """Inverse of :func:`hz_to_mel`: ``700 (10^(m / 2595) - 1)``."""
  return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def _samples(ms: float, sample_rate: int) -> int:
  return int(round(ms * sample_rate / 1000.0))


def default_n_fft(frame_length: int) -> int:
  """The FFT size of a window: the next power of two (512 for 400)."""
  return 1 << max(0, math.ceil(math.log2(frame_length)))


def num_frames(length: int, *, frame_length: int, hop_length: int) -> int:
  """Frames of a ``length``-sample signal: ``1 + (length - frame_length) //
  hop_length`` (no padding); ``ValueError`` when it holds no whole frame."""
  if frame_length < 1 or hop_length < 1:
    raise ValueError(f"frame_length {frame_length} and hop_length "
                     f"{hop_length} must be >= 1.")
  if length < frame_length:
    raise ValueError(f"a signal of {length} samples holds no frame of "
                     f"{frame_length} samples.")
  return 1 + (length - frame_length) // hop_length


def frame_signal(x, *, frame_length: int, hop_length: int):
  """Overlapping frames of ``x [..., L]``: ``[..., T, frame_length]``, frame
  ``t`` = ``x[..., t * hop_length : t * hop_length + frame_length]``."""
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"x must be [..., L]; got shape {x.shape}.")
  t = num_frames(x.shape[-1], frame_length=frame_length, hop_length=hop_length)
  idx = (hop_length * np.arange(t)[:, None] + np.arange(frame_length)[None, :])
  return x[..., idx]


def hann_window(n: int) -> np.ndarray:
  """Periodic Hann window ``[n]``: ``0.5 - 0.5 cos(2 pi i / n)``."""
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _check_stft(x, *, sample_rate, window_ms, hop_ms, n_fft):
  if sample_rate < 1:
    raise ValueError(f"sample_rate must be >= 1 Hz; got {sample_rate}.")
  frame_length = _samples(window_ms, sample_rate)
  hop_length = _samples(hop_ms, sample_rate)
  if frame_length < 1 or hop_length < 1:
    raise ValueError(f"window_ms {window_ms} / hop_ms {hop_ms} at "
                     f"{sample_rate} Hz give {frame_length} / {hop_length} "
                     "samples; both must be >= 1.")
  n_fft = default_n_fft(frame_length) if n_fft is None else int(n_fft)
  if n_fft < frame_length:
    raise ValueError(f"n_fft {n_fft} is shorter than the window of "
                     f"{frame_length} samples.")
  if jnp.ndim(x) < 1 or jnp.shape(x)[-1] < frame_length:
    raise ValueError(f"waveforms must be [..., L] with L >= {frame_length} "
                     f"(one {window_ms} ms window at {sample_rate} Hz); got "
                     f"shape {jnp.shape(x)}.")
  return frame_length, hop_length, n_fft


def power_spectrogram(x, *, sample_rate: int = 16000,
                      window_ms: float = WINDOW_MS, hop_ms: float = HOP_MS,
                      n_fft: int | None = None):
  """``|rfft(hann * frame, n_fft)|^2`` of waveforms ``x [..., L]``:
  ``[..., T, n_fft // 2 + 1]`` float32 (frames as in the module docstring)."""
  frame_length, hop_length, n_fft = _check_stft(
      x, sample_rate=sample_rate, window_ms=window_ms, hop_ms=hop_ms,
      n_fft=n_fft)
  frames = frame_signal(jnp.asarray(x, jnp.float32), frame_length=frame_length,
                        hop_length=hop_length)
  spec = jnp.fft.rfft(frames * hann_window(frame_length), n=n_fft, axis=-1)
  return jnp.real(spec) ** 2 + jnp.imag(spec) ** 2


@functools.lru_cache(maxsize=16)
def _mel_filterbank(sample_rate, n_fft, num_mels, fmin, fmax):
  corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax),
                                  num_mels + 2))                  # [M + 2] Hz
  freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft         # [K] Hz
  lo, mid, hi = corners[:-2], corners[1:-1], corners[2:]          # [M] each
  rise = (freqs[:, None] - lo) / (mid - lo)
  fall = (hi - freqs[:, None]) / (hi - mid)
  fb = np.maximum(0.0, np.minimum(rise, fall)).astype(np.float32)
  fb.setflags(write=False)
  return fb


def mel_filterbank(*, sample_rate: int = 16000, n_fft: int = 512,
                   num_mels: int = NUM_MELS, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
  """Triangular HTK-mel filters ``[n_fft // 2 + 1, num_mels]`` (peak 1;
  corners equally spaced in mel from ``fmin`` to ``fmax``, default
  ``sample_rate / 2``); ``power [..., K] @ fb`` gives mel energies."""
  fmax = sample_rate / 2.0 if fmax is None else float(fmax)
  if num_mels < 1 or n_fft < 2:
    raise ValueError(f"num_mels {num_mels} must be >= 1 and n_fft {n_fft} "
                     ">= 2.")
  if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
    raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = "
                     f"{sample_rate / 2}; got fmin {fmin}, fmax {fmax}.")
  return _mel_filterbank(int(sample_rate), int(n_fft), int(num_mels),
                         float(fmin), fmax)


def dct_matrix(n: int, *, num_coeffs: int | None = None) -> np.ndarray:
  """Orthonormal DCT-II as a matrix ``[n, num_coeffs]`` (default ``n``):
  ``y = x @ D`` gives ``y_k = s_k sum_i x_i cos(pi k (2 i + 1) / (2 n))``,
  ``s_0 = sqrt(1 / n)``, ``s_k = sqrt(2 / n)``."""
  num_coeffs = n if num_coeffs is None else num_coeffs
  if not 1 <= num_coeffs <= n:
    raise ValueError(f"num_coeffs must be in [1, {n}]; got {num_coeffs}.")
  i, k = np.arange(n)[:, None], np.arange(num_coeffs)[None, :]
  d = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
  d[:, 0] = np.sqrt(1.0 / n)
  return d.astype(np.float32)


def log_mel_spectrogram(x, *, sample_rate: int = 16000,
                        window_ms: float = WINDOW_MS, hop_ms: float = HOP_MS,
                        n_fft: int | None = None, num_mels: int = NUM_MELS,
                        fmin: float = 0.0, fmax: float | None = None,
                        floor: float = LOG_FLOOR):
  """Log-mel energies of waveforms ``x [..., L]`` in ``[-1, 1]``:
  ``[..., T, num_mels]`` (``ln max(power @ filter bank, floor)``)."""
  power = power_spectrogram(x, sample_rate=sample_rate, window_ms=window_ms,
                            hop_ms=hop_ms, n_fft=n_fft)
  fb = mel_filterbank(sample_rate=sample_rate, n_fft=2 * (power.shape[-1] - 1),
                      num_mels=num_mels, fmin=fmin, fmax=fmax)
  return jnp.log(jnp.maximum(power @ fb, floor))


def mfcc_from_log_mel(log_mel, *, num_coeffs: int = NUM_MFCC):
  """The first ``num_coeffs`` orthonormal DCT-II coefficients of log-mel
  energies ``[..., T, M]``: ``[..., T, num_coeffs]``."""
  log_mel = jnp.asarray(log_mel)
  if log_mel.ndim < 1:
    raise ValueError(f"log_mel must be [..., M]; got shape {log_mel.shape}.")
  m = log_mel.shape[-1]
  if not 1 <= num_coeffs <= m:
    raise ValueError(f"num_coeffs {num_coeffs} must be in [1, {m}] for "
                     f"log-mel energies of shape {log_mel.shape}.")
  return log_mel @ dct_matrix(m, num_coeffs=num_coeffs)


def mfcc(x, *, num_coeffs: int = NUM_MFCC, num_mels: int = NUM_MELS, **kwargs):
  """MFCCs of waveforms ``x [..., L]``: ``[..., T, num_coeffs]``, the
  orthonormal DCT-II of :func:`log_mel_spectrogram` (``kwargs``: its
  options), first ``num_coeffs`` coefficients."""
  if not 1 <= num_coeffs <= num_mels:
    raise ValueError(f"num_coeffs {num_coeffs} must be in [1, num_mels = "
                     f"{num_mels}].")
  return mfcc_from_log_mel(log_mel_spectrogram(x, num_mels=num_mels, **kwargs),
                           num_coeffs=num_coeffs)


def pool_frames(features, *, pool: str = "mean"):
  """Pool ``features [..., T, F]`` over time: ``"mean"`` -> ``[..., F]``,
  ``"mean_std"`` -> ``[..., 2F]`` (mean, then population std over frames)."""
  features = jnp.asarray(features)
  if features.ndim < 2:
    raise ValueError(f"features must be [..., T, F]; got shape "
                     f"{features.shape}.")
  if pool == "mean":
    return features.mean(-2)
  if pool == "mean_std":
    return jnp.concatenate([features.mean(-2), features.std(-2)], -1)
  raise ValueError(f"pool must be one of {POOLS}; got {pool!r}.")
