"""VDSR and SRResNet backbones with binary bodies, for the paper's method comparisons.

Both take every binarization method (methods.py) through the same :class:`BinaryBlock` as
BSRN, so a table row differs from another only in its configuration. Inputs and outputs are
RGB in [0, 1]; the first and last convs stay float, as in every binary SR paper.

- VDSR (Kim et al. 2016): 20 convs of 64 channels on the bicubic-upscaled image, predicting the
  residual. The middle 18 are binary, grouped into 6 blocks of 3 (the unit BAM accumulates over).
- SRResNet (Ledig et al. 2017): 9x9 head, 16 residual blocks of two binary 3x3 convs (BAM per
  block), a float 3x3 conv and the long skip, pixel-shuffle upsampling, 9x9 tail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks.blocks import BinaryBlock
from bsrn_cli.networks.configs import SRResNetConfig, VDSRConfig  # noqa: F401 (re-exported)


class _Backbone(nn.Module):
    """What upscalers and the trainer use: scale, binary_kernels(), forward(x, kernels), receptive_radius()."""

    architecture = ""
    body: nn.ModuleList

    @property
    def scale(self) -> int:
        return self.config.scale

    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel depends on, per side (for tile overlap)."""
        return self.config.receptive_radius()

    def binary_kernels(self) -> list[list[torch.Tensor]]:
        return [block.kernels() for block in self.body]

    def run_body(self, h: torch.Tensor, kernels: list[list[torch.Tensor]] | None) -> torch.Tensor:
        for block, block_kernels in zip(self.body, kernels if kernels is not None else self.binary_kernels()):
            h = block(h, block_kernels)
        return h


class VDSR(_Backbone):
    architecture = "vdsr"

    def __init__(self, config: VDSRConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.head = nn.Conv2d(config.in_channels, c, 3, padding=1)
        self.body = nn.ModuleList(BinaryBlock(config, c, (3,) * config.layers_per_block)
                                  for _ in range(config.blocks))
        self.tail = nn.Conv2d(c, config.in_channels, 3, padding=1)
        # Starts as plain bicubic interpolation and learns the residual (VDSR's global skip).
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)


    def forward(self, x: torch.Tensor, kernels=None) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = F.relu(self.head(up - 0.5))
        return up + self.tail(self.run_body(h, kernels))


class SRResNet(_Backbone):
    architecture = "srresnet"

    def __init__(self, config: SRResNetConfig):
        super().__init__()
        self.config = config
        c, s = config.channels, config.scale
        self.head = nn.Sequential(nn.Conv2d(config.in_channels, c, 9, padding=4), nn.PReLU(c))
        self.body = nn.ModuleList(BinaryBlock(config, c, (3, 3)) for _ in range(config.blocks))
        self.body_conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        stages: list[nn.Module] = []
        for f in ([3] if s == 3 else [2] * (s // 2)):
            stages += [nn.Conv2d(c, c * f * f, 3, padding=1), nn.PixelShuffle(f), nn.PReLU(c)]
        self.upsampler = nn.Sequential(*stages)
        self.tail = nn.Conv2d(c, config.in_channels, 9, padding=4)


    def forward(self, x: torch.Tensor, kernels=None) -> torch.Tensor:
        features = self.head(x - 0.5)
        h = self.body_conv(self.run_body(features, kernels)) + features
        return self.tail(self.upsampler(h)) + 0.5
