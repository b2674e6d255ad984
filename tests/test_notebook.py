"""The quickstart notebook runs top to bottom (small settings) and shows what
it promises: the accuracies, two pictures and the loss of a user's model."""

import os

import nbformat
from nbclient import NotebookClient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK = os.path.join(ROOT, "experiments", "notebooks", "quickstart.ipynb")


def test_quickstart_notebook_executes(monkeypatch):
  monkeypatch.setenv("SSLJAX_QUICKSTART_SMALL", "1")
  monkeypatch.setenv("SSLJAX_ROOT", ROOT)
  monkeypatch.setenv("XLA_FLAGS", "")        # one CPU device in the kernel
  # One OpenMP thread for scikit-learn's t-SNE: on 2 cores shared with this
  # process and the other test worker, its 2-thread barriers made the picture
  # cell take ~40 s instead of ~4 s.
  monkeypatch.setenv("OMP_NUM_THREADS", "1")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}
                 ).execute()
  text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
  assert "trained to step 20" in text
  assert "linear probe" in text and "NT-Xent" in text
  images = [o for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert len(images) == 2
