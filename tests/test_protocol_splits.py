"""The fixed validation split (ssljax.data.splits) and how runs use it: the
last 10% of the training split, never trained on, the same for every config."""

import numpy as np
import pytest
from helpers import tiny_config

from ssljax import data
from ssljax.config import ConfigError
from ssljax.train.build import RunConfig
from ssljax.train.start import load_dataset


def _ds(n=50):
  images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, 1)
  return data.ArrayDataset(images, (np.arange(n) % 3).astype(np.int32), 3, "toy")


def test_holdout_is_the_last_tenth_in_stored_order():
  ds = _ds(50)
  train, val = data.holdout(ds)
  assert len(train) == 45 and len(val) == 5
  np.testing.assert_array_equal(val.images[:, 0, 0, 0], [45, 46, 47, 48, 49])
  np.testing.assert_array_equal(np.concatenate([train.labels, val.labels]),
                                ds.labels)
  assert (train.name, val.name) == ("toy[:45]", "toy[45:]")
  with pytest.raises(ValueError, match="no validation"):
    data.holdout(_ds(4), 0.1)


def test_load_dataset_partitions_the_training_split():
  config = tiny_config(dataset="digits")
  full = load_dataset(config, "train_all")
  train, val = load_dataset(config, "train"), load_dataset(config, "validation")
  assert len(val) == round(0.1 * len(full)) and len(train) + len(val) == len(full)
  np.testing.assert_array_equal(np.concatenate([train.images, val.images]),
                                full.images)
  # no validation image is a training image (digits has a few duplicates in
  # its training split, so compare positions, not pixels)
  assert val.name.endswith(f"[{len(train)}:]")
  config.validation_fraction = 0.0
  assert len(load_dataset(config, "train")) == len(full)
  with pytest.raises(ValueError, match="holds out no validation"):
    load_dataset(config, "validation")


def test_validation_fraction_is_checked():
  from ssljax.train.validate import validate_config
  with pytest.raises(ConfigError, match="validation_fraction.*must be in"):
    validate_config(tiny_config(validation_fraction=0.7), check_shapes=False)
  assert RunConfig.from_config(tiny_config()).validation_fraction == 0.1


def test_restored_run_has_the_validation_split(tmp_path):
  from ssljax.run import restore
  from ssljax.train.loop import pretrain
  config = tiny_config(dataset="digits", num_steps=2, batch_size=32)
  pretrain(config, str(tmp_path), progress=False)
  with restore(str(tmp_path)) as run:
    full = load_dataset(config, "train_all")
    assert len(run.train) + len(run.validation) == len(full)
    np.testing.assert_array_equal(run.validation.labels,
                                  full.labels[len(run.train):])
