"""Flax Linen modules: encoders and heads."""

import functools

from ssljax.models.colorization import ColorNet, EmbeddingNet, SplitBrainNet
from ssljax.models.cpc import (GRID_CONTEXTS, PATCH_ENCODERS, SEQUENCE_CONTEXTS,
                               SEQUENCE_ENCODERS, CausalConvEncoder, GRUContext,
                               ImageCPCModel, PatchEncoder, RowCausalContext,
                               SequenceCPCModel)
from ssljax.models.heads import EncoderWithHead, ProjectionMLP
from ssljax.models.resnet import (
    BasicBlock,
    BottleneckBlock,
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
    SmallResNet,
)

#: Image encoders by ``config.encoder.name``.
ENCODERS = {
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    # SmallResNet's defaults as a partial, so that config checking sees
    # ResNet's fields.
    "small_resnet": functools.partial(ResNet, stage_sizes=(1, 1, 1),
                                      widths=(32, 64, 128), block=BasicBlock,
                                      stem="cifar"),
}


def get_encoder(name: str, **kwargs):
  """An encoder by name: resnet18 / resnet34 / resnet50 / small_resnet."""
  try:
    return ENCODERS[name](**kwargs)
  except KeyError:
    raise ValueError(f"unknown encoder {name!r}; choose one of "
                     f"{sorted(ENCODERS)}.") from None


__all__ = [
    "GRID_CONTEXTS", "PATCH_ENCODERS", "SEQUENCE_CONTEXTS", "SEQUENCE_ENCODERS",
    "CausalConvEncoder", "GRUContext", "ImageCPCModel", "PatchEncoder",
    "RowCausalContext", "SequenceCPCModel",
    "ColorNet", "EmbeddingNet", "SplitBrainNet",
    "ENCODERS", "BasicBlock", "BottleneckBlock", "EncoderWithHead", "ProjectionMLP",
    "ResNet", "ResNet18", "ResNet34", "ResNet50", "SmallResNet", "get_encoder",
]

from ssljax.models.inpainting import ContextEncoder, ConvDecoder, ConvDiscriminator
from ssljax.models.pretext import TileClassifier

__all__ += ["ContextEncoder", "ConvDecoder", "ConvDiscriminator", "TileClassifier"]
