"""Self-supervised methods: one module each (State, init, train step)."""

from ssljax.methods.simclr import SimCLR, SimCLRState

__all__ = ["SimCLR", "SimCLRState"]
