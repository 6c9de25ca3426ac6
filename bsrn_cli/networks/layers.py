"""Quantized convolution: the ordinary conv plus an input and a kernel quantizer (larq-style)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bsrn_cli.networks import quantizers


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input and kernel pass through quantizers; None = full precision.

    ``forward(x, kernel=...)`` takes an already-quantized kernel, which is how BAM's
    accumulated filters (computed by the block from several layers' weights) come in.
    Padding is zero padding of the *binarized* input, as in the float reference; the packed
    backend reproduces it exactly with a +1 pad and an integer correction.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 input_quantizer=None, kernel_quantizer=None, bias: bool = False, binary: bool | None = None):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.input_quantizer = quantizers.get(input_quantizer)
        self.kernel_quantizer = quantizers.get(kernel_quantizer)
        # Binary = XNOR-popcount work: both the input and the (possibly accumulated) kernel are
        # binary. Callers that pass kernels in say so; otherwise the input quantizer decides.
        self._binary = binary
        # Binary layers see ±1 inputs: a fan-in-scaled init keeps pre-sign values near 1.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def is_binary(self) -> bool:
        if self._binary is not None:
            return self._binary
        return bool(getattr(self.input_quantizer, "binary", self.input_quantizer is not None))

    def quantized_kernel(self) -> torch.Tensor:
        return self.weight if self.kernel_quantizer is None else self.kernel_quantizer(self.weight)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        if kernel is None:
            kernel = self.quantized_kernel()
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return F.conv2d(x, kernel, self.bias, padding=self.padding)


def channel_vector(p: torch.Tensor) -> torch.Tensor:
    """A per-channel (C,) parameter shaped to broadcast over NCHW maps."""
    return p.view(1, -1, 1, 1)


def store_channel_vectors_as_nchw(module: nn.Module, names: tuple[str, ...]) -> None:
    """Per-channel parameters are 1-D (C,) in the module but (1, C, 1, 1) in state dicts.

    Weights files and checkpoints have always held them as (1, C, 1, 1); a 1-D parameter keeps
    torch.compile's backward from returning a gradient of the other shape (pytorch#178080).
    ``names`` are relative to ``module`` (``gains.0``, ``shift_in``).
    """

    def save(_module, state, prefix, _meta):
        for name in names:
            if prefix + name in state:
                state[prefix + name] = state[prefix + name].view(1, -1, 1, 1)

    def load(state, prefix, *_args):
        for name in names:
            value = state.get(prefix + name)
            if value is not None and value.dim() == 4:
                state[prefix + name] = value.reshape(-1)

    module._register_state_dict_hook(save)
    module._register_load_state_dict_pre_hook(load)


class RPReLU(nn.Module):
    """PReLU with learned per-channel shifts before and after (ReActNet / BBCU)."""

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.shift_out = nn.Parameter(torch.zeros(channels))
        self.prelu = nn.PReLU(channels, init=0.25)
        store_channel_vectors_as_nchw(self, ("shift_in", "shift_out"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x - channel_vector(self.shift_in)) + channel_vector(self.shift_out)
