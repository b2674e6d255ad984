"""Online kNN monitor: weighted kNN accuracy of the frozen encoder on a small
labelled subset, every few pre-training steps.

The MoCo CIFAR-10 recipe's monitor (k = 200, t = 0.1; InstDisc's weighted
kNN): the memory bank is ``num_train`` labelled training images, the queries
``num_test`` held-out (test-split) images; features come from
``method.encode`` (BatchNorm in inference mode). Turned on by ``config.monitor``
for any method::

    c.monitor = ml_collections.ConfigDict(dict(
        every=100, num_train=5000, num_test=1000, k=200, t=0.1, batch_size=1000))

``ssljax.train.loop.pretrain`` calls it and logs ``knn_acc`` (a fraction)
through its ``MetricWriter`` (TensorBoard and ``metrics.jsonl``).
"""

from __future__ import annotations

import jax
import numpy as np

from ssljax.eval.features import extract_features
from ssljax.eval.knn import knn_accuracy


class KNNMonitor:
  """Callable ``monitor(method, state) -> {"knn_acc": float}``.

  Attributes:
    every: evaluate every this many steps (the loop also evaluates at the
      final step).
  """

  def __init__(self, bank_images, bank_labels, test_images, test_labels, *,
               num_classes: int, every: int, k: int = 200, t: float = 0.1,
               batch_size: int = 1000, mesh=None):
    if every < 1:
      raise ValueError(f"monitor.every must be >= 1; got {every}.")
    if len(bank_images) == 0 or len(test_images) == 0:
      raise ValueError("the kNN monitor needs a non-empty bank and test set; got "
                       f"{len(bank_images)} and {len(test_images)} images.")
    self.bank_images = np.asarray(bank_images)
    self.bank_labels = np.asarray(bank_labels)
    self.test_images = np.asarray(test_images)
    self.test_labels = np.asarray(test_labels)
    self.num_classes = int(num_classes)
    self.every = int(every)
    self.k, self.t = int(k), float(t)
    self.batch_size = int(batch_size)
    self.mesh = mesh
    self._encode = None
    self._method = None

  @classmethod
  def from_config(cls, config, train, test=None, *, mesh=None) -> "KNNMonitor":
    """The monitor of ``config.monitor`` on ``ArrayDataset``s.

    Bank: ``num_train`` images of ``train``; queries: ``num_test`` images of
    ``test``, or, when ``test`` is None, ``num_test`` other images of
    ``train`` (disjoint from the bank). Subsets are drawn with
    ``default_rng(config.seed)``.
    """
    mon = config.monitor
    rng = np.random.default_rng(int(config.get("seed", 0)))
    num_train = min(int(mon.get("num_train", 5000)), len(train))
    order = rng.permutation(len(train))
    bank = order[:num_train]
    if test is None:
      rest = order[num_train:]
      if len(rest) == 0:
        raise ValueError(f"monitor.num_train={num_train} uses the whole dataset "
                         f"({len(train)} images): no images left to query.")
      queries = rest[:int(mon.get("num_test", 1000))]
      test_images, test_labels = train.images[queries], train.labels[queries]
    else:
      sel = rng.permutation(len(test))[:min(int(mon.get("num_test", 1000)),
                                            len(test))]
      test_images, test_labels = test.images[sel], test.labels[sel]
    return cls(train.images[bank], train.labels[bank], test_images, test_labels,
               num_classes=train.num_classes, every=int(mon.every),
               k=int(mon.get("k", 200)), t=float(mon.get("t", 0.1)),
               batch_size=int(mon.get("batch_size", 1000)), mesh=mesh)

  def due(self, step: int, last_step: int) -> bool:
    return step % self.every == 0 or step == last_step

  def __call__(self, method, state) -> dict[str, float]:
    if self._method is not method:    # one jitted encoder per method
      self._method = method
      self._encode = jax.jit(lambda variables, x: method.encode(variables, x))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    feats = [extract_features(self._encode, variables, x, mesh=self.mesh,
                              batch_size=self.batch_size, progress=False)
             for x in (self.bank_images, self.test_images)]
    acc = knn_accuracy(feats[0], self.bank_labels, feats[1], self.test_labels,
                       num_classes=self.num_classes, k=self.k, t=self.t)
    return {"knn_acc": acc}
