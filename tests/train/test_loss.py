"""The training loss: L1, optionally part of it on the luminance the evaluation scores."""

import pytest
import torch
import torch.nn.functional as F

from bsrn_cli.errors import BsrnError
from bsrn_cli.metrics import rgb_to_y
from bsrn_cli.pretrained.weights import read_weights
from bsrn_cli.train.loop import TrainConfig, train
from bsrn_cli.train.step import LUMA, l1_loss

from tests.train.test_loop import _config


def test_zero_weight_is_the_plain_l1_loss():
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.equal(l1_loss(sr, hr), F.l1_loss(sr, hr))
    assert torch.equal(l1_loss(sr, hr, 0.0), F.l1_loss(sr, hr))


def test_luma_part_ignores_colour_errors_that_keep_y_and_sees_grey_errors():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 6, 6) * 0.5 + 0.25
    # a colour shift with no luminance: orthogonal to the Y weights
    shift = torch.tensor([LUMA[1], -LUMA[0], 0.0]).view(1, 3, 1, 1) * 0.1
    colour = hr + shift
    assert l1_loss(colour, hr, 1.0).item() == pytest.approx(0.0, abs=1e-7)
    assert l1_loss(colour, hr, 0.0).item() == pytest.approx(shift.abs().mean().item(), rel=1e-5)
    assert l1_loss(colour, hr, 0.25).item() == pytest.approx(0.75 * shift.abs().mean().item(), rel=1e-5)
    # a grey error of e on every channel moves Y by e (65.481 + 128.553 + 24.966) / 255
    grey = hr + 0.02
    assert l1_loss(grey, hr, 1.0).item() == pytest.approx(0.02 * 219 / 255, rel=1e-4)
    assert l1_loss(grey, hr, 0.5).item() == pytest.approx(0.5 * 0.02 + 0.5 * 0.02 * 219 / 255, rel=1e-4)


def test_luma_weights_are_the_evaluation_protocols():
    """The loss's Y is the metric's Y (rgb_to_y, MATLAB rgb2ycbcr) up to its offset of 16."""
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 5, 7), torch.rand(1, 3, 5, 7)
    y = lambda t: rgb_to_y(t[0].permute(1, 2, 0).double().numpy() * 255)  # noqa: E731
    expected = abs(y(a) - y(b)).mean() / 255
    assert l1_loss(a, b, 1.0).item() == pytest.approx(expected, rel=1e-5)


def test_weight_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(BsrnError, match=r"loss_y_weight must be in \[0, 1\], not 1.5"):
        TrainConfig(data=[str(tmp_path)], loss_y_weight=1.5)


def test_training_with_a_luma_weight_records_it_in_the_weights(images, tmp_path):
    train(_config(images, tmp_path, steps=2, loss_y_weight=0.75), log=lambda _: None)
    _, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["loss"] == "L1, 0.75 of it on the luminance Y"
    train(_config(images, tmp_path / "plain", steps=1), log=lambda _: None)
    _, meta = read_weights(tmp_path / "plain" / "run" / "best.safetensors")
    assert meta["training"]["loss"] == "L1"
