"""Spoken words synthesized with ``espeak-ng``: a small real-audio dataset.

:func:`spoken_words` speaks every word of a vocabulary in every voice
``repeats`` times, each time with its own speaking rate, pitch, gain, position
in the clip and background noise, all drawn from ``np.random.default_rng(seed)``
before any synthesis, so the dataset is a pure function of its arguments and
the espeak-ng version. Waveforms are resampled to 16 kHz (polyphase, from
espeak-ng's 22,050 Hz), trimmed of leading/trailing silence and placed at a
random offset in a fixed-length clip. The result is cached as one ``.npz``
under ``cache_dir`` (default ``$SSLJAX_DATA_DIR/spoken_words`` or
``~/.cache/ssljax/spoken_words``), named by a hash of the arguments.

The split is by repetition: of each (word, voice) pair's ``repeats``
utterances the last ``round(test_fraction * repeats)`` are ``test``, so both
splits hold every word in every voice.

espeak-ng comes from the system (Debian/Ubuntu: ``apt-get install
espeak-ng``; ``scripts/setup.sh`` installs it where apt exists).

In a config (``experiments/configs/cpc_audio.py``): ``dataset =
"spoken_words"`` and the ``data`` section holds the fields of
:class:`SpokenWords` (the arguments of :func:`spoken_words`)::

    words = build(SpokenWords, ConfigReader(config).data)   # cheap, checked
    words.input_shape, words.dtype, words.num_examples("train")  # no synthesis
    train = words.load("train")                               # SpeechDataset
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import wave
from typing import ClassVar

import numpy as np

from ssljax.config import check

__all__ = ["DEFAULT_VOICES", "DEFAULT_WORDS", "EspeakNotFoundError", "SpeechDataset",
           "SpokenWords", "espeak_available", "spoken_words"]

DEFAULT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
                 "eight", "nine")

#: espeak-ng voices: an English accent plus a voice variant (``+m3``: male 3,
#: ``+f2``: female 2, ``+klatt``: Klatt synthesizer, ``+croak``...).
DEFAULT_VOICES = ("en-us+m1", "en-gb+f2", "en-gb-scotland+m3", "en-029+f4",
                  "en-us-nyc+m7", "en-gb-x-rp+f5", "en+klatt",
                  "en-gb-x-gbclan+m2", "en-gb-x-gbcwmd+f3", "en-us+croak")

_ESPEAK = "espeak-ng"


class EspeakNotFoundError(FileNotFoundError):
  """espeak-ng is not installed; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class SpeechDataset:
  """Labelled fixed-length waveforms.

  Attributes:
    audio: int16 ``[N, L]`` at ``sample_rate``.
    word: int32 ``[N]``, index into ``words``.
    voice: int32 ``[N]``, index into ``voices``.
    rate, pitch: int32 ``[N]``, espeak-ng's ``-s`` (words/min) and ``-p``.
    words, voices: the label names.
    sample_rate: Hz.
    name: e.g. ``"spoken_words:train"``.
  """
  audio: np.ndarray
  word: np.ndarray
  voice: np.ndarray
  rate: np.ndarray
  pitch: np.ndarray
  words: tuple[str, ...]
  voices: tuple[str, ...]
  sample_rate: int = 16000
  name: str = "spoken_words"

  def __post_init__(self):
    n = self.audio.shape[0]
    if self.audio.dtype != np.int16 or self.audio.ndim != 2:
      raise ValueError(f"audio must be int16 [N, L]; got {self.audio.dtype} "
                       f"{self.audio.shape}.")
    for field in ("word", "voice", "rate", "pitch"):
      arr = getattr(self, field)
      if arr.shape != (n,):
        raise ValueError(f"{field} must have shape [{n}] to match audio "
                         f"{self.audio.shape}; got {arr.shape}.")

  def __len__(self) -> int:
    return int(self.audio.shape[0])

  @property
  def length(self) -> int:
    return int(self.audio.shape[1])

  # What the shared training loop (``ssljax.train.pretrain(dataset=...)``) and
  # ``ssljax.data.batches`` read from a non-image dataset: the inputs (int16
  # waveforms; the methods scale them), the per-example shape, and labels.
  @property
  def inputs(self) -> np.ndarray:
    return self.audio

  @property
  def input_shape(self) -> tuple[int]:
    return (self.length,)

  @property
  def labels(self) -> np.ndarray:
    """Word identity (the loop only carries it along; CPC ignores it)."""
    return self.word

  def subset(self, index, name: str | None = None) -> "SpeechDataset":
    return dataclasses.replace(
        self, audio=self.audio[index], word=self.word[index],
        voice=self.voice[index], rate=self.rate[index], pitch=self.pitch[index],
        name=name or self.name)


