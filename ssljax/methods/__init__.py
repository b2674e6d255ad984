"""Self-supervised methods: one module each (State, init, train step)."""

from ssljax.methods.cpc import CPCState, ImageCPC, SequenceCPC
from ssljax.methods.ema import constant_momentum, ema_update, momentum_schedule
from ssljax.methods.moco import (MoCo, MoCoState, check_queue_divides, enqueue,
                                 shuffled_group_apply)
from ssljax.methods.simclr import SimCLR, SimCLRState
from ssljax.methods.inpainting import (ContextEncoder, ConvDecoder,
                                       ConvDiscriminator, Inpainting,
                                       InpaintingState)
from ssljax.methods.jigsaw import Jigsaw, JigsawState, permutation_set
from ssljax.methods.pretext import PretextMethod, PretextState, TileClassifier
from ssljax.methods.relpos import RelativePosition, RelativePositionState
from ssljax.methods.rotation import Rotation, RotationState
from ssljax.methods.video_colorization import (
    EmbeddingNet, VideoColorization, VideoColorizationState, attend,
    attend_blocked, attend_dense, fit_color_clusters, propagate_labels,
    video_colorization_loss)
from ssljax.methods.online_probe import OnlineProbe, OnlineProbeState
from ssljax.methods.colorization import (ColorNet, Colorization,
                                         ColorizationState, SplitBrain,
                                         SplitBrainNet, colorization_loss,
                                         empirical_prior, rebalance_weights)

__all__ = ["Jigsaw", "JigsawState", "PretextMethod", "PretextState",
           "RelativePosition", "RelativePositionState", "Rotation",
           "RotationState", "TileClassifier", "permutation_set",
           "MoCo", "MoCoState", "SimCLR", "SimCLRState", "check_queue_divides",
           "constant_momentum", "ema_update", "enqueue", "momentum_schedule",
           "shuffled_group_apply", "CPCState", "ImageCPC", "SequenceCPC",
           "ContextEncoder", "ConvDecoder", "ConvDiscriminator", "Inpainting",
           "InpaintingState", "ColorNet", "Colorization", "ColorizationState",
           "SplitBrain", "SplitBrainNet", "colorization_loss",
           "empirical_prior", "rebalance_weights", "OnlineProbe",
           "OnlineProbeState", "EmbeddingNet", "VideoColorization",
           "VideoColorizationState", "attend", "attend_blocked", "attend_dense",
           "fit_color_clusters", "propagate_labels", "video_colorization_loss"]
