"""Build any backbone with any binarization method from names: what `bsrn train` configs say."""

from __future__ import annotations

from torch import nn

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks.backbones import VDSR, SRResNet, SRResNetConfig, VDSRConfig
from bsrn_cli.networks.bsrn import BSRN, PRESETS, preset_config
from bsrn_cli.networks.methods import method_fields

BACKBONES = ("bsrn", "vdsr", "srresnet")


def build(backbone: str, scale: int, method: str | None = None, preset: str | None = None,
          **overrides) -> nn.Module:
    """A fresh model. ``method`` (e.g. ``bnn``, ``bam-w1``) sets the binarization fields; ``preset``
    is BSRN's (``fast``, ``paper``); ``overrides`` set any configuration field last."""
    fields = {**(method_fields(method) if method else {}), **overrides}
    if backbone == "bsrn":
        return BSRN(preset_config(preset or "fast", scale, **fields))
    if preset not in (None, ""):
        raise BsrnError(f"preset {preset!r} is BSRN's; the {backbone} backbone has none (known: {', '.join(PRESETS)})")
    try:
        if backbone == "vdsr":
            return VDSR(VDSRConfig(scale=scale, **fields))
        if backbone == "srresnet":
            return SRResNet(SRResNetConfig(scale=scale, **fields))
    except TypeError as exc:
        raise BsrnError(f"{backbone}: {exc}") from exc
    raise BsrnError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
