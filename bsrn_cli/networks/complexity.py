"""Parameter and multiply-accumulate counts, split into binary and full-precision parts.

MACs are counted per convolution as C_in * C_out * k * k * output pixels. A binary MAC is
one ±1 x ±1 product of a binary conv (an XNOR-popcount bit operation); the paper's 85G
figure for BSRN counts those as full MACs, so we print both and the sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bsrn_cli.networks.layers import QuantConv2d


@dataclass
class Complexity:
    params: int
    binary_params: int
    float_macs: int
    binary_macs: int
    input_size: tuple[int, int]  # (width, height) of the LR input
    output_size: tuple[int, int]

    @property
    def float_params(self) -> int:
        return self.params - self.binary_params

    @property
    def total_macs(self) -> int:
        return self.float_macs + self.binary_macs


def input_size_for_output(output: tuple[int, int], scale: int) -> tuple[int, int]:
    """The smallest LR (width, height) whose output covers ``output`` (ceil for x3 at 720p)."""
    return (-(-output[0] // scale), -(-output[1] // scale))


def count(model: nn.Module, output: tuple[int, int] = (1280, 720)) -> Complexity:
    """Counts for an output of ``output`` (width, height); convs are measured on a probe input."""
    scale = model.scale
    width, height = input_size_for_output(output, scale)
    probe = 8
    float_macs = binary_macs = 0
    records: list[tuple[nn.Conv2d, int]] = []

    def hook(module, inputs, result):
        records.append((module, result.shape[-2] * result.shape[-1]))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(torch.zeros(1, model.config.in_channels, probe, probe))
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    pixel_ratio = (width * height) / (probe * probe)
    for module, out_pixels in records:
        per_pixel = module.in_channels * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        macs = round(per_pixel // module.groups * out_pixels * pixel_ratio)
        if isinstance(module, QuantConv2d) and module.is_binary:
            binary_macs += macs
        else:
            float_macs += macs
    params = sum(p.numel() for p in model.parameters())
    binary_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, QuantConv2d) and m.is_binary)
    return Complexity(params, binary_params, float_macs, binary_macs, (width, height),
                      (width * scale, height * scale))
