"""The peer networks of `bsrn bench --peers`: the papers' parameter counts and the output shape."""

import pytest
import torch

from bsrn_cli.networks.peers import PEERS, PUBLISHED_PARAMS_X4, build_peer, parameter_count

# FSRCNN's 12,464 counts weights only; ours adds 173 biases and 172 PReLU slopes (+2.8%).
# ESPCN's published form is (5,64)-(3,32)-(3,r^2) on Y: 24,640 weights at x4, plus 112 biases.
# IMDN (715K) and RLFN (543K) are rounded to the thousand. 3% covers all four.
TOLERANCE = 0.03


@pytest.mark.parametrize("name", PEERS)
def test_parameter_count_matches_the_paper_at_x4(name):
    count = parameter_count(build_peer(name, 4))
    assert count == pytest.approx(PUBLISHED_PARAMS_X4[name], rel=TOLERANCE), count


def test_exact_counts_pin_the_architectures():
    # layer by layer from the papers' descriptions (see the module docstring)
    assert {name: parameter_count(build_peer(name, 4)) for name in PEERS} == \
        {"ESPCN": 24_752, "FSRCNN": 12_809, "IMDN": 715_176, "RLFN": 543_740}
    # the x2 counts the IMDN and RLFN papers publish (694K, 527K): only the upsampler differs
    assert round(parameter_count(build_peer("IMDN", 2)), -3) == 694_000
    assert round(parameter_count(build_peer("RLFN", 2)), -3) == 527_000


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", PEERS)
def test_rgb_in_rgb_out_at_the_scale(name, scale):
    with torch.no_grad():
        out = build_peer(name, scale)(torch.rand(1, 3, 17, 23).contiguous(memory_format=torch.channels_last))
    assert out.shape == (1, 3, 17 * scale, 23 * scale) and torch.isfinite(out).all()


def test_unknown_peer():
    with pytest.raises(ValueError, match="known: ESPCN"):
        build_peer("SRCNN", 4)
