"""Pure contrastive losses (jnp only: no Flax, no state)."""

from ssljax.losses.colorization import (
    PROB_FLOOR,
    bin_accuracy,
    colorization_loss,
    rebalance_weights,
    smooth_prior,
    video_colorization_loss,
)
from ssljax.losses.contrastive import (
    cosine_similarity_matrix,
    info_nce,
    l2_normalize,
    mutual_information_lower_bound,
    nt_xent,
)
from ssljax.losses.cpc import cpc_infonce, cpc_infonce_per_step, cpc_num_candidates

__all__ = [
    "PROB_FLOOR",
    "bin_accuracy",
    "colorization_loss",
    "rebalance_weights",
    "smooth_prior",
    "video_colorization_loss",
    "cpc_infonce",
    "cpc_infonce_per_step",
    "cpc_num_candidates",
    "cosine_similarity_matrix",
    "info_nce",
    "l2_normalize",
    "mutual_information_lower_bound",
    "nt_xent",
]

from ssljax.losses.classification import classification_metrics
from ssljax.losses.inpainting import (border_weights, discriminator_loss,
                                      generator_adversarial_loss,
                                      reconstruction_loss)

__all__ += ["border_weights", "classification_metrics", "discriminator_loss",
            "generator_adversarial_loss", "reconstruction_loss"]

from ssljax.losses.noncontrastive import (BARLOW_TWINS_EPS,
                                          barlow_twins_cross_correlation,
                                          barlow_twins_loss, byol_loss,
                                          byol_symmetric_loss,
                                          dino_center_update, dino_loss,
                                          dino_teacher_temperature,
                                          simsiam_loss, vicreg_loss)

__all__ += ["BARLOW_TWINS_EPS", "barlow_twins_cross_correlation",
            "barlow_twins_loss", "byol_loss", "byol_symmetric_loss",
            "dino_center_update", "dino_loss", "dino_teacher_temperature",
            "simsiam_loss", "vicreg_loss"]
