"""Binarizers and BAM accumulators: small named objects that layers accept (larq-style).

Every quantizer is an ``nn.Module`` (some carry learned scalars) and can be named by a
string in a configuration; :func:`get` resolves names, dicts, modules and None.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bsrn_cli.errors import BsrnError


def binarize(x: torch.Tensor) -> torch.Tensor:
    """x < 0 -> -1, else +1 (so +0.0 and -0.0 both give +1, unlike torch.sign).

    copysign is one cheap pass; adding +0.0 first turns -0.0 into +0.0.
    """
    return torch.ones_like(x).copysign_(x + 0.0)


def ste_sign(x: torch.Tensor, clip_value: float | None = 1.0) -> torch.Tensor:
    """Sign in the forward pass; straight-through gradient, zeroed where |x| > clip_value."""
    if not torch.is_grad_enabled():
        return binarize(x)
    if clip_value is None:
        surrogate = x
    else:
        surrogate = torch.clamp(x, -clip_value, clip_value)
    return surrogate + (binarize(x) - surrogate).detach()


def mean_abs_per_output_channel(w: torch.Tensor) -> torch.Tensor:
    """E(|W|): the mean absolute value of each output channel's filter, shaped to broadcast."""
    return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


def standardize_per_output_channel(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The BN of eq. 3, applied to a filter bank: zero mean, unit variance per output channel."""
    dims = tuple(range(1, w.dim()))
    mean = w.mean(dim=dims, keepdim=True)
    var = w.var(dim=dims, keepdim=True, unbiased=False)
    return (w - mean) / torch.sqrt(var + eps)


class SteSign(nn.Module):
    """Sign with a straight-through estimator (BNN); the activation binarizer."""

    binary = True

    def __init__(self, clip_value: float | None = 1.0):
        super().__init__()
        self.clip_value = clip_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ste_sign(x, self.clip_value)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}"


class ScaledSign(nn.Module):
    """Weight binarizer: sign(W) * E(|W|) per output channel (XNOR-Net style)."""

    binary = True

    def __init__(self, clip_value: float | None = None):
        super().__init__()
        self.clip_value = clip_value

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ste_sign(w, self.clip_value) * mean_abs_per_output_channel(w)


def match_kernel(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bring an earlier layer's filter bank to the spatial size of a later one.

    A 3x3 filter accumulated into a 1x1 layer contributes its spatial mean: the 1x1 filter
    that responds to a constant patch the way the 3x3 one does.
    """
    if w.shape == like.shape:
        return w
    if w.shape[:2] != like.shape[:2]:
        raise ValueError(f"cannot accumulate filters {tuple(w.shape)} into {tuple(like.shape)}")
    return F.adaptive_avg_pool2d(w, like.shape[-2:])


from bsrn_cli.networks.configs import ACCUMULATION_MODES  # noqa: E402


class WeightAccumulator(nn.Module):
    """BAM for weights (eq. 3): W_n^B = Sign(BN(a_1 W_1 + ... + a_n W_n)) * E(|W_n|).

    mode "learned": the a's are learned scalars (initialised to 1);
    "ones": a = 1 (ablation BSRN-W1); "none": only W_n (ablation BSRN-W2).
    The last filter bank passed in is W_n, the layer's own.
    """

    def __init__(self, n_terms: int, mode: str = "learned", clip_value: float | None = None):
        super().__init__()
        if mode not in ACCUMULATION_MODES:
            raise BsrnError(f"weight accumulation mode must be one of {ACCUMULATION_MODES}, not {mode!r}")
        self.mode = mode
        self.n_terms = 1 if mode == "none" else n_terms
        self.clip_value = clip_value
        if mode == "learned":
            # The own filter starts at 1 and the earlier ones share a weight of about 1 in
            # total, so a long history does not drown the layer's own filter at the start.
            a = torch.ones(self.n_terms)
            a[:-1] = 1.0 / self.n_terms
            self.a = nn.Parameter(a)
        else:
            self.register_buffer("a", torch.ones(self.n_terms), persistent=False)

    def accumulate(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        own = weights[-1]
        terms = list(weights[-self.n_terms:])
        if len(terms) != self.n_terms:
            raise ValueError(f"expected {self.n_terms} filter banks, got {len(terms)}")
        total = torch.zeros_like(own)
        for a, w in zip(self.a, terms):
            total = total + a * match_kernel(w, own)
        return total

    def forward(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        own = weights[-1]
        normalized = standardize_per_output_channel(self.accumulate(weights))
        return ste_sign(normalized, self.clip_value) * mean_abs_per_output_channel(own)

    def extra_repr(self) -> str:
        return f"n_terms={self.n_terms}, mode={self.mode!r}"


class ActivationAccumulator(nn.Module):
    """BAM for activations (eq. 9/10): the float map that Sign turns into A_n^B.

    Returns BN(b_1 A_1 + ... + b_n A_n) with b_i = b_i^scale * E(A_i), E the per-pixel mean
    over channels and b_i^scale a learned scalar. mode "ones": b = 1 (ablation BSRN-A1);
    "none": BN(A_n) alone (ablation BSRN-A2). The caller applies the sign.
    """

    def __init__(self, n_terms: int, channels: int, mode: str = "learned"):
        super().__init__()
        if mode not in ACCUMULATION_MODES:
            raise BsrnError(f"activation accumulation mode must be one of {ACCUMULATION_MODES}, not {mode!r}")
        self.mode = mode
        self.n_terms = 1 if mode == "none" else n_terms
        if mode == "learned":
            self.b_scale = nn.Parameter(torch.ones(self.n_terms))
        self.norm = nn.BatchNorm2d(channels)

    def combine(self, activations: Sequence[torch.Tensor]) -> torch.Tensor:
        terms = list(activations[-self.n_terms:])
        if len(terms) != self.n_terms:
            raise ValueError(f"expected {self.n_terms} activations, got {len(terms)}")
        if self.mode == "none":
            return terms[0]
        if self.mode == "ones":
            return torch.stack(terms).sum(0) if len(terms) > 1 else terms[0]
        total = None
        for b_scale, a in zip(self.b_scale, terms):
            term = b_scale * a.mean(dim=1, keepdim=True) * a
            total = term if total is None else total + term
        return total

    def forward(self, activations: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.norm(self.combine(activations))

    def extra_repr(self) -> str:
        return f"n_terms={self.n_terms}, mode={self.mode!r}"


class LayerScaledSign(nn.Module):
    """DoReFa-Net's 1-bit weights: sign(W) * E(|W|), one scale for the whole layer."""

    binary = True

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ste_sign(w, None) * w.detach().abs().mean()


class DoReFaActivation(nn.Module):
    """DoReFa-Net's 1-bit activations: round(clip(x, 0, 1)) in {0, 1}, straight-through in [0, 1]."""

    binary = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = torch.clamp(x, 0.0, 1.0)
        return clipped + (torch.round(clipped) - clipped).detach()


class ABCWeight(nn.Module):
    """ABC-Net weights: W ~ sum_i alpha_i B_i with B_i = sign(W - mean(W) + u_i std(W)).

    The shifts u_i spread evenly over [-1, 1] (M = 3: -1, 0, 1); the alphas are the least-squares
    fit of W by the bases, recomputed at every call (no learned state), one set per layer.
    The gradient passes straight through to W.
    """

    binary = True

    def __init__(self, bases: int = 3):
        super().__init__()
        self.bases = bases

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            flat = w.detach().float().flatten()
            centred = flat - flat.mean()
            std = flat.std(unbiased=False)
            shifts = torch.linspace(-1.0, 1.0, self.bases) if self.bases > 1 else torch.zeros(1)
            basis = torch.stack([binarize(centred + u * std) for u in shifts.to(flat.device)], dim=1)
            alphas = torch.linalg.lstsq(basis, flat.unsqueeze(1)).solution.squeeze(1)
            approx = (basis @ alphas).view_as(w).to(w.dtype)
        return w + (approx - w).detach()

    def extra_repr(self) -> str:
        return f"bases={self.bases}"


class ABCActivation(nn.Module):
    """ABC-Net activations, N bases: sum_n beta_n H(x + v_n), H(y) = +1 if clip(y, 0, 1) >= 0.5 else -1.

    Shifts v_n and scales beta_n are learned; the gradient of each base is straight-through
    where 0 <= x + v_n <= 1.
    """

    binary = True

    def __init__(self, bases: int = 1):
        super().__init__()
        self.bases = bases
        self.shift = nn.Parameter(torch.linspace(-0.5, 0.5, bases) if bases > 1 else torch.zeros(1))
        self.beta = nn.Parameter(torch.ones(bases) / bases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for v, beta in zip(self.shift, self.beta):
            clipped = torch.clamp(x + v, 0.0, 1.0)
            hard = torch.where(clipped >= 0.5, 1.0, -1.0).to(x.dtype)
            base = beta * (2 * clipped - 1 + (hard - (2 * clipped - 1)).detach())
            total = base if total is None else total + base
        return total

    def extra_repr(self) -> str:
        return f"bases={self.bases}"


class FloatReLU(nn.ReLU):
    """The full-precision stand-in where binary methods binarize activations."""

    binary = False


_NAMED: dict[str, Callable[[], nn.Module]] = {
    "ste_sign": SteSign,
    "scaled_sign": ScaledSign,
    "layer_scaled_sign": LayerScaledSign,
    "dorefa_activation": DoReFaActivation,
    "abc_weight": ABCWeight,
    "abc_activation": ABCActivation,
    "relu": FloatReLU,
}


def get(identifier: None | str | dict | nn.Module | Callable) -> nn.Module | None:
    """Resolve a quantizer: None (full precision), a name, {"name": ..., **kwargs}, or a module."""
    if identifier is None:
        return None
    if isinstance(identifier, nn.Module):
        return identifier
    if isinstance(identifier, str):
        identifier = {"name": identifier}
    if isinstance(identifier, dict):
        settings = dict(identifier)
        name = settings.pop("name", None)
        if name not in _NAMED:
            raise BsrnError(f"unknown quantizer {name!r}; known: {', '.join(sorted(_NAMED))}")
        return _NAMED[name](**settings)
    raise BsrnError(f"cannot interpret {identifier!r} as a quantizer")
