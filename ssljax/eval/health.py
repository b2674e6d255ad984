"""Representation health: alignment, uniformity, effective rank, collapse
(:mod:`ssljax.losses.health`, where the training steps also find them)."""

from ssljax.losses.health import (alignment, collapse_report, effective_rank,
                                  uniformity)

__all__ = ["alignment", "collapse_report", "effective_rank", "uniformity"]
