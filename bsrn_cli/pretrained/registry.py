"""One registry of named pretrained models (timm-style): what each is, where its file lives, its sha256.

An entry names one weights file three ways: the copy bundled in the package (if shipped), the copy
in the user cache, and the file on the Hugging Face Hub at a pinned revision. All three must have
the entry's sha256; docs/weights.md says how a release fills these fields in.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bsrn_cli.errors import BsrnError

# A pinned revision is a full commit hash or a release tag; never a branch such as "main".
PINNED_REVISION = re.compile(r"^(?:[0-9a-f]{40}|v\d+\.\d+\.\d+)$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    scale: int
    filename: str  # the bundled file's name and the file's path in the Hub repo
    sha256: str
    size: int  # bytes
    description: str
    hub_repo: str
    revision: str
    licence: str
    architecture: str
    config_summary: str
    quality: dict[str, float] = field(default_factory=dict, hash=False)  # measured, from the file's metadata
    bundled: bool = True  # shipped inside the package

    def __post_init__(self) -> None:
        if not PINNED_REVISION.match(self.revision):
            raise ValueError(f"{self.name}: revision {self.revision!r} is not pinned (40-hex commit or vX.Y.Z tag)")
        if not SHA256.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits")
        if self.size <= 0 or "/" not in self.hub_repo:
            raise ValueError(f"{self.name}: needs a positive size and an owner/name Hub repo")

    def bundled_path(self) -> Path | None:
        """Where the shipped copy is (it may still be missing from a damaged install), or None."""
        return bundled_weights_dir() / self.filename if self.bundled else None


_REGISTRY: dict[str, PretrainedModel] = {}


def register_model(entry: PretrainedModel) -> PretrainedModel:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def unregister_model(name: str) -> None:
    _REGISTRY.pop(name, None)


def bundled_weights_dir() -> Path:
    """The repository's ``weights/`` folder, installed as the ``bsrn_cli.weights`` package."""
    try:
        return Path(str(resources.files("bsrn_cli.weights")))
    except ModuleNotFoundError:  # running from a source tree that is not installed
        return Path(__file__).resolve().parents[2] / "weights"


def list_models(pattern: str = "*") -> list[PretrainedModel]:
    return [e for name, e in sorted(_REGISTRY.items()) if fnmatch.fnmatch(name, pattern)]


def get_entry(name: str) -> PretrainedModel:
    if name not in _REGISTRY:
        raise BsrnError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))} (or a .safetensors path)")
    return _REGISTRY[name]


def default_model_name(scale: int) -> str:
    return f"bsrn-fast-x{scale}"


# Preliminary weights; docs/training.md has the commands that made them, docs/weights.md how they
# are published. Quality: Y-PSNR (dB) / SSIM copied from each file's metadata (tests check they agree).
HUB_REPO = "bsrn-project/bsrn-fast"
RELEASE_REVISION = "v0.1.0"
FAST_SUMMARY = "BSRN fast: 48 ch, 20 HPB x 2 LB, BAM, FP skip, RPReLU, light upsampler"
FAST_DESCRIPTION = "BSRN 'fast' preset (BAM + FP skip + RPReLU, light upsampler), x{}, preliminary"

register_model(PretrainedModel(
    name="bsrn-fast-x2", scale=2, filename="bsrn-fast-x2.safetensors",
    sha256="c6b4417534e8e472fdc0deb8729bad30b48c717f7da862749371c502b02610a7", size=4487296,
    description=FAST_DESCRIPTION.format(2), hub_repo=HUB_REPO, revision=RELEASE_REVISION, licence="mit",
    architecture="bsrn", config_summary=FAST_SUMMARY,
    quality={"Set5_psnr": 36.789, "Set5_ssim": 0.955, "Set14_psnr": 32.438, "Set14_ssim": 0.9066}))
register_model(PretrainedModel(
    name="bsrn-fast-x3", scale=3, filename="bsrn-fast-x3.safetensors",
    sha256="e664256b801c145443a55b14933332be83508072e73d44158c2db76adbb66761", size=4513276,
    description=FAST_DESCRIPTION.format(3), hub_repo=HUB_REPO, revision=RELEASE_REVISION, licence="mit",
    architecture="bsrn", config_summary=FAST_SUMMARY,
    quality={"Set5_psnr": 32.826, "Set5_ssim": 0.9113, "Set14_psnr": 29.253, "Set14_ssim": 0.8211}))
register_model(PretrainedModel(
    name="bsrn-fast-x4", scale=4, filename="bsrn-fast-x4.safetensors",
    sha256="1b3e8baa289dd15b7da290400b013784dbfdbc34a22259297309e694bd01287b", size=4552176,
    description=FAST_DESCRIPTION.format(4), hub_repo=HUB_REPO, revision=RELEASE_REVISION, licence="mit",
    architecture="bsrn", config_summary=FAST_SUMMARY,
    quality={"Set5_psnr": 30.849, "Set5_ssim": 0.8732, "Set14_psnr": 27.649, "Set14_ssim": 0.758,
             "B100_psnr": 27.049, "B100_ssim": 0.7162}))

# The real-photo model: the clean x4 above fine-tuned with half of its patches degraded on the fly
# (blur, random downscaling kernel, noise, JPEG; bsrn_cli/degrade.py, preset `real-balanced`) and
# three quarters of the loss on the luminance, preliminary (2400 CPU steps).
# For compressed or noisy photos; on clean bicubic LR the clean model above is better.
register_model(PretrainedModel(
    name="bsrn-real-x4", scale=4, filename="bsrn-real-x4.safetensors",
    sha256="94d63510c80577aeac2e16bedf0486b94b728f2dc6fb536b77a4696fcf08905f", size=4553776,
    description="BSRN 'fast' preset, x4, fine-tuned for real photos (JPEG, noise, blur), preliminary",
    hub_repo=HUB_REPO, revision=RELEASE_REVISION, licence="mit", architecture="bsrn", config_summary=FAST_SUMMARY,
    quality={"Set5_psnr": 30.467, "Set5_ssim": 0.8618, "Set14_psnr": 27.43, "Set14_ssim": 0.7416,
             "B100_psnr": 26.868, "B100_ssim": 0.699, "Set14-jpeg_psnr": 26.042, "Set14-jpeg_ssim": 0.6727,
             "B100-jpeg_psnr": 25.874, "B100-jpeg_ssim": 0.6468}))

