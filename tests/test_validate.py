"""Config and input validation (ssljax.train.validate)."""

import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from helpers import load_module, tiny_config

from ssljax.train import validate as V
from ssljax.train.validate import (ConfigError, config_problems,
                                   validate_config, validate_images)

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments",
                          "configs")
# Configs of experiments/pretrain.py's methods; video_colorization.py is read
# by experiments/video_colorization.py (tests/test_video_colorization.py).
CONFIG_FILES = sorted(f for f in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
                      if os.path.basename(f) != "video_colorization.py")


def load(name: str) -> ml_collections.ConfigDict:
  return load_module(os.path.join(CONFIG_DIR, name + ".py"), name).get_config()


def errors(config, **kw) -> ConfigError:
  kw.setdefault("device_count", 8)
  kw.setdefault("check_tfds", False)
  with pytest.raises(ConfigError) as info:
    validate_config(config, **kw)
  return info.value


def assert_one(config, key, *fragments, **kw):
  """Exactly one problem, at ``key``; the message names the key, the value
  and every fragment."""
  err = errors(config, **kw)
  assert err.keys == (key,), str(err)
  text = str(err)
  assert key in text
  for f in fragments:
    assert f in text, (f, text)
  return err


def test_config_files_found():
  names = {os.path.basename(f)[:-3] for f in CONFIG_FILES}
  for method in ("simclr", "moco", "rotation", "jigsaw", "relpos", "cpc"):
    assert any(n.startswith(method) for n in names), method


@pytest.mark.parametrize("path", CONFIG_FILES,
                         ids=[os.path.basename(f) for f in CONFIG_FILES])
def test_shipped_configs_pass(path):
  config = load(os.path.basename(path)[:-3])
  # Default device count (jax.device_count(): 8 fake CPU devices here) and
  # the TFDS registry check (the shipped datasets are built in: no import).
  assert jax.device_count() == 8
  assert config_problems(config) == []
  validate_config(config)


def test_config_error_is_value_error_and_lists_problems():
  assert issubclass(ConfigError, ValueError)
  c = load("simclr_fashion_mnist")
  c.temperature = 0.0
  c.batch_size = -4
  c.optimizer.weight_decay = -1.0
  c.tempreature = 0.5
  err = errors(c)
  assert set(err.keys) == {"temperature", "batch_size",
                           "optimizer.weight_decay", "tempreature"}
  text = str(err)
  assert text.startswith("4 problems in the config:")
  assert "temperature = 0.0" in text and "> 0" in text
  assert "batch_size = -4" in text and ">= 1" in text
  assert "optimizer.weight_decay = -1.0" in text
  assert "did you mean 'temperature'" in text
  assert len(text.splitlines()) == 5


# ---------------------------------------------------------------------------
# Unknown keys.


def test_typo_top_level_suggests_key():
  c = load("simclr_fashion_mnist")
  c.tempreature = 0.5
  err = assert_one(c, "tempreature", "0.5", "did you mean 'temperature'",
                   "--config.temperature")
  assert "unknown key" in str(err)


def test_typo_nested_suggests_key():
  c = load("moco_v2_fashion_mnist")
  c.optimizer.weight_decy = 1e-4
  assert_one(c, "optimizer.weight_decy", "0.0001",
             "did you mean 'optimizer.weight_decay'")
  c = load("moco_v2_fashion_mnist")
  c.moco.queue_sise = 8192
  assert_one(c, "moco.queue_sise", "8192", "did you mean 'moco.queue_size'")
  c = load("simclr_fashion_mnist")
  c.augment.grayscale_prob = 0.2
  assert_one(c, "augment.grayscale_prob", "did you mean 'augment.grayscale_p'")
  c = load("simclr_fashion_mnist")
  c.encoder.width = (8, 16, 32)
  assert_one(c, "encoder.width", "did you mean 'encoder.widths'")


def test_key_of_another_method_warns_or_errs_when_strict():
  c = load("rotation_fashion_mnist")
  c.temperature = 0.1
  assert_one(c, "temperature", "not used by method 'rotation'", "simclr",
             "moco", strict=True)
  with pytest.warns(V.ConfigWarning, match="temperature = 0.1: not used by "
                    "method 'rotation'"):
    validate_config(c, device_count=8)
  [p] = config_problems(c, device_count=8)
  assert p.unused and p.key == "temperature"
  c = load("cpc_fashion_mnist")
  c.compute_dtype = "bfloat16"
  assert_one(c, "compute_dtype", "not used by method 'cpc_image'", strict=True)


def test_unused_keys_do_not_hide_errors():
  c = load("rotation_fashion_mnist")
  c.temperature = 0.1
  c.batch_size = 0
  with pytest.warns(V.ConfigWarning):
    err = errors(c)
  assert err.keys == ("batch_size",)


def test_unread_key_without_suggestion():
  c = load("simclr_fashion_mnist")
  c.zzzz = 1
  assert_one(c, "zzzz", "unknown key", "remove it")


def test_pretext_head_out_dim_is_ignored():
  c = load("jigsaw_fashion_mnist")
  c.head.out_dim = 10
  assert_one(c, "head.out_dim", "number of classes", strict=True)


