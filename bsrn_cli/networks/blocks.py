"""The binary block every backbone is built from: k binary convs with BAM's short-range accumulation.

Layer n of a block sees the block's input and the outputs of its earlier layers. Under BAM it
binarizes BN(b_1 A_1 + ... + b_n A_n) and its filters accumulate the block's earlier filters
(a 3x3 one through its spatial mean) plus ``long_range_terms`` filters of earlier blocks; under
the other methods it quantizes BN(A_n) and its own filters with the method's quantizers.
BSRN's LB block is (3x3, 1x1, 1x1); VDSR's blocks are (3x3, 3x3, 3x3); SRResNet's (3x3, 3x3).
"""

from __future__ import annotations

import torch
from torch import nn

from bsrn_cli.networks.layers import QuantConv2d, RPReLU, channel_vector, store_channel_vectors_as_nchw
from bsrn_cli.networks.methods import METHODS, Binarization
from bsrn_cli.networks.quantizers import ActivationAccumulator, WeightAccumulator


class OwnKernel(nn.Module):
    """A non-BAM layer's kernel: its own filter through the method's quantizer (or as it is)."""

    def __init__(self, quantizer: nn.Module | None):
        super().__init__()
        self.quantizer = quantizer

    def forward(self, weights: list[torch.Tensor]) -> torch.Tensor:
        own = weights[-1]
        return own if self.quantizer is None else self.quantizer(own)


class BinaryBlock(nn.Module):
    def __init__(self, config: Binarization, channels: int, kernel_sizes: tuple[int, ...], long_range_terms: int = 0):
        super().__init__()
        c = channels
        method = METHODS[config.method]
        self.fp_skip = config.fp_skip
        binary = method.weight is not None and (method.activation or "relu") != "relu"
        self.convs = nn.ModuleList(
            QuantConv2d(c, c, k, input_quantizer=config.activation_quantizer(), binary=binary) for k in kernel_sizes)
        if config.is_bam:
            self.weight_acc = nn.ModuleList(
                WeightAccumulator(n_terms=(long_range_terms + 1) if i == 0 else i + 1, mode=config.weight_accumulation)
                for i in range(len(kernel_sizes)))
        else:
            self.weight_acc = nn.ModuleList(OwnKernel(config.kernel_quantizer()) for _ in kernel_sizes)
        self.act_acc = nn.ModuleList(
            ActivationAccumulator(n_terms=i + 1, channels=c,
                                  mode=config.activation_accumulation if config.is_bam else "none")
            for i in range(len(kernel_sizes)))
        self.thresholds = (nn.ParameterList(nn.Parameter(torch.zeros(c)) for _ in kernel_sizes)
                           if config.threshold else None)
        self.rprelu = nn.ModuleList(RPReLU(c) for _ in kernel_sizes) if config.rprelu else None
        # A learned per-output-channel gain (folded into E(|W|) at inference) keeps the sum of
        # many binary convs' outputs near the scale of the head's features at the start.
        self.gains = nn.ParameterList(
            nn.Parameter(torch.full((c,), config.residual_scale)) for _ in kernel_sizes)
        store_channel_vectors_as_nchw(self, tuple(f"{kind}.{i}" for kind in ("gains", "thresholds")
                                                  for i in range(len(kernel_sizes))))

    def kernels(self, earlier: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The effective kernels of the block's convs (eq. 3 under BAM); ``earlier``: long-range filters."""
        own = [conv.weight for conv in self.convs]
        result = [self.weight_acc[0](list(earlier or []) + [own[0]])]
        for i in range(1, len(own)):
            result.append(self.weight_acc[i](own[: i + 1]))
        return result

    def forward(self, x: torch.Tensor, kernels: list[torch.Tensor] | None = None) -> torch.Tensor:
        if kernels is None:
            kernels = self.kernels()
        activations = [x]
        h = x
        for i, conv in enumerate(self.convs):
            a = self.act_acc[i](activations)
            if self.thresholds is not None:
                a = a - channel_vector(self.thresholds[i])
            z = conv(a, kernels[i]) * channel_vector(self.gains[i])
            if self.rprelu is not None:
                z = self.rprelu[i](z)
            h = h + z if self.fp_skip else z
            activations.append(h)
        return h if self.fp_skip else x + h
