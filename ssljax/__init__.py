"""ssljax: self-supervised learning methods in JAX/Flax, written functionally.

Sub-packages (imports point down only; tests/test_layers.py checks it)::

    ssljax.eval      linear probe, kNN, the evaluation suite (given a restored run)
    ssljax.run       restore(workdir): a finished run, for evaluation
    ssljax.train     loop, optimizers, schedules, checkpoints, logging
    ssljax.methods   one module per method (State, init, train step)
    ssljax.models    Flax Linen encoders and heads
    ssljax.augment   key-first pure image ops and view recipes
    ssljax.data      data sources, host pipelines, global arrays
    ssljax.parallel  mesh and sharding helpers
    ssljax.losses    pure jnp loss functions (no ssljax imports)
    ssljax.config    config reading (no ssljax imports)
    ssljax.cpu       opt-in CPU speed-ups (oneDNN convolutions, tcmalloc,
                     XLA:CPU flags); nothing above imports it

Importing ``ssljax`` needs only the core requirements: TFDS, scikit-learn,
matplotlib, OpenCV are optional extras, imported where they are used.
"""

__version__ = "0.1.0"
