import pytest
import torch

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks.bsrn import BSRN, BSRNConfig, preset_config
from bsrn_cli.networks.complexity import count
from tests.conftest import tiny_model

PAPER_PARAMS = 1_216_000  # Xin et al. 2020, BSRN x4


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("preset", ["paper", "fast"])
def test_output_is_scale_times_input(scale, preset):
    model = tiny_model(scale, preset)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 7, 5))
    assert out.shape == (1, 3, 7 * scale, 5 * scale)


def test_paper_x4_parameters_within_five_percent_of_published():
    params = count(BSRN(preset_config("paper", 4))).params
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS < 0.05


def test_paper_x4_macs_for_720p_match_the_paper_reading():
    c = count(BSRN(preset_config("paper", 4)))
    assert c.input_size == (320, 180) and c.output_size == (1280, 720)
    # 40 LB blocks x (48*48*9 + 2*48*48) binary MACs per input pixel.
    assert c.binary_macs == 40 * (48 * 48 * 9 + 2 * 48 * 48) * 320 * 180
    assert abs(c.total_macs - 85e9) / 85e9 < 0.05


def test_body_is_binary_body_has_twenty_hpb_of_two_lb():
    model = BSRN(preset_config("paper", 2))
    assert len(model.body) == 40
    assert [conv.kernel_size[0] for conv in model.body[0].convs] == [3, 1, 1]


def test_effective_kernels_are_plus_minus_scale_per_channel():
    model = tiny_model(2, "paper")
    for kernels in model.binary_kernels():
        for k in kernels:
            per_channel = k.abs().flatten(1)
            assert torch.allclose(per_channel, per_channel[:, :1].expand_as(per_channel))


def test_long_range_global_accumulates_all_earlier_3x3_filters():
    model = BSRN(preset_config("paper", 2, channels=4, hpb_blocks=3))
    assert [b.weight_acc[0].n_terms for b in model.body] == [1, 2, 3, 4, 5, 6]
    model = BSRN(preset_config("paper", 2, channels=4, hpb_blocks=3, long_range="hpb"))
    assert [b.weight_acc[0].n_terms for b in model.body] == [1, 2, 1, 2, 1, 2]


def test_receptive_radius_bounds_the_influence_of_a_pixel():
    model = tiny_model(2, "fast")
    r = model.receptive_radius()
    x = torch.rand(1, 3, 2 * r + 9, 2 * r + 9)
    y = x.clone()
    y[..., 0, 0] = 1 - y[..., 0, 0]
    with torch.no_grad():
        a, b = model(x), model(y)
    changed = (a - b).abs().amax(dim=1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.max() < (r + 1) * 2 and cols.max() < (r + 1) * 2


def test_training_reaches_every_parameter():
    model = BSRN(preset_config("fast", 2, channels=8, hpb_blocks=1))
    with torch.no_grad():
        model.upsampler[0].weight.normal_(0, 0.1)
    model(torch.rand(2, 3, 8, 8)).square().mean().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_invalid_configuration_is_rejected_clearly():
    with pytest.raises(BsrnError, match="scale"):
        BSRNConfig(scale=5)
    with pytest.raises(BsrnError, match="upsampler"):
        BSRNConfig(upsampler="deconv")
    with pytest.raises(BsrnError, match="unknown BSRN configuration fields"):
        BSRNConfig.from_dict({"scale": 2, "colour": "blue"})
