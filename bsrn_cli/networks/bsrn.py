"""BSRN (Xin et al., ECCV 2020): float head, binary body of HPB/LB blocks with BAM, float tail.

The wiring that Fig. 3 of the paper would have shown is our reading; docs/architecture.md
explains every choice. Configurations differ only in :class:`BSRNConfig` fields.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bsrn_cli.networks.blocks import BinaryBlock
from bsrn_cli.networks.configs import (  # noqa: F401 (re-exported: the configuration is part of the network's face)
    IMAGE_SKIPS, LB_KERNEL_SIZES, LONG_RANGE_MODES, PRESETS, SCALES, UPSAMPLERS, BSRNConfig, preset_config)

class LBBlock(BinaryBlock):
    """One binary 3x3 conv and two binary 1x1 convs with short-range accumulation (blocks.py)."""

    def __init__(self, config: BSRNConfig, long_range_terms: int):
        super().__init__(config, config.channels, LB_KERNEL_SIZES, long_range_terms)


def _upsampler(config: BSRNConfig) -> nn.Sequential:
    c, s, out = config.channels, config.scale, config.in_channels
    if config.upsampler == "light":
        return nn.Sequential(nn.Conv2d(c, out * s * s, 3, padding=1), nn.PixelShuffle(s))
    stages: list[nn.Module] = []
    factors = [3] if s == 3 else [2] * int(math.log2(s))
    for f in factors:
        stages += [nn.Conv2d(c, c * f * f, 3, padding=1), nn.PixelShuffle(f)]
    stages.append(nn.Conv2d(c, out, 3, padding=1))
    return nn.Sequential(*stages)


class BSRN(nn.Module):
    """Input and output are RGB in [0, 1]; output is ``scale`` times larger."""

    architecture = "bsrn"

    def __init__(self, config: BSRNConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.head = nn.Conv2d(config.in_channels, c, 3, padding=1)
        self.body = nn.ModuleList(
            LBBlock(config, self._long_range_terms(i)) for i in range(config.hpb_blocks * config.lb_per_hpb))
        self.body_conv = nn.Conv2d(c, c, 3, padding=1) if config.body_conv else None
        self.upsampler = _upsampler(config)
        if config.image_skip != "none":
            # The network then starts as plain interpolation and learns the residual.
            last = self.upsampler[-1] if isinstance(self.upsampler[-1], nn.Conv2d) else self.upsampler[-2]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def _long_range_terms(self, index: int) -> int:
        if self.config.long_range == "global":
            return index
        if self.config.long_range == "hpb":
            return index % self.config.lb_per_hpb
        return 0

    @property
    def scale(self) -> int:
        return self.config.scale

    def binary_kernels(self) -> list[list[torch.Tensor]]:
        """Effective binary kernels of every LB block, with long-range accumulation."""
        result, earlier = [], []
        for i, block in enumerate(self.body):
            if self._long_range_terms(i) == 0:
                earlier = []
            result.append(block.kernels(list(earlier)))
            earlier.append(block.convs[0].weight)
        return result

    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel depends on, per side (for tile overlap)."""
        return self.config.receptive_radius()

    def forward(self, x: torch.Tensor, kernels: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        """``kernels``: effective binary kernels computed once for repeated inference calls."""
        features = self.head(x - 0.5)
        h = features
        for block, kernels in zip(self.body, kernels if kernels is not None else self.binary_kernels()):
            h = block(h, kernels)
        return self.tail(h, features, x)

    def tail(self, body: torch.Tensor, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Body conv, long skip, upsampler and image skip (the float reconstruction R)."""
        if self.body_conv is not None:
            body = self.body_conv(body)
        out = self.upsampler(body + features) + 0.5
        if self.config.image_skip != "none":
            mode = self.config.image_skip
            out = out + F.interpolate(x, scale_factor=self.scale, mode=mode,
                                      **({"align_corners": False} if mode == "bicubic" else {})) - 0.5
        return out
