"""Build the CPC methods from a config (``config.method`` = ``"cpc_sequence"``
or ``"cpc_image"``); called by :func:`ssljax.train.build.build_method`.

Config fields (see ``experiments/configs/cpc_audio.py`` and
``cpc_fashion_mnist.py``): ``encoder`` (the ``CausalConvEncoder`` or
``PatchEncoder`` arguments), ``context`` (``GRUContext`` /
``RowCausalContext`` arguments) and ``cpc`` (``num_steps``, ``negatives``,
``num_negatives``, ``pool``; images also ``patch_size``, ``patch_stride``,
``pad``, ``skip``, ``flip``).
"""

from __future__ import annotations

from ssljax.methods.cpc import ImageCPC, SequenceCPC
from ssljax.models.cpc import (CausalConvEncoder, GRUContext, ImageCPCModel,
                               PatchEncoder, RowCausalContext, SequenceCPCModel)

CPC_METHODS = ("cpc_sequence", "cpc_image")


def _plain(d) -> dict:
  d = d.to_dict() if hasattr(d, "to_dict") else dict(d)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def build_cpc(config, tx, schedule):
  """The CPC method object of ``config`` with optimizer ``tx``."""
  cpc = _plain(config.cpc)
  enc, ctx = _plain(config.encoder), _plain(config.context)
  enc.pop("name", None)
  ctx.pop("name", None)
  common = dict(tx=tx, schedule=schedule,
                negatives=cpc.get("negatives", "batch"),
                num_negatives=cpc.get("num_negatives") or None,
                pool=cpc.get("pool", "c" if config.method == "cpc_sequence" else "z"))
  if config.method == "cpc_sequence":
    model = SequenceCPCModel(encoder=CausalConvEncoder(**enc),
                             context=GRUContext(**ctx),
                             num_steps=int(cpc.get("num_steps", 12)))
    return SequenceCPC(model=model,
                       input_scale=float(cpc.get("input_scale", 1 / 32768)),
                       **common)
  if config.method == "cpc_image":
    # pylint: disable-next=import-outside-toplevel
    from ssljax.train.build import input_stats
    mean, std = input_stats(config)
    model = ImageCPCModel(encoder=PatchEncoder(**enc),
                          context=RowCausalContext(**ctx),
                          num_steps=int(cpc.get("num_steps", 3)))
    return ImageCPC(model=model, patch_size=int(cpc.get("patch_size", 8)),
                    patch_stride=int(cpc.get("patch_stride", 4)),
                    pad=int(cpc.get("pad", 2)), skip=int(cpc.get("skip", 2)),
                    flip=bool(cpc.get("flip", True)), mean=mean, std=std,
                    **common)
  raise ValueError(f"unknown CPC method {config.method!r}; available: "
                   f"{CPC_METHODS}.")
