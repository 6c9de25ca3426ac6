import pytest
import torch

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks import quantizers as q


def test_binarize_maps_zero_and_negative_zero_to_plus_one():
    x = torch.tensor([-2.0, -1e-7, -0.0, 0.0, 3.0])
    assert q.binarize(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]


def test_ste_sign_gradient_passes_inside_clip_and_stops_outside():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = q.ste_sign(x, clip_value=1.0)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    y.backward(torch.arange(1.0, 7.0))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]


def test_ste_sign_without_clip_is_identity_gradient():
    x = torch.tensor([-5.0, 0.2, 7.0], requires_grad=True)
    q.ste_sign(x, clip_value=None).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_scaled_sign_uses_mean_abs_per_output_channel():
    w = torch.tensor([[[[1.0, -3.0]]], [[[-0.5, -0.5]]]])  # 2 out channels, 1x1x2
    out = q.ScaledSign()(w)
    assert out.tolist() == [[[[2.0, -2.0]]], [[[-0.5, -0.5]]]]


def test_weight_accumulator_none_is_sign_of_centred_own_filter_times_scale():
    w_old = torch.randn(2, 1, 1, 3)
    w_own = torch.tensor([[[[1.0, 2.0, 6.0]]], [[[-1.0, -2.0, 0.0]]]])
    out = q.WeightAccumulator(2, mode="none")([w_old, w_own])
    # per channel: mean 3 -> signs (-,-,+), scale 3; mean -1 -> signs (+,-,+), scale 1
    assert out.tolist() == [[[[-3.0, -3.0, 3.0]]], [[[1.0, -1.0, 1.0]]]]


def test_weight_accumulator_ones_adds_filters_before_sign():
    w1 = torch.tensor([[[[4.0, -4.0, 0.0, 0.0]]]])
    w2 = torch.tensor([[[[-1.0, 1.0, 2.0, -2.0]]]])
    out = q.WeightAccumulator(2, mode="ones")([w1, w2])
    # sum = (3, -3, 2, -2): signs (+,-,+,-); scale is E|w2| = 1.5
    assert out.tolist() == [[[[1.5, -1.5, 1.5, -1.5]]]]


def test_weight_accumulator_learned_a_receive_gradient():
    acc = q.WeightAccumulator(3, mode="learned")
    assert acc.a.tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    ws = [torch.randn(4, 4, 1, 1) for _ in range(3)]
    (acc(ws) * torch.randn(4, 4, 1, 1)).sum().backward()
    assert acc.a.grad is not None and acc.a.grad.abs().sum() > 0


def test_weight_accumulator_brings_3x3_into_1x1_by_spatial_mean():
    w3 = torch.zeros(1, 1, 3, 3)
    w3[0, 0, 0, 0] = 9.0  # spatial mean 1
    w1 = torch.tensor([[[[-0.5]]]])
    assert q.WeightAccumulator(2, "ones").accumulate([w3, w1]).item() == pytest.approx(0.5)


def test_activation_accumulator_learned_matches_equation_10():
    acc = q.ActivationAccumulator(2, channels=2, mode="learned").eval()
    with torch.no_grad():
        acc.b_scale.copy_(torch.tensor([2.0, 0.5]))
    a1 = torch.tensor([[[[1.0]], [[3.0]]]])   # channel mean 2
    a2 = torch.tensor([[[[-2.0]], [[0.0]]]])  # channel mean -1
    expected = 2.0 * 2.0 * a1 + 0.5 * -1.0 * a2
    assert torch.allclose(acc.combine([a1, a2]), expected)


def test_activation_accumulator_ablations():
    a1, a2 = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    assert torch.equal(q.ActivationAccumulator(2, 3, "ones").combine([a1, a2]), a1 + a2)
    assert torch.equal(q.ActivationAccumulator(2, 3, "none").combine([a1, a2]), a2)


def test_activation_accumulator_b_scale_gets_gradient_through_sign():
    acc = q.ActivationAccumulator(2, channels=3, mode="learned")
    a1, a2 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    (q.ste_sign(acc([a1, a2])) * torch.randn(2, 3, 4, 4)).sum().backward()
    assert acc.b_scale.grad.abs().sum() > 0


def test_resolver_accepts_names_dicts_modules_and_rejects_rest():
    assert q.get(None) is None
    assert isinstance(q.get("ste_sign"), q.SteSign)
    assert q.get({"name": "ste_sign", "clip_value": 2.0}).clip_value == 2.0
    module = q.ScaledSign()
    assert q.get(module) is module
    with pytest.raises(BsrnError, match="unknown quantizer"):
        q.get("sgn")
    with pytest.raises(BsrnError):
        q.get(3)


def test_bad_accumulation_mode_is_a_clear_error():
    with pytest.raises(BsrnError, match="weight accumulation mode"):
        q.WeightAccumulator(2, mode="sometimes")
