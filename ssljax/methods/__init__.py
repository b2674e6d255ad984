"""Self-supervised methods: one module each, on the contract of
:mod:`ssljax.methods.base` (``from_config``, ``init``, ``train_step``,
``encode``), registered by name (:data:`METHODS`, :func:`get_method`).

Importing this package registers the methods imported below; any other
method whose module is named after it (``ssljax.methods.byol``,
``simsiam``, ``barlow_twins``, ``vicreg``, ``dino``) registers when
:func:`get_method` first asks for it, so adding a method touches no file but
its own module and config.
"""

from ssljax.methods.base import (METHODS, DataSpec, Method, TrainState,
                                 apply_gradients, build_encoder, build_head,
                                 encoder_variables, frozen_features,
                                 get_method, loss_step, register, step_key,
                                 train_state)

from ssljax.methods.cpc import ImageCPC, SequenceCPC
from ssljax.methods.ema import constant_momentum, ema_update, momentum_schedule
from ssljax.methods.moco import (MoCo, MoCoState, check_queue_divides, enqueue,
                                 shuffled_group_apply)
from ssljax.methods.simclr import SimCLR
from ssljax.methods.inpainting import Inpainting, InpaintingState
from ssljax.methods.jigsaw import Jigsaw, permutation_set
from ssljax.methods.pretext import PretextMethod, TilePretextMethod
from ssljax.methods.relpos import RelativePosition
from ssljax.methods.rotation import Rotation
from ssljax.methods.video_colorization import (
    VideoColorization, attend, attend_blocked, attend_dense,
    fit_color_clusters, propagate_labels)
from ssljax.methods.online_probe import OnlineProbe, OnlineProbeState
from ssljax.methods.colorization import (Colorization, SplitBrain,
                                         empirical_prior)

__all__ = ["METHODS", "DataSpec", "Method", "TrainState", "apply_gradients",
           "build_encoder", "build_head", "encoder_variables",
           "frozen_features", "get_method", "loss_step", "register", "step_key",
           "train_state",
           "Jigsaw", "PretextMethod", "RelativePosition",
           "Rotation", "TilePretextMethod", "permutation_set",
           "MoCo", "MoCoState", "SimCLR", "check_queue_divides",
           "constant_momentum", "ema_update", "enqueue", "momentum_schedule",
           "shuffled_group_apply", "ImageCPC", "SequenceCPC",
           "Inpainting", "InpaintingState", "Colorization", "SplitBrain", "empirical_prior",
           "OnlineProbe", "OnlineProbeState", "VideoColorization", "attend",
           "attend_blocked", "attend_dense", "fit_color_clusters",
           "propagate_labels"]
