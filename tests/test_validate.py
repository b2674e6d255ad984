"""Config checking (ssljax.config, ssljax.train.validate) and input checks.

Config checking derives from what the code reads: a key nobody reads is
unknown, a value a constructor refuses is a problem at its dotted key, the
train step is traced on abstract batches for shape mistakes.
"""

import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from helpers import load_module, tiny_config, tiny_dataset

from ssljax.config import (ConfigError, ConfigReader, FieldError, build, check,
                           kwargs_for)
from ssljax.models import ProjectionMLP
from ssljax.train.validate import (CROSS_FIELD_RULES, config_problems,
                                   validate_config, validate_images)

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments",
                          "configs")
CONFIG_FILES = sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py")))


def load(name: str) -> ml_collections.ConfigDict:
  return load_module(os.path.join(CONFIG_DIR, name + ".py"), name).get_config()


def errors(config, **kw) -> ConfigError:
  kw.setdefault("device_count", 8)
  with pytest.raises(ConfigError) as info:
    validate_config(config, **kw)
  return info.value


def assert_one(config, key, *fragments, **kw):
  """Exactly one problem, at ``key``; the message names the key and every
  fragment."""
  err = errors(config, **kw)
  assert err.keys == (key,), str(err)
  for f in (key, *fragments):
    assert f in str(err), (f, str(err))
  return err


# ---------------------------------------------------------------------------
# The reader and the builders.


def test_reader_records_reads_and_reports_the_rest():
  r = ConfigReader({"a": 1, "sec": {"x": 2, "y": 3}, "zzz": 4, "emptysec": {}})
  assert r.a == 1 and r.get("missing", 7) == 7 and r.sec.x == 2
  problems = {p.key: p for p in r.unread()}
  assert set(problems) == {"sec.y", "zzz", "emptysec"}
  assert "unknown key" in problems["zzz"].message
  with pytest.raises(AttributeError, match="sec.nope"):
    r.sec.nope  # pylint: disable=pointless-statement
  r.sec.to_dict()
  assert {p.key for p in r.unread()} == {"zzz", "emptysec"}


def test_reader_suggests_the_closest_key_asked_for_at_that_place():
  r = ConfigReader({"sec": {"temprature": 1}})
  r.sec.get("temperature", 0.5)
  r.get("temperature")
  (p,) = r.unread()
  assert p.key == "sec.temprature"
  assert "did you mean 'sec.temperature'" in p.message


def test_build_maps_a_section_onto_fields_and_collects_problems():
  r = ConfigReader({"head": {"out_dim": 4, "num_layrs": 3}})
  head = build(ProjectionMLP, r.head, dtype=jnp.float32)
  assert head.out_dim == 4 and head.num_layers == 2      # default kept
  (p,) = r.all_problems()
  assert p.key == "head.num_layrs" and "head.num_layers" in p.message


def test_check_names_every_bad_field_and_build_goes_on():
  import dataclasses  # pylint: disable=import-outside-toplevel

  @dataclasses.dataclass(frozen=True)
  class Thing:
    a: int = 1
    b: float = 0.5

    def __post_init__(self):
      check(self, ("a", lambda v: v >= 1, "must be >= 1"),
            ("b", lambda v: 0 <= v <= 1, "must lie in [0, 1]"))

  with pytest.raises(FieldError) as info:
    Thing(a=0, b=2.0)
  assert [f for f, _, _ in info.value.errors] == ["a", "b"]
  r = ConfigReader({"t": {"a": 0, "b": 2.0}})
  thing = build(Thing, r.t)
  assert isinstance(thing, Thing)
  assert [p.key for p in r.all_problems()] == ["t.a", "t.b"]
  assert "--config.t.a=" in str(r.all_problems()[0])


