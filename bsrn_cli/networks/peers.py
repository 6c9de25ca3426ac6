"""Float super-resolution networks a user could run instead of ours, for `bsrn bench --peers`.

Each is built from its paper's description of the architecture, with random weights: the
bench times them, and their speed does not depend on the weights (quality is the published
figure, in bsrn_cli/data/published.csv). All map an RGB (N, 3, h, w) tensor in [0, 1] to
(N, 3, h*s, w*s).

- ESPCN (Shi et al., CVPR 2016): 5x5 conv to 64, 3x3 to 32 (tanh after both), 3x3 to s*s
  channels and a pixel shuffle, on the luminance only.
- FSRCNN (Dong et al., ECCV 2016), FSRCNN(d=56, s=12, m=4): 5x5 feature extraction to 56,
  1x1 shrinking to 12, four 3x3 mapping layers, 1x1 expanding to 56 (PReLU after each), and
  a 9x9 deconvolution of stride s, on the luminance only.
- IMDN (Hui et al., ACM MM 2019): 3x3 conv to 64, six information multi-distillation blocks
  (progressive refinement keeping a quarter of the channels at each of four steps,
  contrast-aware channel attention, 1x1 fusion, local residual), 1x1 fusion of the six
  blocks' outputs, 3x3 conv, global residual, 3x3 conv to 3*s*s and a pixel shuffle.
- RLFN (Kong et al., CVPRW 2022): 3x3 conv to 52, six residual local feature blocks (three
  3x3 convs with a residual, 1x1 conv, enhanced spatial attention), 3x3 conv, global
  residual, 3x3 conv to 3*s*s and a pixel shuffle.

ESPCN and FSRCNN work on the Y channel (the papers' setting, and the parameter counts they
publish); `LumaWrapper` converts RGB to YCbCr (ITU-R BT.601, as MATLAB's rgb2ycbcr), runs the
network on Y and upscales Cb/Cr bicubically, which is what a user of these models pays for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Parameter counts the papers publish (x4), for the tests: FSRCNN counts weights only.
PUBLISHED_PARAMS_X4 = {"ESPCN": 24_640, "FSRCNN": 12_464, "IMDN": 715_000, "RLFN": 543_000}


class LumaWrapper(nn.Module):
    """RGB in, RGB out around a network that upscales the Y channel; Cb/Cr bicubic."""

    def __init__(self, net: nn.Module, scale: int):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        y = (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255
        cb = (128 - 37.797 * r - 74.203 * g + 112.0 * b) / 255
        cr = (128 + 112.0 * r - 93.786 * g - 18.214 * b) / 255
        y = self.net(y) * 255 - 16
        chroma = F.interpolate(torch.cat([cb, cr], 1), scale_factor=self.scale, mode="bicubic",
                               align_corners=False) * 255 - 128
        cb, cr = chroma[:, 0:1], chroma[:, 1:2]
        rgb = torch.cat([1.164 * y + 1.596 * cr, 1.164 * y - 0.392 * cb - 0.813 * cr, 1.164 * y + 2.017 * cb], 1)
        return rgb / 255


class ESPCN(nn.Module):
    """Shi et al. 2016: (5x5, 64) tanh, (3x3, 32) tanh, (3x3, s*s), pixel shuffle; one channel."""

    def __init__(self, scale: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(),
                                  nn.Conv2d(64, 32, 3, padding=1), nn.Tanh(),
                                  nn.Conv2d(32, scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FSRCNN(nn.Module):
    """Dong et al. 2016, FSRCNN(d, s, m): extraction, shrinking, m mappings, expanding, deconvolution."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # output (h - 1) * scale - 8 + 9 + (scale - 1) = h * scale
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))


class ContrastChannelAttention(nn.Module):
    """IMDN's CCA: per-channel contrast (standard deviation plus mean) -> squeeze-excite gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.gate(std + mean)


class IMDB(nn.Module):
    """Information multi-distillation block: four 3x3 steps, each keeping a quarter of its
    channels (the distilled part) and refining the rest; concat, CCA, 1x1 fusion, residual."""

    def __init__(self, channels: int = 64, distilled: float = 0.25):
        super().__init__()
        self.keep = int(channels * distilled)
        self.rest = channels - self.keep
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(self.rest, channels, 3, padding=1)
        self.c3 = nn.Conv2d(self.rest, channels, 3, padding=1)
        self.c4 = nn.Conv2d(self.rest, self.keep, 3, padding=1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.cca = ContrastChannelAttention(self.keep * 4)
        self.fuse = nn.Conv2d(self.keep * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1, r = torch.split(self.act(self.c1(x)), (self.keep, self.rest), dim=1)
        d2, r = torch.split(self.act(self.c2(r)), (self.keep, self.rest), dim=1)
        d3, r = torch.split(self.act(self.c3(r)), (self.keep, self.rest), dim=1)
        d4 = self.c4(r)
        return self.fuse(self.cca(torch.cat([d1, d2, d3, d4], 1))) + x


class IMDN(nn.Module):
    """Hui et al. 2019: 3x3 head, six IMDBs, 1x1 fusion of all six outputs, 3x3, global
    residual, pixel-shuffle upsampler."""

    def __init__(self, scale: int, channels: int = 64, blocks: int = 6):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList(IMDB(channels) for _ in range(blocks))
        self.fuse = nn.Sequential(nn.Conv2d(channels * blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        outputs, h = [], features
        for block in self.blocks:
            h = block(h)
            outputs.append(h)
        return self.upsampler(self.body_conv(self.fuse(torch.cat(outputs, 1))) + features)


class ESA(nn.Module):
    """Enhanced spatial attention as RLFN uses it: 1x1 reduce, strided 3x3, 7x7 max pool
    (stride 3), 3x3, bilinear back up, plus a 1x1 branch, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int, reduced: int = 16):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.branch = nn.Conv2d(reduced, reduced, 1)
        self.down = nn.Conv2d(reduced, reduced, 3, stride=2)
        self.conv = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        small = self.conv(F.max_pool2d(self.down(reduced), kernel_size=7, stride=3))
        small = F.interpolate(small, size=x.shape[2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(small + self.branch(reduced)))


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convs with activations and a residual, 1x1, ESA."""

    def __init__(self, channels: int = 52):
        super().__init__()
        self.convs = nn.Sequential(*[m for _ in range(3) for m in
                                     (nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.05, inplace=True))])
        self.mix = nn.Conv2d(channels, channels, 1)
        self.esa = ESA(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.esa(self.mix(self.convs(x) + x))


class RLFN(nn.Module):
    """Kong et al. 2022: 3x3 head, six RLFBs, 3x3, global residual, pixel-shuffle upsampler."""

    def __init__(self, scale: int, channels: int = 52, blocks: int = 6):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[RLFB(channels) for _ in range(blocks)])
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        return self.upsampler(self.body_conv(self.blocks(features)) + features)


PEERS = ("ESPCN", "FSRCNN", "IMDN", "RLFN")
# RLFN's ESA: a stride-2 3x3 conv without padding, then a 7x7 pool, needs 15 input pixels a side.
MIN_SIDE = 15


def build_peer(name: str, scale: int) -> nn.Module:
    """A peer network by name, RGB -> RGB at ``scale``, random weights, eval mode."""
    torch.manual_seed(0)
    nets = {"ESPCN": lambda: LumaWrapper(ESPCN(scale), scale), "FSRCNN": lambda: LumaWrapper(FSRCNN(scale), scale),
            "IMDN": lambda: IMDN(scale), "RLFN": lambda: RLFN(scale)}
    if name not in nets:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    return nets[name]().eval()


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
