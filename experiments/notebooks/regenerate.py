"""Run the quickstart notebook top to bottom and save it with its outputs.

    python experiments/notebooks/regenerate.py            # the full notebook (about 10 min on 2 CPU cores)
    python experiments/notebooks/regenerate.py --small    # the test suite's small settings (about 1 min)

The committed ``quickstart.ipynb`` carries the outputs of the full run, so its
accuracies and pictures show where people browse the repository.
"""

import argparse
import os

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "quickstart.ipynb")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--small", action="store_true",
                      help="tiny encoder, 2,000 images, 20 steps")
  parser.add_argument("--out", default=NOTEBOOK, help="where to write it")
  args = parser.parse_args()
  os.environ["SSLJAX_ROOT"] = os.path.dirname(os.path.dirname(HERE))
  os.environ["SSLJAX_QUICKSTART_SMALL"] = "1" if args.small else "0"
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(nb, timeout=3600, kernel_name="python3",
                 resources={"metadata": {"path": HERE}}).execute()
  nbformat.write(nb, args.out)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
