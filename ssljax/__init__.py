"""ssljax: self-supervised learning methods in JAX/Flax, written functionally.

Sub-packages (imports point down only)::

    ssljax.eval      linear probe, kNN
    ssljax.train     loop, optimizers, schedules, checkpoints, logging
    ssljax.methods   one module per method (State, init, train step)
    ssljax.models    Flax Linen encoders and heads
    ssljax.augment   key-first pure image ops and view recipes
    ssljax.losses    pure jnp loss functions
    ssljax.parallel  mesh and sharding helpers
    ssljax.data      data sources, host pipelines, global arrays

Importing ``ssljax`` does not import TensorFlow; TFDS is imported lazily.
"""

__version__ = "0.1.0"