def test_documented_optional_keys_pass():
  c = load("simclr_fashion_mnist")
  c.compute_dtype = "bfloat16"
  c.input_mean = (0.5,)
  c.input_std = (0.25,)
  c.nonfinite = "skip"
  c.loss_block_size = 128
  c.monitor = ml_collections.ConfigDict(dict(
      every=50, num_train=1000, num_test=200, k=20, t=0.1, batch_size=500))
  c.optimizer.schedule = "cosine"
  assert config_problems(c, device_count=8) == []


# ---------------------------------------------------------------------------
# Impossible values.


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_temperature(value):
  c = load("simclr_fashion_mnist")
  c.temperature = value
  assert_one(c, "temperature", repr(value), "> 0")


@pytest.mark.parametrize("key,value,fragment", [
    ("area_range", (0.0, 1.0), "0.0 < min <= max <= 1.0"),
    ("area_range", (0.2, 1.5), "<= max <= 1.0"),
    ("area_range", (0.9, 0.5), "min 0.9 > max 0.5"),
    ("aspect_range", (-1.0, 2.0), "0.0 < min"),
    ("aspect_range", (2.0, 0.5), "swap"),
    ("jitter_p", 1.5, "[0.0, 1.0]"),
    ("grayscale_p", -0.1, "probability"),
    ("blur_p", 2, "probability"),
])
def test_augment_values(key, value, fragment):
  c = load("simclr_fashion_mnist")
  c.augment[key] = value
  assert_one(c, f"augment.{key}", repr(value), fragment)


@pytest.mark.parametrize("value", [0, -8])
def test_batch_size_positive(value):
  c = load("simclr_fashion_mnist")
  c.batch_size = value
  assert_one(c, "batch_size", f"batch_size = {value}", ">= 1")


def test_batch_size_divides_devices():
  c = load("simclr_fashion_mnist")
  c.batch_size = 100
  assert_one(c, "batch_size", "100", "8 devices", "--config.batch_size=96",
             "--config.batch_size=104")
  # The default device count is jax.device_count() (8 here).
  c.batch_size = 12
  err = errors(c, device_count=None)
  assert err.keys == ("batch_size",) and "8 devices" in str(err)
  assert config_problems(c, device_count=4) == []


def test_epochs_and_steps():
  c = load("simclr_fashion_mnist")     # num_steps = 0
  c.num_epochs = 0.0
  assert_one(c, "num_epochs", "0.0", "num_steps")
  c.num_epochs = -1.0
  assert_one(c, "num_epochs", "-1.0")
  c.num_steps = 100                    # num_steps > 0 overrides num_epochs
  assert config_problems(c, device_count=8) == []
  c = load("simclr_fashion_mnist")
  c.num_steps = -3
  assert_one(c, "num_steps", "-3", ">= 0")


@pytest.mark.parametrize("key,value", [("base_lr", -0.1),
                                       ("weight_decay", -1e-4)])
def test_negative_lr_and_weight_decay(key, value):
  c = load("simclr_fashion_mnist")
  c.optimizer[key] = value
  assert_one(c, f"optimizer.{key}", repr(value), "negative")


def test_unknown_names_suggest_valid_ones():
  c = load("simclr_fashion_mnist")
  c.method = "simclar"
  err = errors(c)
  assert "method" in err.keys and "did you mean 'simclr'" in str(err)

  c = load("simclr_fashion_mnist")
  c.optimizer.name = "adamm"
  assert_one(c, "optimizer.name", "'adamm'", "did you mean 'adamw'", "'lars'")

  c = load("moco_cifar10")
  c.optimizer.schedule = "cosin"
  assert_one(c, "optimizer.schedule", "'cosin'", "did you mean 'cosine'")

  c = load("simclr_fashion_mnist")
  c.encoder.name = "resnet19"
  assert_one(c, "encoder.name", "'resnet19'", "did you mean 'resnet18'",
             "'small_resnet'")

  c = load("cpc_fashion_mnist")
  c.cpc.negatives = "batches"
  assert_one(c, "cpc.negatives", "did you mean 'batch'")


def test_name_lists_come_from_the_code():
  import ssljax.models
  from ssljax.train.optim import make_optimizer
  assert set(V._image_encoders()) == {"resnet18", "resnet34", "resnet50",
                                      "small_resnet"}
  for name in V.OPTIMIZERS:
    make_optimizer(name, 0.1)
  with pytest.raises(ValueError):
    make_optimizer("adamm", 0.1)
  with pytest.raises(ValueError):
    ssljax.models.get_encoder("resnet19")
  # The augment keys are simclr_view's keyword arguments.
  assert {"area_range", "aspect_range", "jitter_p", "blur_sigma"} <= \
      V.allowed_keys("simclr")["augment"]


