"""Flax Linen modules: encoders and heads."""

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

_ENCODERS = {
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    "small_resnet": SmallResNet,
}


def get_encoder(name: str, **kwargs):
  """An encoder by name: resnet18 / resnet34 / resnet50 / small_resnet."""
  try:
    return _ENCODERS[name](**kwargs)
  except KeyError:
    raise ValueError(f"unknown encoder {name!r}; choose one of "
                     f"{sorted(_ENCODERS)}.") from None


__all__ = [
    "BasicBlock", "BottleneckBlock", "EncoderWithHead", "ProjectionMLP",
    "ResNet", "ResNet18", "ResNet34", "ResNet50", "SmallResNet", "get_encoder",
]
