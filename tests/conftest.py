"""Shared fixtures: where ../shared/data is, small models, image files made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bsrn_cli.networks.bsrn import BSRN, preset_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BSRN_SHARED_DATA", REPO.parent / "shared" / "data"))


def skip_unless_local(reason: str) -> None:
    """Skip a test whose data or tool is missing, on a developer's machine only: CI (CI=true)
    must have everything the suite reads, so there the missing piece is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


def require_dataset(name: str) -> Path:
    """Set5 and Set14 (../shared/data): required in CI, skipped with the reason elsewhere."""
    path = SHARED_DATA / name
    if not (path / "HR").is_dir():
        skip_unless_local(f"data set {name} not found at {path} (set BSRN_SHARED_DATA)")
    return path


@pytest.fixture
def set5() -> Path:
    return require_dataset("Set5")


@pytest.fixture
def set14() -> Path:
    return require_dataset("Set14")


def tiny_model(scale: int = 2, preset: str = "fast", channels: int = 8, seed: int = 0, **overrides) -> BSRN:
    """A small BSRN (2 LB blocks, 8 channels) with non-trivial random weights, in eval mode."""
    torch.manual_seed(seed)
    model = BSRN(preset_config(preset, scale, channels=channels, hpb_blocks=1, **overrides))
    with torch.no_grad():
        nchw = model.state_dict()
        for name, p in model.named_parameters():
            # Zero-initialised tensors stored as 4-D (the last conv; thresholds and RPReLU shifts,
            # 1-D in the module): give them content.
            if nchw[name].dim() == 4 and p.abs().sum() == 0:
                p.normal_(0, 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def write_image(path: Path, size=(40, 30), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path):
    """A folder of three small random HR images (training data for the loop tests)."""
    folder = tmp_path / "hr"
    for i in range(3):
        write_image(folder / f"im{i}.png", size=(50, 44), seed=i)
    return folder
