"""Pure contrastive losses (jnp only: no Flax, no state)."""

from ssljax.losses.contrastive import (
    cosine_similarity_matrix,
    info_nce,
    l2_normalize,
    mutual_information_lower_bound,
    nt_xent,
)
from ssljax.losses.cpc import cpc_infonce, cpc_infonce_per_step, cpc_num_candidates

__all__ = [
    "cpc_infonce",
    "cpc_infonce_per_step",
    "cpc_num_candidates",
    "cosine_similarity_matrix",
    "info_nce",
    "l2_normalize",
    "mutual_information_lower_bound",
    "nt_xent",
]
