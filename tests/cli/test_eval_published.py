"""`bsrn eval --model bicubic` reproduces the published bicubic rows (Xin et al. 2020, Table 1).

Published figures carry two decimals (PSNR) and three (SSIM); ours are compared at the same
precision: rounded PSNR within 0.01 dB, SSIM within 0.002.
"""

import json

import pytest

from tests.cli.test_upscale import bsrn

PUBLISHED = {  # (dataset, scale): (psnr, ssim)
    ("Set5", 2): (33.66, 0.930), ("Set5", 3): (30.39, 0.868), ("Set5", 4): (28.42, 0.810),
    ("Set14", 2): (30.24, 0.869), ("Set14", 3): (27.55, 0.774), ("Set14", 4): (26.00, 0.703),
}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_matches_published_rows(set5, set14, scale):
    result = bsrn("eval", set5, set14, "-s", scale, "--model", "bicubic", "--json")
    assert result.returncode == 0, result.stderr
    for record in map(json.loads, result.stdout.splitlines()):
        psnr, ssim = PUBLISHED[(record["dataset"], scale)]
        assert abs(round(record["psnr"], 2) - psnr) <= 0.01 + 1e-9, record["psnr"]
        assert abs(record["ssim"] - ssim) <= 0.002, record["ssim"]
