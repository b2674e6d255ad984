"""The fixed validation split: the last share of a training split.

Every choice of the evaluation protocol (probe regularization, fine-tuning
recipe, pooling, layer, pre-training recipe) is made on it, and the test split
is read once per final config (``ssljax.eval.protocol``). It is the *last*
``fraction`` of the training split in its stored order, so it is the same for
every method, seed and config; pre-training never sees its images
(``validation_fraction`` of the run config, default
:data:`VALIDATION_FRACTION`), so validation accuracy stands in for test
accuracy the way it should.
"""

from __future__ import annotations

from ssljax.data.dataset import ArrayDataset

__all__ = ["OWN_VALIDATION_SPLIT", "VALIDATION_FRACTION", "holdout",
           "validation_size"]

#: Datasets held out by source file, whose ``"validation"`` split is their
#: own (whole photos and videos, never crops of a training source): their
#: ``"train"`` is used as it is (``ssljax.data.colour``).
OWN_VALIDATION_SPLIT = ("colour_crops",)

#: The share of the training split held out for validation by default
#: (Fashion-MNIST: the last 6,000 of the 60,000 training images).
VALIDATION_FRACTION = 0.1


def validation_size(n: int, fraction: float) -> int:
  """How many of ``n`` training examples ``fraction`` holds out."""
  if not 0 <= fraction < 1:
    raise ValueError(f"validation fraction must be in [0, 1); got {fraction}.")
  return int(round(n * fraction))


def holdout(ds: ArrayDataset, fraction: float = VALIDATION_FRACTION
            ) -> tuple[ArrayDataset, ArrayDataset]:
  """``(train, validation)``: ``ds`` without and with its last ``fraction``
  of examples (named ``name[:k]`` / ``name[k:]``)."""
  n = len(ds)
  n_val = validation_size(n, fraction)
  if n_val == 0 or n_val == n:
    raise ValueError(
        f"a validation fraction of {fraction} of {n} examples leaves "
        f"{'no validation' if n_val == 0 else 'no training'} examples; use a "
        "larger dataset or set validation_fraction=0 to train on all of it.")
  k = n - n_val
  part = lambda sl, tag: ArrayDataset(ds.images[sl], ds.labels[sl],
                                      ds.num_classes, f"{ds.name}{tag}")
  return part(slice(None, k), f"[:{k}]"), part(slice(k, None), f"[{k}:]")
