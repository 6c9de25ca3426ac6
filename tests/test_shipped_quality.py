"""The shipped x4 weights must beat bicubic on Set5 (Y-PSNR, SR protocol) clearly."""

import numpy as np

from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.evaluation import as_network_input, load_pairs, score
from bsrn_cli.imresize import imresize
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.registry import default_model_name


def test_shipped_x4_beats_bicubic_on_set5_by_over_one_db(set5):
    pairs = load_pairs(set5, 4)
    bicubic = np.mean([r["psnr"] for r in score(pairs, lambda lr: imresize(lr, 4.0), 4)])
    model, meta, _ = load_model(default_model_name(4))
    ours = np.mean([r["psnr"] for r in score(pairs, as_network_input(TorchUpscaler(model).upscale), 4)])
    assert ours > bicubic + 1.0, (ours, bicubic)
    # The figure recorded in the weights' metadata is the one measured here.
    assert abs(meta["metrics"]["Set5_psnr"] - ours) < 0.01
