"""Inputs a user or a file controls (issue 26): report pictures stay inside
their eval_suite folder, spoken words never become espeak-ng options, TFDS
images become uint8 exactly or are refused, and a normalization that does
not match the images' channels is a config problem before anything compiles.
"""

import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest
from helpers import tiny_config, tiny_dataset

from ssljax import data
from ssljax.config import ConfigError, FieldError
from ssljax.data import speech
from ssljax.data.sources import to_uint8_images
from ssljax.eval.report import UnsafePictureWarning, picture_source, write_report
from ssljax.train.validate import checked_run, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PNG = b"\x89PNG\r\n\x1a\n"
SECRET = b"secret: not a picture"


# ---------------------------------------------------------------------------
# Report pictures (ssljax.eval.report).


def _evaluated_run(tmp_path, files, workdir_in_json="run"):
  """A workdir whose eval_suite/report.json lists ``files``; a secret file
  lies beside the workdir, outside eval_suite."""
  secret = tmp_path / "secret.png"
  secret.write_bytes(SECRET)
  work = tmp_path / "run"
  suite = work / "eval_suite"
  (suite / "sub").mkdir(parents=True)
  (suite / "retrieval.png").write_bytes(PNG + b"retrieval")
  (suite / "sub" / "curves.png").write_bytes(PNG + b"curves")
  os.symlink(secret, suite / "leak.png")                  # points outside
  os.symlink(suite / "retrieval.png", suite / "alias.png")  # stays inside
  report = {"workdir": workdir_in_json, "method": "simclr", "dataset": "tiny",
            "step": 4, "sections": {"pictures": {"files": files}}}
  (suite / "report.json").write_text(json.dumps(report))
  return str(work), str(secret)


def _all_files(folder):
  return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]


def test_report_copies_only_pictures_inside_eval_suite(tmp_path):
  files = {"retrieval": "retrieval.png", "curves": "sub/curves.png",
           "alias": "alias.png", "absolute": str(tmp_path / "secret.png"),
           "parent": "../../secret.png", "symlink": "leak.png",
           "missing": "gone.png"}
  work, _ = _evaluated_run(tmp_path, files)
  out = tmp_path / "report"
  with pytest.warns(UnsafePictureWarning) as caught:
    md, html = write_report([work], str(out))
  messages = [str(w.message) for w in caught]
  assert len(messages) == 3, messages
  assert any("must be a path relative to the eval_suite folder" in m
             and "secret.png" in m for m in messages)
  assert sum("outside" in m and "only pictures inside the eval_suite" in m
             for m in messages) == 2
  assert any("'../../secret.png'" in m for m in messages)
  assert any("'leak.png'" in m for m in messages)
  # the safe pictures are copied; nothing else, and nothing holds the secret
  copied = sorted(os.path.relpath(p, out) for p in _all_files(out))
  assert copied == ["report.html", "report.md", "run/alias.png",
                    "run/curves.png", "run/retrieval.png"]
  for p in _all_files(out):
    with open(p, "rb") as f:
      assert SECRET not in f.read(), p
  # and only they are linked
  text = open(md).read() + open(html).read()
  assert "run/retrieval.png" in text and "run/curves.png" in text
  assert "secret" not in text and "leak" not in text and "gone" not in text


def test_picture_source_refuses_paths_out_of_eval_suite(tmp_path):
  work, secret = _evaluated_run(tmp_path, {})
  suite = os.path.realpath(os.path.join(work, "eval_suite"))
  assert picture_source(work, "sub/curves.png") == os.path.join(
      suite, "sub", "curves.png")
  assert picture_source(work, "sub/../retrieval.png") == os.path.join(
      suite, "retrieval.png")
  assert picture_source(work, "nothing.png") is None          # no warning
  for rel in (secret, "../../secret.png", "leak.png", "sub/../../x.png",
              "", None, 3):
    with pytest.warns(UnsafePictureWarning):
      assert picture_source(work, rel) is None


def test_report_run_folder_stays_inside_the_output(tmp_path):
  # report.json's "workdir" names the output sub-folder: ".." would write
  # next to the report folder; it becomes "run".
  work, _ = _evaluated_run(tmp_path, {"retrieval": "retrieval.png"},
                           workdir_in_json="..")
  out = tmp_path / "out" / "report"
  write_report([work], str(out))
  assert sorted(os.path.relpath(p, tmp_path / "out")
                for p in _all_files(tmp_path / "out")) == [
                    "report/report.html", "report/report.md",
                    "report/run/retrieval.png"]


# ---------------------------------------------------------------------------
# Spoken words (ssljax.data.speech): a word is text, never an option.


def test_espeak_command_holds_no_word():
  cmd = speech._espeak_command("en-us+m1", 150, 50, "/tmp/out.wav")
  assert cmd == ["espeak-ng", "-v", "en-us+m1", "-s", "150", "-p", "50", "-z",
                 "-w", "/tmp/out.wav", "--stdin"]


