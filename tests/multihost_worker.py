"""One process of a multi-process CPU run (launched by tests/test_multihost.py).

    SSLJAX_COORDINATOR=localhost:PORT SSLJAX_NUM_PROCESSES=2 SSLJAX_PROCESS_ID=i \
    JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    PYTHONPATH=tests python tests/multihost_worker.py WORKDIR OUTDIR STEPS

Joins the job with ``maybe_initialize_distributed()`` (gloo collectives),
pre-trains the tiny SimCLR config (tests/helpers.py) on the tiny synthetic
dataset for STEPS steps into the shared WORKDIR, and writes
``OUTDIR/proc<i>.npz``: this process's copy of the final parameters and what
it saw of the job (process index/count, local/global device counts, whether
its rows of the global batch are the contiguous block the data pipeline
assumes).
"""

import os
import sys

# tests/helpers.py comes through PYTHONPATH (tests/test_multihost.py sets it).
# pylint: disable=wrong-import-position
from ssljax.parallel.distributed import maybe_initialize_distributed

INFO = maybe_initialize_distributed(initialization_timeout=120)

import jax
import numpy as np

from helpers import tiny_config, tiny_dataset
from ssljax.parallel import make_data_mesh, process_rows_are_contiguous
from ssljax.train.loop import pretrain


def multihost_config(steps):
  """Shared with the test's one-process reference run."""
  return tiny_config(num_steps=steps, log_every=1, checkpoint_every=2,
                     keep_checkpoints=10)


def main(workdir, outdir, steps):
  cfg = multihost_config(steps)
  mesh = make_data_mesh()
  _, state = pretrain(cfg, workdir, dataset=tiny_dataset(n=64), progress=False,
                      handle_signals=False)
  params = {jax.tree_util.keystr(path): np.asarray(leaf.addressable_data(0))
            for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)}
  replicated = all(leaf.sharding.is_fully_replicated
                   for leaf in jax.tree.leaves(state.params))
  info = dict(
      how=INFO.how, process_index=jax.process_index(),
      process_count=jax.process_count(),
      local_devices=jax.local_device_count(), devices=jax.device_count(),
      step=int(state.step), params_replicated=replicated,
      rows_contiguous=process_rows_are_contiguous(mesh, cfg.batch_size))
  np.savez(os.path.join(outdir, f"proc{jax.process_index()}.npz"),
           **{f"param:{k}": v for k, v in params.items()},
           **{f"info:{k}": np.asarray(v) for k, v in info.items()})
  print(f"worker {jax.process_index()}: {info}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
