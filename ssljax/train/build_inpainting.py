"""Build the context encoder (``config.method = "inpainting"``) from a config;
called by :func:`ssljax.train.build.build_method` with the learning-rate
schedule it made from ``config.optimizer``.

Config fields (see ``experiments/configs/inpainting_fashion_mnist.py``):
``encoder`` (as every image method), ``decoder``
(:class:`~ssljax.methods.inpainting.ConvDecoder` arguments),
``discriminator`` (:class:`~ssljax.methods.inpainting.ConvDiscriminator`
arguments), ``inpainting`` (the :class:`~ssljax.methods.inpainting.Inpainting`
hyperparameters: ``mask``, ``mask_size``, ``coverage``, ``border``,
``border_weight``, ``rec_weight``, ``adv_weight``, ...), and ``optimizer``
whose ``b1`` / ``b2`` set Adam's betas (the paper: ``name="adamw"`` with
``weight_decay=0``, i.e. Adam, ``base_lr=2e-4``, ``b1=0.5``; a constant
rate is ``schedule="step"`` with ``decay_epochs=()``). The generator and the
discriminator get the same optimizer, each with its own state.
"""

from __future__ import annotations

import dataclasses

from ssljax.methods.inpainting import (ContextEncoder, ConvDecoder,
                                       ConvDiscriminator, Inpainting)
from ssljax.train.optim import make_optimizer

#: ``Inpainting`` fields the config does not set (built here).
_BUILT = frozenset({"model", "discriminator", "tx", "disc_tx", "mean", "std",
                    "schedule"})
#: ``config.inpainting`` keys.
INPAINTING_KEYS = frozenset(f.name for f in dataclasses.fields(Inpainting)) - _BUILT


def _module_keys(cls) -> frozenset:
  """A Flax module's config keys: its fields but ``dtype`` (from
  ``config.compute_dtype``) and Flax's ``parent`` / ``name``."""
  return frozenset(f.name for f in dataclasses.fields(cls)) - {
      "dtype", "parent", "name"}


#: ``config.decoder`` / ``config.discriminator`` keys.
DECODER_KEYS = _module_keys(ConvDecoder)
DISCRIMINATOR_KEYS = _module_keys(ConvDiscriminator)


def _plain(d) -> dict:
  if d is None:
    return {}
  d = d.to_dict() if hasattr(d, "to_dict") else dict(d)
  return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def build_inpainting(config, schedule, mean, std) -> Inpainting:
  """The :class:`Inpainting` method of ``config`` (``schedule``: the lr
  schedule of ``config.optimizer``; ``mean`` / ``std``: input statistics)."""
  # pylint: disable=import-outside-toplevel
  from ssljax.train.build import build_encoder, compute_dtype
  opt = config.optimizer
  tx = make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay,
                      momentum=opt.get("momentum", 0.9),
                      trust_coefficient=opt.get("trust_coefficient", 1e-3),
                      b1=opt.get("b1", 0.5), b2=opt.get("b2", 0.999))
  dtype = compute_dtype(config)
  decoder = ConvDecoder(dtype=dtype, **_plain(config.get("decoder")))
  disc = ConvDiscriminator(dtype=dtype, **_plain(config.get("discriminator")))
  model = ContextEncoder(encoder=build_encoder(config), decoder=decoder)
  return Inpainting(model=model, discriminator=disc, tx=tx, mean=mean,
                    std=std, schedule=schedule,
                    **_plain(config.get("inpainting")))
