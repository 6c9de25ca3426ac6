import json

import pytest
import torch

from bsrn_cli.models.weights import load_weights, read_weights, save_weights
from bsrn_cli.train.checkpoint import load_checkpoint
from bsrn_cli.train.data import PatchSampler, find_images
from bsrn_cli.train.loop import TrainConfig, learning_rate, train
from tests.conftest import tiny_model, write_image

TINY = {"channels": 8, "hpb_blocks": 1}


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "hr"
    for i in range(3):
        write_image(folder / f"im{i}.png", size=(50, 44), seed=i)
    return folder


def _config(images, tmp_path, **changes):
    values = dict(data=[str(images)], scale=2, model_overrides=TINY, steps=4, batch=2, lr_patch=8,
                  warmup_steps=1, val_data=str(images), val_every=2, checkpoint_every=2, device="cpu",
                  out=str(tmp_path / "run"))
    values.update(changes)
    return TrainConfig(**values)


def test_training_writes_log_checkpoint_and_loadable_best_weights(images, tmp_path):
    summary = train(_config(images, tmp_path), log=lambda _: None)
    run = tmp_path / "run"
    assert summary["step"] == 4 and not summary["stopped_early"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("val" in r for r in records)
    model, meta = load_weights(run / "best.safetensors")
    assert model.scale == 2 and meta["training"]["images"] == 3
    assert (run / "last.safetensors").exists()


def test_resume_continues_from_the_saved_step_and_optimizer(images, tmp_path):
    train(_config(images, tmp_path, steps=2), log=lambda _: None)
    lines = []
    summary = train(_config(images, tmp_path, steps=5, resume=True), log=lines.append)
    assert any("resumed" in line and "step 2" in line for line in lines)
    assert summary["step"] == 5
    model = tiny_model(2)
    model.train()
    optimizer = torch.optim.Adam(model.parameters())
    state = load_checkpoint(tmp_path / "run" / "last.safetensors", model, optimizer)
    assert state["step"] == 5
    assert int(next(iter(optimizer.state.values()))["step"]) == 5


def test_time_budget_stops_cleanly_with_a_checkpoint(images, tmp_path):
    summary = train(_config(images, tmp_path, steps=1000, time_budget=1e-6), log=lambda _: None)
    assert summary["stopped_early"] and summary["step"] == 1
    assert (tmp_path / "run" / "last.safetensors").exists()


def test_init_from_another_scale_copies_the_body_and_records_lineage(images, tmp_path):
    source = tmp_path / "x4.safetensors"
    save_weights(tiny_model(4), source, training={"steps": 99})
    train(_config(images, tmp_path, steps=1, init=str(source), val_data=None), log=lambda _: None)
    _, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["init_from"]["training"] == {"steps": 99}


def test_learning_rate_warms_up_then_follows_cosine():
    config = TrainConfig(data=[], steps=100, lr=1.0, warmup_steps=10)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 50) == pytest.approx(0.5)
    assert learning_rate(config, 100) == pytest.approx(0.0)
    budgeted = TrainConfig(data=[], steps=10**6, lr=1.0, warmup_steps=0, time_budget=100)
    assert learning_rate(budgeted, 5, elapsed=50) == pytest.approx(0.5)


def test_patches_are_aligned_lr_hr_pairs(images):
    sampler = PatchSampler.from_paths(find_images([images]), scale=2, lr_patch=8)
    lr, hr = sampler.sample(4, 8, torch.Generator().manual_seed(0))
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert 0 <= lr.min() and lr.max() <= 1
    # LR came from HR by bicubic: the 2x2 block means of HR track LR closely.
    pooled = torch.nn.functional.avg_pool2d(hr, 2)
    assert (pooled - lr)[..., 2:-2, 2:-2].abs().mean() < 0.1
