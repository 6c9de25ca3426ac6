"""The compiled training step (torch.compile, inductor on the CPU) equals the eager one."""

import copy

import pytest
import torch

from bsrn_cli.train.step import autocast, compile_network, eager, forward_backward, uncompile
from tests.conftest import tiny_model


def _step(model, compile_mode, lr, hr):
    model = model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    net = compile_network(model, model, compile_mode, torch.device("cpu"))
    loss = forward_backward(net, lr, hr, autocast(torch.device("cpu"), "fp32"), optimizer)
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    optimizer.step()
    return float(loss.detach()), grads, model


@pytest.mark.skipif(not hasattr(torch.compiler, "set_stance"), reason="regional compile needs torch >= 2.6")
def test_one_compiled_step_equals_one_eager_step():
    torch.manual_seed(0)
    model = tiny_model(2, channels=8, rprelu=True, threshold=True)  # 2 LB blocks, every kind of parameter
    lr = torch.rand(2, 3, 12, 12)
    hr = torch.rand(2, 3, 24, 24)
    eager_loss, eager_grads, _ = _step(copy.deepcopy(model), "off", lr, hr)
    compiled_loss, compiled_grads, compiled = _step(copy.deepcopy(model), "blocks", lr, hr)
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    assert compiled_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        assert compiled_grads[name].shape == grad.shape, name
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # Validation runs the compiled blocks eagerly (other shapes, eval mode); undoing works too.
    with eager(), torch.no_grad():
        assert compiled.eval()(torch.rand(1, 3, 7, 9)).shape == (1, 3, 14, 18)
    uncompile(compiled)
    assert all(getattr(b, "_compiled_call_impl", None) is None for b in compiled.body)


def test_per_channel_parameters_are_vectors_saved_as_nchw():
    model = tiny_model(2, channels=8, rprelu=True, threshold=True)
    block = model.body[0]
    assert block.gains[0].shape == (8,) and block.rprelu[0].shift_in.shape == (8,)
    state = model.state_dict()
    assert state["body.0.gains.0"].shape == (1, 8, 1, 1) and state["body.0.thresholds.1"].shape == (1, 8, 1, 1)
    assert state["body.0.rprelu.2.shift_out"].shape == (1, 8, 1, 1) and state["body.0.rprelu.2.prelu.weight"].shape == (8,)
    other = tiny_model(2, channels=8, seed=1, rprelu=True, threshold=True)
    other.load_state_dict(state)
    for name, p in model.named_parameters():
        assert torch.equal(p, dict(other.named_parameters())[name]), name


def test_auto_settings_follow_the_measurements(monkeypatch):
    from bsrn_cli.train import step

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(step, "cpu_has_bf16", lambda: True)
    assert step.resolve("auto", "auto", cpu, 1000) == ("blocks", "bf16")
    assert step.resolve("auto", "auto", cpu, 10) == ("off", "fp32")  # too short to pay for compiling
    assert step.resolve("auto", "fp32", cpu, 1000) == ("off", "fp32")
    assert step.resolve("off", "auto", cpu, 1000) == ("off", "fp32")
    assert step.resolve("blocks", "fp32", cpu, 10) == ("blocks", "fp32")
    assert step.resolve("auto", "auto", cuda, 1000) == ("blocks", "bf16")
    monkeypatch.setattr(step, "cpu_has_bf16", lambda: False)
    assert step.resolve("auto", "auto", cpu, 1000) == ("off", "fp32")