def test_kwargs_for_a_function_reads_its_keyword_arguments():
  def f(key, image, *, size=None, strength=1.0):
    del key, image, size, strength
  r = ConfigReader({"aug": {"strength": 0.5, "strenght": 1}})
  assert kwargs_for(f, r.aug) == {"strength": 0.5}
  assert [p.key for p in r.unread()] == ["aug.strenght"]


# ---------------------------------------------------------------------------
# Shipped configs: every key is read, every value accepted.


def test_config_files_found():
  assert len(CONFIG_FILES) >= 15


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_key_of_every_shipped_config_is_read(path):
  config = load_module(path, "cfg").get_config()
  assert config_problems(config, device_count=1) == []


# ---------------------------------------------------------------------------
# Problems.


def test_all_problems_at_once_with_their_fixes():
  c = load("simclr_fashion_mnist")
  c.temperature = -0.1
  c.optimizer.weight_decy = 1e-4
  c.head.num_layrs = 3
  c.batch_size = 255
  err = errors(c)
  assert set(err.keys) == {"temperature", "optimizer.weight_decy",
                           "head.num_layrs", "batch_size"}
  text = str(err)
  assert "4 problems" in text
  assert "did you mean 'optimizer.weight_decay'" in text
  assert "--config.temperature=" in text


def test_typo_top_level_suggests_key():
  c = load("simclr_fashion_mnist")
  c.temprature = 0.1
  assert_one(c, "temprature", "did you mean 'temperature'")


def test_unread_key_without_suggestion():
  c = load("simclr_fashion_mnist")
  c.frobnicate = 1
  assert_one(c, "frobnicate", "nothing reads it")


def test_unknown_method_suggests_registered_one():
  c = load("simclr_fashion_mnist")
  c.method = "simclrr"
  err = errors(c)
  assert err.keys == ("method",) and "did you mean 'simclr'" in str(err)


@pytest.mark.parametrize("key,value,fragment", [
    ("temperature", 0.0, "must be > 0"),
    ("seed", -1, "integer >= 0"),
    ("nonfinite", "ignore", "stop"),
    ("log_every", 0, "integer >= 1"),
])
def test_top_level_values(key, value, fragment):
  c = load("simclr_fashion_mnist")
  c[key] = value
  assert_one(c, key, fragment)


@pytest.mark.parametrize("key,value,fragment", [
    ("base_lr", -0.1, ">= 0"),
    ("weight_decay", -1e-4, ">= 0"),
    ("name", "adam", "lars"),
    ("lr_scaling", "log", "sqrt"),
])
def test_optimizer_values(key, value, fragment):
  c = load("simclr_fashion_mnist")
  c.optimizer[key] = value
  assert_one(c, f"optimizer.{key}", fragment)


def test_encoder_name_suggests_registered_one():
  c = load("simclr_fashion_mnist")
  c.encoder.name = "resnet19"
  assert_one(c, "encoder.name", "resnet18")


def test_eval_and_monitor_sections_are_checked():
  c = load("moco_v2_fashion_mnist")
  c.eval.linear_solver = "newton"
  assert_one(c, "eval.linear_solver", "lbfgs")
  c = load("moco_v2_fashion_mnist")
  c.monitor.k = 10_000
  assert_one(c, "monitor.k", "num_train")


def test_cross_field_rules():
  assert {k for k, _, _ in CROSS_FIELD_RULES} == {
      "batch_size", "optimizer.warmup_epochs"}
  c = load("simclr_fashion_mnist")
  c.batch_size = 250
  assert_one(c, "batch_size", "8 devices", "--config.batch_size=248",
             "--config.batch_size=256")
  validate_config(c, device_count=2)
  c = load("simclr_fashion_mnist")
  c.batch_size = 128
  assert_one(c, "batch_size", "larger than the dataset", num_examples=100)
  c = load("simclr_fashion_mnist")
  c.optimizer.warmup_epochs = 10.0
  assert_one(c, "optimizer.warmup_epochs", "never decay")