def test_unknown_dataset():
  c = load("simclr_fashion_mnist")
  c.dataset = "fashon_mnist"
  # Not built in, so TFDS's registry is asked (imports tensorflow_datasets,
  # not TensorFlow).
  assert_one(c, "dataset", "'fashon_mnist'", "did you mean 'fashion_mnist'",
             check_tfds=True)
  c.dataset = "cifar10"
  c.data_source = "local"
  assert_one(c, "dataset", "'cifar10'", "no local source")
  c = load("simclr_fashion_mnist")
  c.dataset = "spoken_words"
  assert_one(c, "dataset", "audio")
  # check_tfds=False trusts names that are not built in.
  c.dataset = "svhn_cropped"
  assert config_problems(c, device_count=8, check_tfds=False) == []


def test_moco_queue_divides_batch():
  c = load("moco_v2_fashion_mnist")    # K = 4096
  c.batch_size = 384
  assert_one(c, "moco.queue_size", "4096", "384", "--config.moco.queue_size")


def test_moco_bn_splits_on_one_device():
  c = load("moco_v2_fashion_mnist")    # bn_splits = 8, batch 256
  c.moco.bn_splits = 7
  assert config_problems(c, device_count=8) == []   # Shuffle BN over devices
  assert_one(c, "moco.bn_splits", "7", "divide the batch size 256",
             device_count=1)


def test_step_schedule():
  c = load("moco_v1_imagenet")
  c.optimizer.warmup_epochs = 5.0
  assert_one(c, "optimizer.warmup_epochs", "5.0", "no warm-up")
  c = load("moco_v1_imagenet")
  del c.optimizer["decay_epochs"]
  assert_one(c, "optimizer.decay_epochs", "missing", "(120, 160)")


def test_misc_values():
  c = load("simclr_fashion_mnist")
  c.nonfinite = "ignore"
  assert_one(c, "nonfinite", "'ignore'", "'stop'", "'skip'")
  c = load("simclr_fashion_mnist")
  c.compute_dtype = "float8"
  assert_one(c, "compute_dtype", "'float8'", "'bfloat16'")
  c = load("simclr_fashion_mnist")
  c.input_mean = (0.5,)
  assert_one(c, "input_std", "missing", "both")
  c = load("simclr_fashion_mnist")
  c.log_every = 0
  assert_one(c, "log_every", "0", ">= 1")
  c = load("moco_v2_fashion_mnist")
  c.monitor.k = 6000
  assert_one(c, "monitor.k", "6000", "num_train=5000")


def test_pretext_geometry():
  c = load("jigsaw_fashion_mnist")
  c.jigsaw.tile = 12                   # cell 10
  assert_one(c, "jigsaw.tile", "12", "cell (10)")
  c = load("jigsaw_fashion_mnist")
  c.jigsaw.size = 28                   # 3 x 10 > 28
  assert_one(c, "jigsaw.cell", "10", "28x28")
  c = load("jigsaw_fashion_mnist")
  c.jigsaw.num_permutations = 400000
  assert_one(c, "jigsaw.num_permutations", "400000", "9! = 362880")
  c = load("relpos_fashion_mnist")
  c.relpos.size = None                 # the 28x28 images themselves
  assert_one(c, "relpos.cell", "28x28")


def test_cpc_values():
  c = load("cpc_fashion_mnist")        # 7 rows; skip 2 + 3 steps
  c.cpc.num_steps = 5
  assert_one(c, "cpc.num_steps", "5", "7 rows")
  c = load("cpc_fashion_mnist")
  c.cpc.patch_stride = 5
  assert_one(c, "cpc.patch_stride", "5", "not tiled")
  c = load("cpc_fashion_mnist")
  c.cpc.pool = "c_last"
  assert_one(c, "cpc.pool", "'c_last'")
  c = load("cpc_audio")
  c.cpc.num_negatives = 0              # negatives = "sampled"
  assert_one(c, "cpc.num_negatives", "0", "sampled")
  c = load("cpc_audio")
  c.encoder.name = "patch_encoder"
  assert_one(c, "encoder.name", "'patch_encoder'", "'causal_conv'")


def test_missing_required_keys():
  c = load("simclr_fashion_mnist")
  del c["temperature"]
  del c.optimizer["base_lr"]
  err = errors(c)
  assert set(err.keys) == {"temperature", "optimizer.base_lr"}
  assert "(missing)" in str(err)


def test_test_helper_config_with_its_own_dataset():
  """pretrain(config, dataset=ds) checks the config without config.dataset
  (the helpers' "tiny" is no dataset name)."""
  c = tiny_config()
  assert config_problems(c, device_count=8, check_dataset=False) == []
  err = errors(c, check_tfds=True)
  assert err.keys == ("dataset",) and "'tiny'" in str(err)


def test_plain_dict_config():
  c = load("rotation_fashion_mnist").to_dict()
  assert config_problems(c, device_count=8) == []
  c["optimizer"]["base_lr"] = -1
  assert [p.key for p in config_problems(c, device_count=8)] == [
      "optimizer.base_lr"]


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


def test_linear_probe_solver_keys():
  c = load("simclr_fashion_mnist")
  c.eval.linear_solver = "lbfgs"
  c.eval.linear_l2 = None
  validate_config(c, device_count=8, check_tfds=False)
  c.eval.linear_solver = "newton"
  assert_one(c, "eval.linear_solver", "newton", "lbfgs")
