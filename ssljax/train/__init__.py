"""Training: optimizers, schedules, checkpoints, logging and the loop."""

from ssljax.train.optim import (
    make_optimizer,
    scale_learning_rate,
    warmup_cosine_schedule,
    weight_decay_mask,
)

__all__ = [
    "make_optimizer",
    "scale_learning_rate",
    "warmup_cosine_schedule",
    "weight_decay_mask",
]