def test_step_schedule_has_no_warmup():
  c = load("simclr_fashion_mnist")
  c.optimizer.schedule = "step"
  c.optimizer.decay_epochs = (2, 4)
  assert_one(c, "optimizer.warmup_epochs", "step")
  c.optimizer.warmup_epochs = 0.0
  validate_config(c, device_count=1)


def test_channel_mismatch_is_a_problem_at_input_mean():
  # A 1-channel dataset normalized with 3 values: found from the data's
  # shape before anything is traced (tests/test_input_safety.py has more).
  c = tiny_config(input_mean=(0.3, 0.3, 0.3), input_std=(0.3, 0.3, 0.3))
  assert_one(c, "input_mean", "3 values", "1 channel", "(8, 8, 1)",
             "--config.input_mean='(0.5,)'", dataset=tiny_dataset(),
             device_count=1)
  validate_config(tiny_config(), dataset=tiny_dataset(), device_count=1)


def test_shape_mistakes_found_by_tracing_the_train_step():
  # A colour-only method on 1-channel images: found by eval_shape of init and
  # the train step on abstract uint8 batches, before anything compiles.
  c = load("colorization_photos")
  ds = tiny_dataset(n=2 * c.batch_size, side=32)
  err = errors(c, dataset=ds, device_count=1)
  assert err.keys == ("method",)
  assert f"({c.batch_size}, 32, 32, 1)" in str(err) and "(H, W, 3)" in str(err)


def test_plain_dict_config():
  validate_config(load("simclr_fashion_mnist").to_dict(), device_count=1)


# ---------------------------------------------------------------------------
# Images.


def test_images_accepted():
  validate_images(np.zeros((4, 28, 28, 1), np.uint8))
  validate_images(np.ones((2, 8, 8, 3), np.float32))
  validate_images(jnp.zeros((2, 8, 8, 3), jnp.bfloat16),
                  expected_shape=(8, 8, 3))
  validate_images(np.zeros((2, 8, 8, 1), np.uint8),
                  expected_shape=(2, None, None, 1))


@pytest.mark.parametrize("images,fragments", [
    (np.zeros((28, 28, 1), np.uint8), ["rank 4", "(28, 28, 1)", "images[None]"]),
    (np.zeros((4, 28, 28), np.uint8), ["rank 4", "(4, 28, 28)", "[..., None]"]),
    (np.zeros((4, 3, 32, 32), np.uint8), ["C in {1, 3}", "(4, 3, 32, 32)",
                                          "channels first"]),
    (np.zeros((4, 8, 8, 1), np.int32), ["uint8", "int32", "astype(np.uint8)"]),
    (np.zeros((4, 8, 8, 1), bool), ["uint8", "bool"]),
    (np.full((4, 8, 8, 1), 255.0, np.float32), ["[0, 1]", "float32",
                                                "divide by 255"]),
    (np.full((4, 8, 8, 1), np.nan, np.float32), ["NaN"]),
    (np.zeros((0, 8, 8, 1), np.uint8), ["empty", "(0, 8, 8, 1)"]),
    ([[1, 2]], ["array", "list"]),
])
def test_images_rejected(images, fragments):
  with pytest.raises(ValueError) as info:
    validate_images(images)
  for f in fragments:
    assert f in str(info.value), (f, str(info.value))


def test_images_expected_shape():
  with pytest.raises(ValueError, match=r"\[B, 28, 28, 1\].*\(4, 32, 32, 3\)"):
    validate_images(np.zeros((4, 32, 32, 3), np.uint8),
                    expected_shape=(28, 28, 1))


def test_images_under_jit_checks_shape_and_dtype_only():
  @jax.jit
  def f(x):
    validate_images(x)
    return x.sum()

  f(jnp.full((2, 4, 4, 1), 7.0))        # the range is not checked when traced
  with pytest.raises(ValueError, match="rank 4"):
    f(jnp.zeros((4, 4, 1)))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    validate_images(jnp.full((2, 4, 4, 1), 7.0))


