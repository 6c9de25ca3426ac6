"""What the packed backend runs, derived from a BSRN's weights with numpy alone (no torch).

From the tensors of a weights file (names as in the torch module's state dict) and its
configuration:

- per binary conv of an LB block, its effective BAM kernel (eq. 3 of Xin et al. 2020): the
  sign of the standardised sum ``a_1 W_1 + ... + a_n W_n`` (a 3x3 filter accumulated into a 1x1
  layer contributes its spatial mean), times E(|W_n|) of the layer's own filter; only the signs
  are packed, E(|W_n|) times the learned gain becomes the conv's per-channel output scale;
- each activation's BatchNorm folded into per-channel thresholds (``bitpack.FoldedSign``);
- the activation-accumulation weights, the RPReLUs, and the float convs of the head and tail.

The arithmetic follows the torch module's order in float32, so the signs come out as the torch
backend computes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bsrn_cli.backends import bitpack
from bsrn_cli.errors import BsrnError
from bsrn_cli.networks.configs import LB_KERNEL_SIZES, BSRNConfig

BN_EPS = 1e-5  # torch's BatchNorm2d default, which every BSRN's activation norms use


class Tensors:
    """Named float32 arrays of one weights file; a wrong or missing one is a one-line error."""

    def __init__(self, tensors: dict[str, np.ndarray], origin: str):
        self.tensors, self.origin = tensors, origin

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.tensors:
            raise BsrnError(f"{self.origin}: tensors do not match the configuration (no {name})")
        array = np.asarray(self.tensors[name])
        if array.size != math.prod(shape):
            raise BsrnError(f"{self.origin}: tensors do not match the configuration "
                            f"({name} has shape {tuple(array.shape)}, expected {shape})")
        return np.ascontiguousarray(array, dtype=np.float32).reshape(shape)


# The summation order of torch's float32 sum on the CPU (a row is summed as vectors of 8 lanes,
# 4 interleaved accumulators, a 4-level cascade; rows shorter than 8 as scalars). Reducing in
# that order makes E(|W|) and the centring of eq. 3, hence the effective kernels and scales,
# bit-identical to the torch module's (tests/backends/test_packed_export.py). The folded
# BatchNorm thresholds can differ from torch's in the last bit: torch's float32 sqrt is not
# always correctly rounded, numpy's is. (torch 2.13's CPU build takes it from MKL's vector math
# for any tensor longer than one element: on 10^5 uniform inputs a fifth differ by one ulp, the
# largest error 0.75 ulp, whatever ATEN_CPU_CAPABILITY says; a torch-free export cannot copy
# that, so the thresholds are the correctly rounded ones.)
LANES, ILP, LEVELS = 8, 4, 4


def _cascade(vectors: np.ndarray) -> np.ndarray:
    """(rows, count, ILP, lanes) -> (rows, ILP, lanes): sums over ``count`` through 4 levels."""
    count = vectors.shape[1]
    power = max(4, (count - 1).bit_length() // LEVELS if count > 1 else 0)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((LEVELS,) + vectors.shape[:1] + vectors.shape[2:], np.float32)
    i = 0
    while i + step <= count:
        for _ in range(step):
            acc[0] += vectors[:, i]
            i += 1
        for level in range(1, LEVELS):
            acc[level] += acc[level - 1]
            acc[level - 1] = 0
            if i & (mask << (level * power)):
                break
    while i < count:
        acc[0] += vectors[:, i]
        i += 1
    for level in range(1, LEVELS):
        acc[0] += acc[level]
    return acc[0]


def ordered_sum(rows: np.ndarray) -> np.ndarray:
    """float32 (m, n) -> (m,): each row's sum, added in the order described above."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    m, n = rows.shape
    lanes = LANES if n >= LANES else 1
    n_vectors = n // lanes
    vectors = rows[:, :n_vectors * lanes].reshape(m, n_vectors, lanes)
    grouped = n_vectors // ILP
    partial = _cascade(vectors[:, :grouped * ILP].reshape(m, grouped, ILP, lanes))
    for i in range(grouped * ILP, n_vectors):
        partial[:, 0] += vectors[:, i]
    for k in range(1, ILP):
        partial[:, 0] += partial[:, k]
    total = np.zeros(m, np.float32)
    for k in range(n_vectors * lanes, n):
        total += rows[:, k]
    for lane in range(lanes):
        total += partial[:, 0, lane]
    return total