@pytest.mark.parametrize("word", ["--help", "-w/tmp/x", "-q", "seven"])
def test_synthesize_passes_the_word_on_stdin(tmp_path, monkeypatch, word):
  calls = []

  def fake_run(cmd, *, input=None, **kwargs):  # pylint: disable=redefined-builtin
    del kwargs
    calls.append((cmd, input))
    with wave.open(cmd[cmd.index("-w") + 1], "wb") as f:
      f.setnchannels(1)
      f.setsampwidth(2)
      f.setframerate(22050)
      f.writeframes(np.arange(100, dtype="<i2").tobytes())
    return subprocess.CompletedProcess(cmd, 0, "", "")

  monkeypatch.setattr(speech.subprocess, "run", fake_run)
  x, sr = speech._synthesize(word, "en-us", 150, 50, str(tmp_path), 0)
  assert sr == 22050 and len(x) == 100
  (cmd, text), = calls
  assert text == word and word not in cmd and cmd[-1] == "--stdin"


@pytest.mark.skipif(not speech.espeak_available(), reason="no espeak-ng")
def test_real_espeak_speaks_option_like_words(tmp_path):
  target = tmp_path / "x.wav"
  for i, word in enumerate(["--help", f"-w{target}", "-v"]):
    x, sr = speech._synthesize(word, "en-us", 150, 50, str(tmp_path), i)
    assert sr > 0 and len(x) > 1000 and np.abs(x).max() > 0.01, word
  assert not target.exists()                 # "-w..." was spoken, not obeyed


def test_words_must_be_distinct_and_non_blank(tmp_path):
  with pytest.raises(FieldError, match="distinct, non-blank"):
    speech.SpokenWords(words=("one", " "))
  with pytest.raises(FieldError, match="distinct, non-blank"):
    speech.SpokenWords(words=("one", "one"))
  speech.SpokenWords(words=("-one", "--two"))   # spoken as text: allowed
  with pytest.raises(ValueError, match="distinct, non-blank"):
    speech.spoken_words(words=("a", ""), cache_dir=str(tmp_path))


# ---------------------------------------------------------------------------
# Images to uint8 (ssljax.data.sources.to_uint8_images).


def test_to_uint8_keeps_uint8_and_converts_exact_cases():
  u = np.array([[0, 7, 255]], np.uint8)
  assert to_uint8_images(u, "u") is u
  cases = [
      (np.array([False, True]), [0, 255]),
      (np.array([0, 1, 200, 255], np.int64), [0, 1, 200, 255]),
      (np.array([0, 255], np.uint16), [0, 255]),
      (np.array([0, 3], np.int8), [0, 3]),
      (np.array([0.0, 0.5, 0.2, 1.0], np.float32), [0, 128, 51, 255]),
      (np.array([0.0, 1.0], np.float64), [0, 255]),   # [0, 1]: scaled
      (np.array([0.0, 2.0, 255.0], np.float32), [0, 2, 255]),
      (np.array([0.0, 17.0, 128.0], np.float16), [0, 17, 128]),
  ]
  for x, want in cases:
    got = to_uint8_images(x, "x")
    assert got.dtype == np.uint8, x.dtype
    np.testing.assert_array_equal(got, want, err_msg=str(x.dtype))
  assert to_uint8_images(np.zeros((0, 2), np.float32), "e").dtype == np.uint8


@pytest.mark.parametrize("x,fragments", [
    (np.array([0, 1000], np.uint16), ["uint16", "[0, 1000]", "outside"]),
    (np.array([-1, 5], np.int32), ["int32", "[-1, 5]"]),
    (np.array([0.0, 1.5], np.float32), ["float32", "[0, 1.5]", "whole numbers"]),
    (np.array([0.0, 256.0], np.float64), ["float64", "[0, 256]"]),
    (np.array([-0.1, 0.5], np.float32), ["float32", "[-0.1, 0.5]"]),
    (np.array([0.0, np.nan], np.float32), ["NaN"]),
    (np.array([0.0, np.inf], np.float32), ["infinite"]),
    (np.array([1 + 1j]), ["complex128", "not numbers"]),
])
def test_to_uint8_refuses_what_it_cannot_convert_exactly(x, fragments):
  with pytest.raises(ValueError) as e:
    to_uint8_images(x, "ds:train")
  for f in ("ds:train", "Fix:", *fragments):
    assert f in str(e.value), (f, str(e.value))


