"""Network configurations, importable without torch: what the weights metadata describes.

The binarization methods (Xin et al. 2020, Tables 1-5) as fields shared by every backbone
(:class:`Binarization`), and the configurations of BSRN, VDSR and SRResNet. The torch modules
(bsrn.py, backbones.py) take these; the packed backend and the loader read them without torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from bsrn_cli.errors import BsrnError

ACCUMULATION_MODES = ("learned", "ones", "none")


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

    def activation_quantizer(self):
        """The activation quantizer module (torch)."""
        from bsrn_cli.networks import quantizers

        return quantizers.get(METHODS[self.method].activation)

    def kernel_quantizer(self):
        """The quantizer of a conv's own weights (None for float weights); BAM accumulates instead."""
        from bsrn_cli.networks import quantizers

        name = METHODS[self.method].weight
        return None if name in (None, "bam") else quantizers.get(name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """A configuration from stored values (a weights file's metadata: not trusted). Unknown
        names, values of the wrong type and sizes outside :data:`LIMITS` are one-line errors,
        raised before anything is built from them."""
        if not isinstance(values, dict):
            raise BsrnError(f"{cls.label} configuration must be a JSON object, not {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(fields)
        if unknown:
            shown = ", ".join(sorted(str(name)[:40] for name in unknown)[:5])
            raise BsrnError(f"unknown {cls.label} configuration fields: {shown}")
        checked = {}
        for name, value in values.items():
            kind = type(fields[name].default)
            _check_value(cls.label, name, value, kind)
            checked[name] = float(value) if kind is float else value  # JSON writes 2.0 as 2
        return cls(**checked)


# The largest sizes a configuration may ask for: far above any trained network (the shipped ones
# have 48 channels and 40 LB blocks), low enough that building one cannot exhaust memory.
LIMITS = {"channels": 512, "hpb_blocks": 256, "lb_per_hpb": 8, "blocks": 256, "layers_per_block": 16,
          "in_channels": 4}
MAX_TEXT = 64


def _check_value(label: str, name: str, value, kind: type) -> None:
    """``value`` of field ``name`` has the field's type (bool, int, float or str) and a sane size."""
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT
    if not ok:
        shown = repr(value) if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40) \
            else f"a {type(value).__name__}"
        raise BsrnError(f"{label} configuration field {name} must be {_KIND_NAMES[kind]}, not {shown}")
    if kind is int and name in LIMITS and not 1 <= value <= LIMITS[name]:
        raise BsrnError(f"{label} configuration field {name} is {value}: must be between 1 and {LIMITS[name]}")
    if kind is float and abs(value) > 1e6:
        raise BsrnError(f"{label} configuration field {name} is {value}: out of range")


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a short text"}


SCALES = (2, 3, 4)
LB_KERNEL_SIZES = (3, 1, 1)
LONG_RANGE_MODES = ("global", "hpb", "none")
UPSAMPLERS = ("edsr", "light")
IMAGE_SKIPS = ("none", "nearest", "bicubic")


@dataclass(frozen=True)
class BSRNConfig(Binarization):
    """Everything that decides the network's shape and its binarization (method fields: methods.py)."""

    label: ClassVar[str] = "BSRN"

    scale: int = 4
    channels: int = 48
    hpb_blocks: int = 20
    lb_per_hpb: int = 2
    long_range: str = "global"                # which earlier 3x3 filters an LB's 3x3 accumulates
    upsampler: str = "edsr"                   # edsr: conv+shuffle per x2 stage; light: one conv+shuffle
    body_conv: bool = True                    # float 3x3 conv closing the body before the long skip
    image_skip: str = "none"                  # add the upscaled input (none | nearest | bicubic)
    in_channels: int = 3

    def __post_init__(self):
        if self.scale not in SCALES:
            raise BsrnError(f"scale must be one of {SCALES}, not {self.scale}")
        self.check_binarization()
        for field, allowed in (("long_range", LONG_RANGE_MODES), ("upsampler", UPSAMPLERS),
                               ("image_skip", IMAGE_SKIPS)):
            if getattr(self, field) not in allowed:
                raise BsrnError(f"{field} must be one of {allowed}, not {getattr(self, field)!r}")
        if self.channels < 1 or self.hpb_blocks < 1 or self.lb_per_hpb < 1:
            raise BsrnError("channels, hpb_blocks and lb_per_hpb must be positive")

    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel depends on, per side (for tile overlap)."""
        n_lr_convs = 1 + self.hpb_blocks * self.lb_per_hpb + (1 if self.body_conv else 0)
        stages = 1 if self.scale == 3 else int(math.log2(self.scale))  # edsr: one conv per x2/x3 stage, one after
        tail = 1 if self.upsampler == "light" else stages + 1
        skip = 2 if self.image_skip == "bicubic" else 0
        return max(n_lr_convs + tail, skip)



PRESETS: dict[str, dict] = {
    # The paper's network as we read it: BAM everywhere, EDSR-style upsampler.
    "paper": {},
    # What we ship: BAM plus the two largest later-work gains, and a light upsampler so the
    # float tail does not dominate CPU time (docs/performance.md).
    "fast": {"upsampler": "light", "fp_skip": True, "rprelu": True, "image_skip": "bicubic",
             "long_range": "hpb"},
}


def preset_config(preset: str, scale: int, **overrides) -> BSRNConfig:
    if preset not in PRESETS:
        raise BsrnError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    try:
        return BSRNConfig(scale=scale, **{**PRESETS[preset], **overrides})
    except TypeError as exc:
        raise BsrnError(f"bsrn configuration: {exc}") from exc


def _check_common(config) -> None:
    if config.scale not in SCALES:
        raise BsrnError(f"scale must be one of {SCALES}, not {config.scale}")
    config.check_binarization()


@dataclass(frozen=True)
class VDSRConfig(Binarization):
    label: ClassVar[str] = "VDSR"
    scale: int = 4
    channels: int = 64
    blocks: int = 6
    layers_per_block: int = 3
    in_channels: int = 3

    def __post_init__(self):
        _check_common(self)
        if min(self.channels, self.blocks, self.layers_per_block) < 1:
            raise BsrnError("channels, blocks and layers_per_block must be positive")

    def receptive_radius(self) -> int:
        # In HR pixels: 2 + 3 * layers; in LR pixels (what tiling needs), rounded up, plus bicubic's 2.
        hr = 2 + self.blocks * self.layers_per_block
        return -(-hr // self.scale) + 2


@dataclass(frozen=True)
class SRResNetConfig(Binarization):
    label: ClassVar[str] = "SRResNet"
    scale: int = 4
    channels: int = 64
    blocks: int = 16
    in_channels: int = 3

    def __post_init__(self):
        _check_common(self)
        if min(self.channels, self.blocks) < 1:
            raise BsrnError("channels and blocks must be positive")

    def receptive_radius(self) -> int:
        lr_convs = 4 + 2 * self.blocks + 1
        stages = 1 if self.scale == 3 else self.scale // 2
        return lr_convs + stages + 4
