"""Binarization methods as configurations of the same layers (Xin et al. 2020, Tables 1-5).

A method says how a binary conv's weights and input activations are quantized, and whether
BAM accumulates them. Every backbone (BSRN, VDSR, SRResNet) takes every method through the
fields of :class:`Binarization`; nothing else in a model depends on the method.

- ``fp``: full precision; a ReLU where the others binarize activations.
- ``bnn``: sign(W), sign(A), straight-through estimator clipped at 1 (Hubara et al. 2016).
- ``dorefa``: sign(W) * E|W| per layer, activations round(clip(A, 0, 1)) in {0, 1} (Zhou et al. 2016).
- ``abc``: W as 3 least-squares-weighted binary bases, activations beta * H(A + v) (Lin et al. 2017).
- ``ma``: sign(W) * E|W| per output channel, full-precision activations (Ma et al. 2019).
- ``bam``: the bit-accumulation mechanism of eq. 3 (weights) and eq. 9/10 (activations);
  its ablations ``bam-w1``/``bam-w2``/``bam-a1``/``bam-a2`` fix or drop the accumulation weights.

Two later-work options combine with any method (DESIGN.md section 3): ``fp_skip`` (a float
identity around every binary conv) and ``rprelu`` with ``threshold`` (a learned per-channel
threshold before the sign and an RPReLU after the conv).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks import quantizers
from bsrn_cli.networks.quantizers import ACCUMULATION_MODES


@dataclass(frozen=True)
class Method:
    name: str
    weight: str | None        # kernel quantizer name (None: float), or "bam" for the accumulator
    activation: str | None    # activation quantizer name
    weight_accumulation: str = "none"
    activation_accumulation: str = "none"
    reference: str = ""


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("fp", None, "relu", reference="full-precision counterpart"),
    Method("bnn", "ste_sign", "ste_sign", reference="Hubara et al. 2016 (BNN)"),
    Method("dorefa", "layer_scaled_sign", "dorefa_activation", reference="Zhou et al. 2016 (DoReFa-Net)"),
    Method("abc", "abc_weight", "abc_activation", reference="Lin et al. 2017 (ABC-Net, 3 weight bases)"),
    Method("ma", "scaled_sign", "relu", reference="Ma et al. 2019 (binary weights, float activations)"),
    Method("bam", "bam", "ste_sign", "learned", "learned", reference="Xin et al. 2020 (BAM)"),
    Method("bam-w1", "bam", "ste_sign", "ones", "learned", reference="Xin et al. 2020, ablation BSRN-W1"),
    Method("bam-w2", "bam", "ste_sign", "none", "learned", reference="Xin et al. 2020, ablation BSRN-W2"),
    Method("bam-a1", "bam", "ste_sign", "learned", "ones", reference="Xin et al. 2020, ablation BSRN-A1"),
    Method("bam-a2", "bam", "ste_sign", "learned", "none", reference="Xin et al. 2020, ablation BSRN-A2"),
)}

# What `method = "..."` sets in a model configuration.
BINARIZATION_FIELDS = ("method", "weight_accumulation", "activation_accumulation")


def method_fields(name: str) -> dict:
    """The configuration fields a method name stands for (``bam-w1`` -> bam with weight accumulation ones)."""
    if name not in METHODS:
        raise BsrnError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    m = METHODS[name]
    base = "bam" if m.weight == "bam" else m.name
    if base == "bam":
        return {"method": "bam", "weight_accumulation": m.weight_accumulation,
                "activation_accumulation": m.activation_accumulation}
    return {"method": base}


@dataclass(frozen=True)
class Binarization:
    """The fields every backbone's configuration shares."""

    label: ClassVar[str] = "model"  # the backbone's name in messages

    method: str = "bam"
    weight_accumulation: str = "learned"      # bam only: learned | ones (W1) | none (W2)
    activation_accumulation: str = "learned"  # bam only: learned | ones (A1) | none (A2)
    fp_skip: bool = False                     # float identity around every binary conv (E2FIF/BBCU)
    rprelu: bool = False                      # RPReLU after every binary conv (ReActNet/BBCU)
    threshold: bool = False                   # learned per-channel threshold before the sign (ReActNet)
    residual_scale: float = 0.1               # initial per-channel gain on each binary conv's output

    def check_binarization(self) -> None:
        if self.method not in METHODS or self.method.startswith("bam-"):
            known = [m for m in METHODS if not m.startswith("bam-")]
            raise BsrnError(f"method must be one of {', '.join(known)} (ablations set the accumulation "
                            f"fields), not {self.method!r}")
        for field in ("weight_accumulation", "activation_accumulation"):
            if getattr(self, field) not in ACCUMULATION_MODES:
                raise BsrnError(f"{field} must be one of {ACCUMULATION_MODES}, not {getattr(self, field)!r}")

    @property
    def is_bam(self) -> bool:
        return self.method == "bam"

    @property
    def method_name(self) -> str:
        """The method's table name, ablations included (bam with weight accumulation ones -> bam-w1)."""
        if not self.is_bam:
            return self.method
        for name, m in METHODS.items():
            if m.weight == "bam" and (m.weight_accumulation, m.activation_accumulation) == (
                    self.weight_accumulation, self.activation_accumulation):
                return name
        return f"bam(w={self.weight_accumulation},a={self.activation_accumulation})"

    def activation_quantizer(self) -> nn.Module:
        return quantizers.get(METHODS[self.method].activation)

    def kernel_quantizer(self) -> nn.Module | None:
        """The quantizer of a conv's own weights (None for float weights); BAM accumulates instead."""
        name = METHODS[self.method].weight
        return None if name in (None, "bam") else quantizers.get(name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """A configuration from stored values; unknown field names are a one-line error."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise BsrnError(f"unknown {cls.label} configuration fields: {', '.join(sorted(unknown))}")
        return cls(**values)