def _tfds_with_images(images):
  """``as_dataset_fn`` for ``tfds.testing.mock_data`` yielding ``images``."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del self, split, decoders, read_config, kwargs
    labels = np.arange(len(images), dtype=np.int64) % 10
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
  return as_dataset


@pytest.mark.parametrize("images,want", [
    (np.arange(4 * 32 * 32 * 3).reshape(4, 32, 32, 3) % 256, None),
    (np.full((4, 32, 32, 3), 0.5, np.float32), 128),
    (np.full((4, 32, 32, 3), 1000, np.uint16), "uint16"),
    (np.full((4, 32, 32, 3), 1.5, np.float32), "float32"),
])
def test_tfds_images_converted_exactly_or_refused(images, want):
  tfds = pytest.importorskip("tensorflow_datasets")
  if want is None:
    images = images.astype(np.uint8)
  with tfds.testing.mock_data(as_dataset_fn=_tfds_with_images(images)):
    if isinstance(want, str):
      with pytest.raises(ValueError, match=f"cifar10:train: images of dtype {want}"):
        data.load("cifar10", "train", source="tfds")
      return
    ds = data.load("cifar10", "train", source="tfds")
  assert ds.images.dtype == np.uint8 and ds.images.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(ds.images, images if want is None else want)


# ---------------------------------------------------------------------------
# Normalization vs the images' channels (ssljax.train.validate).


def _mismatch_config(**overrides):
  return tiny_config(input_mean=(0.3, 0.3, 0.3), input_std=(0.3, 0.3, 0.3),
                     **overrides)


def _assert_channel_problem(err, key, *fragments):
  assert err.keys == (key,), str(err)
  for f in (key, *fragments):
    assert f in str(err), (f, str(err))


def test_normalization_channels_are_a_config_problem():
  with pytest.raises(ConfigError) as e:
    validate_config(_mismatch_config(), dataset=tiny_dataset(), device_count=1)
  _assert_channel_problem(e.value, "input_mean", "have 3 values", "1 channel ",
                          "(8, 8, 1)", "--config.input_mean='(0.5,)'",
                          "--config.input_std='(0.5,)'", "channel_stats")
  # without tracing too (what the loop checks first), and in checked_run
  with pytest.raises(ConfigError) as e:
    validate_config(_mismatch_config(), dataset=tiny_dataset(), device_count=1,
                    check_shapes=False)
  _assert_channel_problem(e.value, "input_mean", "have 3 values")
  with pytest.raises(ConfigError) as e:
    checked_run(_mismatch_config(), tiny_dataset(), device_count=1)
  _assert_channel_problem(e.value, "input_mean", "have 3 values")
  # 3-channel images: 1 or 3 values, not 2
  validate_config(_mismatch_config(), dataset=tiny_dataset(channels=3),
                  device_count=1)
  with pytest.raises(ConfigError) as e:
    validate_config(tiny_config(input_mean=(0.3, 0.3), input_std=(0.3, 0.3)),
                    dataset=tiny_dataset(channels=3), device_count=1)
  _assert_channel_problem(e.value, "input_mean", "have 2 values", "3 channels",
                          "1 or 3 values", "'(0.5, 0.5, 0.5)'")


def test_known_statistics_on_other_images_are_a_config_problem():
  # cifar10's 3-value statistics, 1-channel images loaded under its name
  c = tiny_config(dataset="cifar10", input_mean=None, input_std=None)
  with pytest.raises(ConfigError) as e:
    validate_config(c, dataset=tiny_dataset(), device_count=1)
  _assert_channel_problem(e.value, "dataset", "known statistics have 3 values",
                          "1 channel ", "config.input_mean = (0.5,)")
  # a known 1-channel dataset: found from its facts, with no data loaded
  c = _mismatch_config(dataset="fashion_mnist")
  with pytest.raises(ConfigError) as e:
    validate_config(c, device_count=1, check_shapes=False)
  _assert_channel_problem(e.value, "input_mean", "(28, 28, 1)")
  # an unknown dataset, not loaded: its channels are not known yet
  validate_config(_mismatch_config(), device_count=1, check_shapes=False)


def test_pretrain_refuses_channel_mismatch_before_compiling(tmp_path):
  from ssljax.train.loop import pretrain  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "w"
  with pytest.raises(ConfigError) as e:
    pretrain(_mismatch_config(), str(workdir), dataset=tiny_dataset())
  _assert_channel_problem(e.value, "input_mean", "1 channel ")
  assert not workdir.exists() or not os.listdir(workdir)


def test_pretrain_script_exits_1_on_channel_mismatch(tmp_path):
  config_file = tmp_path / "digits_rgb_stats.py"
  config_file.write_text(
      "import sys\n"
      f"sys.path.insert(0, {TESTS_DIR!r})\n"
      "from helpers import tiny_config\n\n"
      "def get_config():\n"
      "  return tiny_config(dataset='digits', input_mean=(0.3, 0.3, 0.3),\n"
      "                     input_std=(0.3, 0.3, 0.3))\n")
  env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
  env.update(JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([REPO, TESTS_DIR]))
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "pretrain.py"),
       f"--config={config_file}", f"--workdir={tmp_path / 'w'}"],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert "input_mean" in out.stderr and "1 channel " in out.stderr
  assert "(8, 8, 1)" in out.stderr and "--config.input_mean='(0.5,)'" in out.stderr
  assert not (tmp_path / "w" / "checkpoints").exists()

