"""The quickstart notebook runs top to bottom (small settings) and shows what
it promises: a finite training loss, frozen-feature accuracies above those of
the same network untrained, two pictures and the loss of a user's model.

Hermetic: the notebook reads Fashion-MNIST's local IDX files only
(``SSLJAX_QUICKSTART_SOURCE=local``, never a TFDS download); without them the
test skips, naming what is missing."""

import math
import os

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import load_module
from ssljax import data
from ssljax.data import DatasetNotAvailableError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK_DIR = os.path.join(ROOT, "experiments", "notebooks")
NOTEBOOK = os.path.join(NOTEBOOK_DIR, "quickstart.ipynb")
regenerate = load_module(os.path.join(NOTEBOOK_DIR, "regenerate.py"),
                         "quickstart_regenerate")


@pytest.fixture(scope="module")
def local_fashion_mnist():
  """Skip unless the local IDX files the notebook reads are there."""
  try:
    data.load("fashion_mnist", "test[:1]", source="local")
  except DatasetNotAvailableError as e:
    pytest.skip(f"the quickstart notebook needs Fashion-MNIST's local IDX files: {e}")


@pytest.mark.usefixtures("local_fashion_mnist")
def test_quickstart_notebook_executes(monkeypatch):
  monkeypatch.setenv("SSLJAX_QUICKSTART_SMALL", "1")
  monkeypatch.setenv("SSLJAX_QUICKSTART_SOURCE", "local")
  monkeypatch.setenv("SSLJAX_ROOT", ROOT)
  monkeypatch.setenv("XLA_FLAGS", "")        # one CPU device in the kernel
  # One OpenMP thread for scikit-learn's t-SNE: on 2 cores shared with this
  # process and the other test worker, its 2-thread barriers made the picture
  # cell take ~40 s instead of ~4 s.
  monkeypatch.setenv("OMP_NUM_THREADS", "1")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": NOTEBOOK_DIR}}).execute()
  text = regenerate.stream_text(nb)
  assert "trained to step 20" in text
  assert "linear probe" in text and "NT-Xent" in text
  images = [o for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert len(images) == 2
  res = regenerate.results(nb)
  assert math.isfinite(res["final_loss"]), res
  trained, untrained = res["trained"], res["random_init"]
  for scores in (trained, untrained):
    assert all(0.0 <= scores[k] <= 1.0 for k in ("knn", "linear_probe")), res
  # Pre-training helps: the frozen encoder beats the same network untrained
  # (20 steps on CPU: by about 7 points of linear probe and 19 of kNN).
  assert trained["linear_probe"] > untrained["linear_probe"], res
  assert trained["knn"] > untrained["knn"], res