def _channel_mean(w: np.ndarray) -> np.ndarray:
    """Mean over everything but the output channel, shaped to broadcast (cout, 1, 1, 1)."""
    rows = w.reshape(w.shape[0], -1)
    return (ordered_sum(rows) / np.float32(rows.shape[1])).reshape(-1, 1, 1, 1)


def _spatial_mean(w: np.ndarray) -> np.ndarray:
    """A 3x3 filter bank's spatial mean (cout, cin, 1, 1): taps summed in order, then / kh / kw."""
    kh, kw = w.shape[2:]
    total = np.zeros(w.shape[:2], np.float32)
    for y in range(kh):
        for x in range(kw):
            total += w[:, :, y, x]
    return (total / np.float32(kh) / np.float32(kw))[:, :, None, None]


def _accumulated(own: np.ndarray, terms: list[np.ndarray], a: np.ndarray) -> np.ndarray:
    """sum a_i * match(W_i), added in order from zero as the torch module does."""
    total = np.zeros_like(own)
    for weight, w in zip(a, terms):
        matched = w if w.shape == own.shape else _spatial_mean(w)  # a 3x3 filter into a 1x1 layer
        total = total + np.float32(weight) * matched
    return total


def effective_kernels(layers: list[tuple[np.ndarray, list[np.ndarray], np.ndarray]]) -> list[np.ndarray]:
    """BAM's kernel (eq. 3), binarize(standardise(sum a_i * match(W_i))) * E(|W_own|), of each
    (own filters, accumulated filters, a) in ``layers``.

    The standardisation divides each output channel by a positive number, so its sign is the
    sign of the centred sum (binarize: x < 0 is -1, anything else +1). Layers of one shape are
    reduced together (one ordered sum over all their rows: a fast start-up)."""
    kernels: list[np.ndarray] = [np.empty(0)] * len(layers)
    shapes: dict[tuple, list[int]] = {}
    for index, (own, _, _) in enumerate(layers):
        shapes.setdefault(own.shape, []).append(index)
    for shape, indices in shapes.items():
        total = np.stack([_accumulated(*layers[i]) for i in indices])
        own = np.stack([layers[i][0] for i in indices])
        means = lambda w: _channel_mean(w.reshape((-1,) + shape[1:])).reshape(len(indices), shape[0], 1, 1, 1)
        scale = means(np.abs(own))
        # total - mean < 0 exactly where total < mean (IEEE subtraction is never 0 for a != b)
        for j, kernel in zip(indices, np.where(total < means(total), -scale, scale)):
            kernels[j] = kernel
    return kernels