def _range_ok(r) -> bool:
  return len(r) == 2 and r[0] <= r[1]


@dataclasses.dataclass(frozen=True)
class SpokenWords:  # pylint: disable=too-many-instance-attributes
  """The spoken-word dataset of a config: its ``data`` section (the keyword
  arguments of :func:`spoken_words`, which documents them). Building it is
  cheap and synthesizes nothing; :meth:`load` builds or reads the cache.

  ``cache_dir = ""``: the default cache; ``workers = 0``: one espeak-ng
  process per CPU.
  """
  repeats: int = 12
  seed: int = 0
  length: int = 16000
  test_fraction: float = 0.25
  cache_dir: str = ""
  words: tuple[str, ...] = DEFAULT_WORDS
  voices: tuple[str, ...] = DEFAULT_VOICES
  sample_rate: int = 16000
  rate_range: tuple[int, int] = (120, 220)
  pitch_range: tuple[int, int] = (25, 75)
  gain_range: tuple[float, float] = (0.5, 1.0)
  snr_db_range: tuple[float, float] = (20.0, 40.0)
  workers: int = 0

  #: What a method is told of the batches (``ssljax.methods.DataSpec``).
  name: ClassVar[str] = "spoken_words"
  dtype: ClassVar[str] = "int16"

  def __post_init__(self):
    check(self,
          ("repeats", lambda r: isinstance(r, int) and r >= 2,
           "utterances per (word, voice): an integer >= 2 (some are held "
           "out as test); e.g. 12"),
          ("test_fraction", lambda f: 0 < round(f * self.repeats) < self.repeats,
           f"the share of each pair's {self.repeats} repeats held out as test "
           "must leave at least one repeat in each split; e.g. 0.25"),
          ("length", lambda n: isinstance(n, int) and n >= 1,
           "clip length in samples: an integer >= 1; e.g. 16000 (1 s)"),
          ("sample_rate", lambda r: isinstance(r, int) and r >= 1,
           "Hz: an integer >= 1; e.g. 16000"),
          ("words", lambda w: len(w) >= 2 and _words_ok(w),
           "at least two distinct, non-blank words to tell apart (each is "
           "spoken as text, on espeak-ng's stdin)"),
          ("voices", lambda v: len(v) >= 1, "at least one espeak-ng voice"),
          ("rate_range", _range_ok, "(low, high) words per minute, low <= high"),
          ("pitch_range", _range_ok, "(low, high) in espeak-ng's 0-99"),
          ("gain_range", _range_ok, "(low, high), low <= high"),
          ("snr_db_range", _range_ok, "(low, high) dB, low <= high"),
          ("workers", lambda w: w >= 0, "espeak-ng processes: >= 0 (0: one "
           "per CPU)"))

  @property
  def input_shape(self) -> tuple[int]:
    return (self.length,)

  @property
  def num_classes(self) -> int:
    """Word identity classes."""
    return len(self.words)

  def num_examples(self, split: str = "train") -> int:
    """Utterances in ``split`` (``"train"``, ``"test"``, ``"all"``)."""
    n_test = int(round(self.test_fraction * self.repeats))
    per_pair = {"train": self.repeats - n_test, "test": n_test,
                "all": self.repeats}[split]
    return len(self.words) * len(self.voices) * per_pair

  def load(self, split: str = "train", *, progress: bool = True
           ) -> "SpeechDataset":
    """:func:`spoken_words` of these arguments (built once, then cached)."""
    kwargs = dataclasses.asdict(self)
    kwargs["cache_dir"] = self.cache_dir or None
    kwargs["workers"] = self.workers or None
    return spoken_words(split, progress=progress, **kwargs)


def _words_ok(words) -> bool:
  """Every word a non-blank string and no two alike."""
  words = tuple(words)
  return (all(isinstance(w, str) and w.strip() for w in words)
          and len(set(words)) == len(words))


def espeak_available() -> bool:
  return shutil.which(_ESPEAK) is not None


def _espeak_version() -> str:
  out = subprocess.run([_ESPEAK, "--version"], capture_output=True, text=True,
                       check=True).stdout
  return out.split("Data at")[0].strip()


def _default_cache_dir() -> str:
  env = os.environ.get("SSLJAX_DATA_DIR")
  if env:
    return os.path.join(env, "spoken_words")
  return os.path.join(os.path.expanduser("~"), ".cache", "ssljax", "spoken_words")


