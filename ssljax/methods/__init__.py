"""Self-supervised methods: one module each (State, init, train step)."""

from ssljax.methods.ema import constant_momentum, ema_update, momentum_schedule
from ssljax.methods.moco import (MoCo, MoCoState, check_queue_divides, enqueue,
                                 shuffled_group_apply)
from ssljax.methods.simclr import SimCLR, SimCLRState

__all__ = ["MoCo", "MoCoState", "SimCLR", "SimCLRState", "check_queue_divides",
           "constant_momentum", "ema_update", "enqueue", "momentum_schedule",
           "shuffled_group_apply"]