@dataclass
class FloatConvWeights:
    """A float 3x3 conv (padding 1) of the head or tail: (cout, cin, 3, 3) weights and bias."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass
class LayerExport:
    """One binary conv of an LB block as the fused C pass takes it."""

    kernel: np.ndarray            # effective kernel (cout, cin, k, k): its signs are packed
    scale: np.ndarray             # per output channel: E(|W|) times the learned gain
    sign: bitpack.FoldedSign      # the input activation's BatchNorm as thresholds
    n_terms: int                  # activations accumulated into the input
    learned: bool                 # b_i = b_scale_i * E(A_i) (learned) or 1 (ones / none)
    b: np.ndarray                 # b_scale, or ones
    rprelu: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # shift_in, slope, shift_out


@dataclass
class BSRNExport:
    """Everything the packed backend runs for one BSRN."""

    config: BSRNConfig
    head: FloatConvWeights
    layers: list[LayerExport]     # layer = 3 * block + i
    body_conv: FloatConvWeights | None
    upsampler: list[FloatConvWeights | int]  # convs and pixel-shuffle factors, in order


def packed_unsupported(architecture: str, config) -> str | None:
    """Why the packed backend cannot run this model, or None if it can.

    It runs BSRN with BAM (ablations included): sign activations after a BatchNorm threshold.
    Other backbones and methods (VDSR, SRResNet, DoReFa's {0, 1} activations, ABC's bases,
    float activations) run on the torch backend."""
    if architecture != "bsrn":
        return f"the {architecture or '?'} backbone"
    if config.method != "bam":
        return f"the {config.method} method"
    if config.threshold:
        return "learned thresholds"
    if config.in_channels != 3:
        return f"{config.in_channels} input channels"
    return None


def _long_range_terms(config: BSRNConfig, index: int) -> int:
    if config.long_range == "global":
        return index
    if config.long_range == "hpb":
        return index % config.lb_per_hpb
    return 0


def export_bsrn(tensors: dict[str, np.ndarray], config: BSRNConfig, origin: str = "weights") -> BSRNExport:
    """The packed form of a BSRN from its tensors (state-dict names) and configuration."""
    why_not = packed_unsupported("bsrn", config)
    if why_not is not None:
        raise BsrnError(f"the packed backend does not run {why_not}")
    if tuple(LB_KERNEL_SIZES) != (3, 1, 1):
        raise BsrnError("the packed backend runs LB blocks of a 3x3 and two 1x1 binary convs")
    t = Tensors(tensors, origin)
    c = config.channels
    conv = lambda name, cin, cout: FloatConvWeights(t.get(f"{name}.weight", (cout, cin, 3, 3)),
                                                    t.get(f"{name}.bias", (cout,)))
    specs, rest = [], []  # per layer: what its kernel is made of; the rest of what it runs
    earlier: list[np.ndarray] = []  # long-range 3x3 filters of the earlier blocks of this group
    weight_mode, act_mode = config.weight_accumulation, config.activation_accumulation
    for block in range(config.hpb_blocks * config.lb_per_hpb):
        prefix = f"body.{block}"
        own = [t.get(f"{prefix}.convs.{i}.weight", (c, c, k, k)) for i, k in enumerate(LB_KERNEL_SIZES)]
        if _long_range_terms(config, block) == 0:
            earlier = []
        for i in range(len(LB_KERNEL_SIZES)):
            available = (earlier + [own[0]]) if i == 0 else own[: i + 1]
            n_weights = 1 if weight_mode == "none" else len(available)
            a = (t.get(f"{prefix}.weight_acc.{i}.a", (n_weights,)) if weight_mode == "learned"
                 else np.ones(n_weights, dtype=np.float32))
            specs.append((own[i], available[-n_weights:], a))
            gain = t.get(f"{prefix}.gains.{i}", (c,))
            n_terms = 1 if act_mode == "none" else i + 1
            norm = f"{prefix}.act_acc.{i}.norm"
            sign = bitpack.FoldedSign(t.get(f"{norm}.weight", (c,)), t.get(f"{norm}.bias", (c,)),
                                      t.get(f"{norm}.running_mean", (c,)), t.get(f"{norm}.running_var", (c,)),
                                      BN_EPS)
            learned = act_mode == "learned"
            b = t.get(f"{prefix}.act_acc.{i}.b_scale", (n_terms,)) if learned else np.ones(n_terms, np.float32)
            rprelu = None
            if config.rprelu:
                r = f"{prefix}.rprelu.{i}"
                rprelu = (t.get(f"{r}.shift_in", (c,)), t.get(f"{r}.prelu.weight", (c,)), t.get(f"{r}.shift_out", (c,)))
            rest.append((gain, sign, n_terms, learned, b, rprelu))
        earlier.append(own[0])
    layers = [LayerExport(kernel, (np.abs(kernel).reshape(c, -1).max(1) * gain).astype(np.float32),
                          sign, n_terms, learned, b, rprelu)
              for kernel, (gain, sign, n_terms, learned, b, rprelu) in zip(effective_kernels(specs), rest)]
    s, out = config.scale, config.in_channels
    if config.upsampler == "light":
        upsampler: list[FloatConvWeights | int] = [conv("upsampler.0", c, out * s * s), s]
    else:
        upsampler, index = [], 0
        for f in ([3] if s == 3 else [2] * int(math.log2(s))):
            upsampler += [conv(f"upsampler.{index}", c, c * f * f), f]
            index += 2
        upsampler.append(conv(f"upsampler.{index}", c, out))
    return BSRNExport(config, conv("head", config.in_channels, c), layers,
                      conv("body_conv", c, c) if config.body_conv else None, upsampler)
