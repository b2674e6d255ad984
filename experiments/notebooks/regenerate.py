"""Run the quickstart notebook top to bottom and save it with its outputs.

    python experiments/notebooks/regenerate.py            # the full notebook (about 11 min on 2 CPU cores)
    python experiments/notebooks/regenerate.py --small    # the test suite's small settings (about 1 min)

The committed ``quickstart.ipynb`` carries the outputs of the full run, so its
accuracies and pictures show where people browse the repository.

The notebook prints one line of results, ``results: {json}``: the last logged
training loss and the kNN and linear-probe test accuracies (fractions) of the
trained encoder and of the same network untrained; :func:`results` reads it
back from an executed notebook (tests/test_notebook.py does).
"""

import argparse
import json
import os

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "quickstart.ipynb")

#: How the notebook's results line starts.
RESULTS_PREFIX = "results: "


def stream_text(nb) -> str:
  """Everything the code cells of an executed notebook printed."""
  return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []) if o.get("output_type") == "stream")


def results(nb) -> dict:
  """The notebook's ``results:`` line, parsed.

  Returns:
    ``{"final_loss": float, "trained": {"knn": ..., "linear_probe": ...},
    "random_init": {...}}`` (accuracies as fractions).

  Raises:
    ValueError: no code cell printed exactly one results line.
  """
  lines = [line[len(RESULTS_PREFIX):] for line in stream_text(nb).splitlines()
           if line.startswith(RESULTS_PREFIX)]
  if len(lines) != 1:
    raise ValueError(f"expected one {RESULTS_PREFIX.strip()!r} line in the "
                     f"notebook's outputs, found {len(lines)}")
  return json.loads(lines[0])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--small", action="store_true",
                      help="tiny encoder, 2,000 images, 20 steps")
  parser.add_argument("--source", default="auto", choices=("auto", "local", "tfds"),
                      help="where Fashion-MNIST comes from (ssljax.data.load)")
  parser.add_argument("--out", default=NOTEBOOK, help="where to write it")
  args = parser.parse_args()
  os.environ["SSLJAX_ROOT"] = os.path.dirname(os.path.dirname(HERE))
  os.environ["SSLJAX_QUICKSTART_SMALL"] = "1" if args.small else "0"
  os.environ["SSLJAX_QUICKSTART_SOURCE"] = args.source
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(nb, timeout=3600, kernel_name="python3",
                 resources={"metadata": {"path": HERE}}).execute()
  nbformat.write(nb, args.out)
  print(json.dumps(results(nb)))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
