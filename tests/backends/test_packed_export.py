"""The packed backend's export, computed with numpy alone, against the torch module it mirrors."""

import numpy as np
import pytest
import torch

from bsrn_cli.backends.packed_export import export_bsrn, ordered_sum
from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.weights import open_weights
from tests.conftest import tiny_model

WEIGHTS = "weights/bsrn-fast-x{}.safetensors"


@pytest.mark.parametrize("n", list(range(1, 40)) + [48, 64, 100, 432, 576, 1000, 4096, 70000])
def test_ordered_sum_adds_in_the_order_torch_does(n):
    rows = np.random.default_rng(n).standard_normal((3, n)).astype(np.float32)
    assert np.array_equal(ordered_sum(rows), torch.from_numpy(rows).sum(1).numpy())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_kernels_and_scales_equal_the_torch_modules_bit_for_bit(scale):
    """Every effective BAM kernel (signs and E(|W|)) and every output scale of the shipped models,
    derived from the file without torch, equals what the torch module computes."""
    weights = open_weights(WEIGHTS.format(scale))
    export = export_bsrn(weights.tensors, weights.config)
    net = weights.network()
    with torch.no_grad():
        kernels = [k for block in net.binary_kernels() for k in block]
        gains = [g.detach().flatten() for block in net.body for g in block.gains]
    assert len(kernels) == len(export.layers) == 120
    for layer, kernel, gain in zip(export.layers, kernels, gains):
        assert np.array_equal(layer.kernel, kernel.numpy())
        assert np.array_equal(layer.scale, (kernel.abs().flatten(1).amax(1) * gain).numpy())


@pytest.mark.parametrize("variant", [{}, {"long_range": "global"}, {"weight_accumulation": "ones"},
                                     {"weight_accumulation": "none", "activation_accumulation": "none"},
                                     {"upsampler": "edsr", "image_skip": "none", "rprelu": False}])
def test_every_bam_variant_exports_the_torch_kernels(variant):
    model = tiny_model(4, "fast", **variant)
    for p in model.parameters():  # away from the initial values, so the accumulation weights matter
        p.data += 0.1 * torch.randn_like(p)
    export = export_bsrn({k: v.numpy() for k, v in model.state_dict().items()}, model.config)
    with torch.no_grad():
        kernels = [k for block in model.binary_kernels() for k in block]
    signs = lambda k: np.where(k < 0, -1, 1)
    for layer, kernel in zip(export.layers, kernels):
        assert np.array_equal(signs(layer.kernel), signs(kernel.numpy()))
        assert np.allclose(np.abs(layer.kernel), kernel.abs().numpy(), rtol=1e-6)


def test_a_missing_or_misshapen_tensor_is_one_line_naming_the_file():
    weights = open_weights(WEIGHTS.format(2))
    tensors = dict(weights.tensors)
    del tensors["body.3.gains.1"]
    with pytest.raises(BsrnError, match=r"^x2\.safetensors: tensors do not match the configuration \(no body\.3\.gains\.1\)$"):
        export_bsrn(tensors, weights.config, "x2.safetensors")
    tensors = dict(weights.tensors, **{"head.weight": np.zeros((48, 3, 5, 5), np.float32)})
    with pytest.raises(BsrnError, match=r"head\.weight has shape \(48, 3, 5, 5\), expected \(48, 3, 3, 3\)"):
        export_bsrn(tensors, weights.config, "x2.safetensors")
