"""Pure contrastive losses (jnp only: no Flax, no state)."""

from ssljax.losses.contrastive import (
    cosine_similarity_matrix,
    info_nce,
    l2_normalize,
    mutual_information_lower_bound,
    nt_xent,
)

__all__ = [
    "cosine_similarity_matrix",
    "info_nce",
    "l2_normalize",
    "mutual_information_lower_bound",
    "nt_xent",
]
