"""Every binarization method on every backbone: builds, trains, learns a fixed batch, saves, loads."""

import pytest
import torch
import torch.nn.functional as F

from bsrn_cli.errors import BsrnError
from bsrn_cli.networks import quantizers, zoo
from bsrn_cli.networks.methods import METHODS, method_fields
from bsrn_cli.pretrained.weights import load_weights, save_weights

TINY = {"bsrn": {"channels": 8, "hpb_blocks": 1}, "vdsr": {"channels": 8, "blocks": 2},
        "srresnet": {"channels": 8, "blocks": 2}}


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread avoids thread-pool overhead (and oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(backbone: str, method: str, scale: int = 2, **extra):
    torch.manual_seed(0)
    return zoo.build(backbone, scale, method=method, **TINY[backbone], **extra)


@pytest.mark.parametrize("backbone", zoo.BACKBONES)
@pytest.mark.parametrize("method", list(METHODS))
def test_loss_decreases_on_a_fixed_batch(backbone, method):
    model = tiny(backbone, method).train()
    generator = torch.Generator().manual_seed(1)
    lr = torch.rand(4, 3, 8, 8, generator=generator)
    # A target every backbone can reach: a contrast change of the upscaled input.
    hr = 0.6 * F.interpolate(lr, scale_factor=2, mode="nearest") + 0.2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.l1_loss(model(lr), hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize("backbone", zoo.BACKBONES)
@pytest.mark.parametrize("method", ["bnn", "dorefa", "abc", "ma", "bam-a1"])
def test_weights_round_trip_with_method_and_backbone(backbone, method, tmp_path):
    model = tiny(backbone, method, scale=3).eval()
    path = tmp_path / "w.safetensors"
    meta = save_weights(model, path)
    assert meta["architecture"] == backbone and meta["method"] == method
    loaded, _ = load_weights(path)
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        # ABC refits its bases per call; LAPACK may differ in the last bit between calls.
        assert torch.allclose(model(x), loaded(x), atol=1e-5)
    assert loaded(x).shape == (1, 3, 18, 15)


def test_method_names_set_the_bam_ablation_fields():
    assert method_fields("bam-w1") == {"method": "bam", "weight_accumulation": "ones",
                                       "activation_accumulation": "learned"}
    assert method_fields("bam-a2")["activation_accumulation"] == "none"
    assert tiny("vdsr", "bam-w2").config.method_name == "bam-w2"
    with pytest.raises(BsrnError):
        method_fields("xnor")
    with pytest.raises(BsrnError):
        zoo.build("vdsr", 4, method="bam", channels=8, wat=1)


def test_each_binary_method_feeds_binary_values_to_its_convs():
    x = torch.randn(2, 8, 5, 5)
    assert set(quantizers.get("ste_sign")(x).unique().tolist()) <= {-1.0, 1.0}
    assert set(quantizers.get("dorefa_activation")(x).unique().tolist()) <= {0.0, 1.0}
    abc = quantizers.get("abc_activation")
    assert abc(x).unique().numel() <= 2
    assert set(quantizers.get("relu")(x).flatten().tolist()) != {0.0, 1.0}


def test_dorefa_weights_are_plus_minus_the_layer_mean_magnitude():
    w = torch.randn(4, 3, 3, 3)
    q = quantizers.get("layer_scaled_sign")(w)
    assert torch.allclose(q.abs(), w.abs().mean().expand_as(q))
    assert torch.equal(torch.sign(q), torch.sign(w))


def test_abc_weights_fit_better_with_three_bases_than_one_and_pass_gradients():
    torch.manual_seed(0)
    w = torch.randn(8, 8, 3, 3, requires_grad=True)
    one, three = quantizers.ABCWeight(1)(w), quantizers.ABCWeight(3)(w)
    assert three.detach().unique().numel() <= 2 ** 3
    assert (three - w).norm() < (one - w).norm()
    three.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight through


def test_abc_activation_learns_its_shift_and_scale():
    quantizer = quantizers.ABCActivation(bases=2)
    x = torch.rand(3, 4, requires_grad=True)
    quantizer(x).sum().backward()
    assert quantizer.shift.grad is not None and quantizer.beta.grad is not None
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_threshold_and_fp_skip_options_combine_with_bam():
    model = tiny("srresnet", "bam", threshold=True, fp_skip=True, rprelu=True)
    assert model.body[0].thresholds is not None and model.body[0].rprelu is not None
    out = model(torch.rand(1, 3, 6, 6))
    out.mean().backward()
    assert model.body[0].thresholds[0].grad is not None


def test_parameter_counts_of_the_full_size_backbones():
    # VDSR: 20 convs of 64 channels (Kim et al.: 665K for one channel in/out; ours is RGB).
    vdsr = zoo.build("vdsr", 4, method="bam")
    assert 660_000 < sum(p.numel() for p in vdsr.parameters()) < 680_000
    # SRResNet: about 1.5M (Ledig et al.).
    srresnet = zoo.build("srresnet", 4, method="bam")
    assert 1_500_000 < sum(p.numel() for p in srresnet.parameters()) < 1_600_000


def test_packed_backend_takes_only_what_it_can_run():
    from bsrn_cli.backends import get_backend, resolve_backend

    def packed_unsupported(model):
        return get_backend("packed").supports(model.architecture, model.config)

    assert packed_unsupported(tiny("bsrn", "bam")) is None
    assert "vdsr" in packed_unsupported(tiny("vdsr", "bam"))
    assert "dorefa" in packed_unsupported(tiny("bsrn", "dorefa"))
    assert resolve_backend("auto", "cpu", tiny("srresnet", "bnn"))[0].name == "torch"
    with pytest.raises(BsrnError, match="^--backend packed does not run the abc method; use --backend torch$"):
        resolve_backend("packed", "cpu", tiny("bsrn", "abc"))


@pytest.mark.parametrize("backbone", zoo.BACKBONES)
@pytest.mark.parametrize("method", list(METHODS))
def test_the_training_loop_runs_every_method_on_every_backbone(backbone, method, tmp_path):
    from bsrn_cli.train.loop import TrainConfig, train
    from tests.conftest import write_image

    for i in range(2):
        write_image(tmp_path / "hr" / f"im{i}.png", size=(20, 18), seed=i)
    config = TrainConfig(data=[str(tmp_path / "hr")], scale=2, backbone=backbone, method=method,
                         model_overrides=TINY[backbone], steps=2, batch=2, lr_patch=6, threads=1,
                         device="cpu", out=str(tmp_path / "run"), log_every=1)
    summary = train(config, log=lambda _: None)
    assert summary["step"] == 2
    model, meta = load_weights(tmp_path / "run" / "best.safetensors")
    assert meta["architecture"] == backbone and meta["method"] == method
    assert meta["training"]["steps"] == 2