def _espeak_command(voice: str, rate: int, pitch: int, path: str) -> list[str]:
  """espeak-ng's argument list writing ``path``; the text comes on stdin.

  The word is never on the command line (``--stdin``), so a word such as
  ``--help`` or ``-w/tmp/x`` is spoken as text, never read as an option; the
  voice is the value of ``-v``, which getopt takes whole even if it starts
  with ``-``.
  """
  return [_ESPEAK, "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)),
          "-z", "-w", path, "--stdin"]


def _synthesize(word: str, voice: str, rate: int, pitch: int, workdir: str,
                index: int) -> tuple[np.ndarray, int]:
  path = os.path.join(workdir, f"{index}.wav")
  cmd = _espeak_command(voice, rate, pitch, path)
  proc = subprocess.run(cmd, input=word, capture_output=True, text=True)
  if proc.returncode != 0 or not os.path.exists(path):
    raise RuntimeError(f"espeak-ng failed on the word {word!r} "
                       f"({' '.join(cmd)}): {proc.stderr.strip()}")
  with wave.open(path, "rb") as f:
    if f.getsampwidth() != 2 or f.getnchannels() != 1:
      raise RuntimeError(f"espeak-ng wrote {f.getnchannels()} channels of "
                         f"{8 * f.getsampwidth()} bits; expected mono 16-bit.")
    sr = f.getframerate()
    data = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float64)
  os.remove(path)
  return data / 32768.0, sr


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
  if sr_in == sr_out:
    return x
  from scipy.signal import resample_poly  # pylint: disable=import-outside-toplevel
  g = math.gcd(sr_in, sr_out)
  return resample_poly(x, sr_out // g, sr_in // g)


def _trim(x: np.ndarray, sample_rate: int, threshold: float = 0.02) -> np.ndarray:
  """Drop leading/trailing samples below ``threshold * max|x|`` (10 ms kept)."""
  loud = np.flatnonzero(np.abs(x) > threshold * np.max(np.abs(x)))
  if loud.size == 0:
    return x
  margin = sample_rate // 100
  return x[max(0, loud[0] - margin): loud[-1] + margin + 1]


def _cache_key(params: dict) -> str:
  text = json.dumps(params, sort_keys=True)
  return hashlib.sha1(text.encode()).hexdigest()[:12]


def spoken_words(split: str = "train", *, words=DEFAULT_WORDS,
                 voices=DEFAULT_VOICES, repeats: int = 12, seed: int = 0,
                 sample_rate: int = 16000, length: int = 16000,
                 rate_range: tuple[int, int] = (120, 220),
                 pitch_range: tuple[int, int] = (25, 75),
                 gain_range: tuple[float, float] = (0.5, 1.0),
                 snr_db_range: tuple[float, float] = (20.0, 40.0),
                 test_fraction: float = 0.25, cache_dir: str | None = None,
                 workers: int | None = None, progress: bool = True
                 ) -> SpeechDataset:
  """The spoken-word dataset (built once, then read from the cache).

  Args:
    split: ``"train"``, ``"test"`` or ``"all"``.
    words, voices: vocabulary and espeak-ng voice names (``espeak-ng
      --voices``; ``+variant`` suffixes allowed).
    repeats: utterances per (word, voice) pair.
    seed: draws every utterance's rate (uniform integer in ``rate_range``
      words/min), pitch (``pitch_range``, espeak-ng's 0-99), gain, offset in
      the clip and white-noise level (SNR uniform in ``snr_db_range`` dB
      relative to the utterance's RMS).
    sample_rate, length: output rate (Hz) and clip length (samples); longer
      utterances are cut at the end.
    test_fraction: share of each pair's repeats held out as ``test``.
    cache_dir: where the ``.npz`` goes (see the module docstring).
    workers: parallel espeak-ng processes (default: CPU count).

  Raises:
    EspeakNotFoundError: when the dataset is not cached and espeak-ng is
      missing.
  """
  if split not in ("train", "test", "all"):
    raise ValueError(f"split must be 'train', 'test' or 'all'; got {split!r}.")
  words, voices = tuple(words), tuple(voices)
  if repeats < 1 or not words or not voices:
    raise ValueError("need at least one word, one voice and repeats >= 1.")
  if not _words_ok(words):
    raise ValueError(f"words must be distinct, non-blank strings; got {words!r}. "
                     "Fix: drop the empty and repeated words.")
  n_test = int(round(test_fraction * repeats))
  if not 0 <= n_test < repeats:
    raise ValueError(f"test_fraction {test_fraction} of {repeats} repeats "
                     "leaves no training utterance.")
  params = dict(words=words, voices=voices, repeats=repeats, seed=seed,
                sample_rate=sample_rate, length=length,
                rate_range=tuple(rate_range), pitch_range=tuple(pitch_range),
                gain_range=tuple(gain_range), snr_db_range=tuple(snr_db_range))
  cache_dir = cache_dir or _default_cache_dir()
  have_espeak = espeak_available()
  version = _espeak_version() if have_espeak else None
  path = None
  if version is not None:
    path = os.path.join(cache_dir, f"spoken_words_{_cache_key({**params, 'espeak': version})}.npz")
  else:  # no espeak-ng: accept any cached build of these parameters
    key = _cache_key(params)
    if os.path.isdir(cache_dir):
      for name in sorted(os.listdir(cache_dir)):
        if name.endswith(".npz"):
          with np.load(os.path.join(cache_dir, name), allow_pickle=False) as f:
            if "params_key" in f and str(f["params_key"]) == key:
              path = os.path.join(cache_dir, name)
              break
    if path is None:
      raise EspeakNotFoundError(
          f"espeak-ng is not installed and no cached spoken-word dataset with "
          f"these parameters is in {cache_dir}. To fix: apt-get install "
          "espeak-ng (or run scripts/setup.sh), or copy a cached .npz there.")
  if not os.path.exists(path):
    _build(path, params, workers, progress)
  with np.load(path, allow_pickle=False) as f:
    full = SpeechDataset(audio=f["audio"], word=f["word"], voice=f["voice"],
                         rate=f["rate"], pitch=f["pitch"], words=words,
                         voices=voices, sample_rate=sample_rate,
                         name="spoken_words:all")
    rep = f["repeat"]
  if split == "all":
    return full
  is_test = rep >= repeats - n_test
  mask = is_test if split == "test" else ~is_test
  return full.subset(np.flatnonzero(mask), name=f"spoken_words:{split}")


def _build(path: str, params: dict, workers: int | None, progress: bool) -> None:
  words, voices, repeats = params["words"], params["voices"], params["repeats"]
  sr, length = params["sample_rate"], params["length"]
  rng = np.random.default_rng(params["seed"])
  jobs = [(w, v, r) for w in range(len(words)) for v in range(len(voices))
          for r in range(repeats)]
  n = len(jobs)
  # Every random number is drawn here, before synthesis, in a fixed order.
  rate = rng.integers(params["rate_range"][0], params["rate_range"][1] + 1, n)
  pitch = rng.integers(params["pitch_range"][0], params["pitch_range"][1] + 1, n)
  gain = rng.uniform(*params["gain_range"], n)
  snr_db = rng.uniform(*params["snr_db_range"], n)
  offset_u = rng.uniform(0.0, 1.0, n)
  noise_seeds = rng.integers(0, 2**31 - 1, n)

  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel
  audio = np.zeros((n, length), np.int16)
  with tempfile.TemporaryDirectory() as tmp, \
      concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
    futures = [pool.submit(_synthesize, words[w], voices[v], int(rate[i]),
                           int(pitch[i]), tmp, i)
               for i, (w, v, _) in enumerate(jobs)]
    for i, fut in enumerate(tqdm(futures, desc="espeak-ng", disable=not progress,
                                 leave=False)):
      x, sr_in = fut.result()
      x = _trim(_resample(x, sr_in, sr), sr)[:length]
      x = x / max(np.max(np.abs(x)), 1e-9) * 0.9 * gain[i]
      clip = np.zeros(length)
      start = int(offset_u[i] * (length - len(x) + 1))
      clip[start:start + len(x)] = x
      rms = np.sqrt(np.mean(x ** 2))
      noise_std = rms / (10.0 ** (snr_db[i] / 20.0))
      clip += np.random.default_rng(int(noise_seeds[i])).normal(0.0, noise_std, length)
      audio[i] = np.clip(np.round(clip * 32767.0), -32768, 32767).astype(np.int16)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp_path = path + f".tmp{os.getpid()}.npz"
  np.savez(tmp_path, audio=audio,
           word=np.array([j[0] for j in jobs], np.int32),
           voice=np.array([j[1] for j in jobs], np.int32),
           repeat=np.array([j[2] for j in jobs], np.int32),
           rate=rate.astype(np.int32), pitch=pitch.astype(np.int32),
           params_key=np.array(_cache_key(params)))
  os.replace(tmp_path, path)
