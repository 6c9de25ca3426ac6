import json

import numpy as np

import pytest
import torch

from bsrn_cli.pretrained.weights import load_weights, read_weights, save_weights
from bsrn_cli.train.checkpoint import load_checkpoint
from bsrn_cli.train.data import PatchSampler, find_images
from bsrn_cli.train.loop import TrainConfig, learning_rate, train
from tests.conftest import tiny_model, write_image

TINY = {"channels": 8, "hpb_blocks": 1}


def _config(images, tmp_path, **changes):
    values = dict(data=[str(images)], scale=2, model_overrides=TINY, steps=4, batch=2, lr_patch=8,
                  warmup_steps=1, threads=1, val_data=str(images), val_every=2, checkpoint_every=2, device="cpu",
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


def test_init_from_several_files_takes_each_tensor_from_the_first_that_has_it(images, tmp_path):
    from bsrn_cli.errors import BsrnError
    from bsrn_cli.train.loop import initialise_from_files

    x4, x2 = tmp_path / "x4.safetensors", tmp_path / "x2.safetensors"
    save_weights(tiny_model(4, seed=1), x4, training={"steps": 4})
    save_weights(tiny_model(2, seed=2), x2, training={"steps": 2})
    source4, source2 = read_weights(x4)[0], read_weights(x2)[0]
    target = tiny_model(2, seed=3)
    counts, lineage = initialise_from_files(target, [str(x4), str(x2)])
    state = target.state_dict()
    from_x2 = {k for k in state if k not in source4 or source4[k].shape != state[k].shape}
    assert from_x2 and any(k.startswith("body.") for k in state)
    for name, tensor in state.items():  # the body from the x4 file, the upsampler from the x2 one
        assert torch.equal(tensor, (source2 if name in from_x2 else source4)[name]), name
    assert counts == [len(state) - len(from_x2), len(from_x2)]
    assert lineage["file"] == "x4.safetensors" and lineage["training"] == {"steps": 4}
    assert lineage["with"] == [{"file": "x2.safetensors", "scale": 2, "training": {"steps": 2}, "tensors": len(from_x2)}]
    with pytest.raises(BsrnError, match="x4.safetensors: no tensor of this model is left to fill"):
        initialise_from_files(tiny_model(2, seed=3), [str(x2), str(x4)])
    # the same through a run: the weights record both files
    lines = []
    train(_config(images, tmp_path, steps=1, init=[str(x4), str(x2)], val_data=None), log=lines.append)
    assert f"initialised {counts[0]} tensors from {x4}, {counts[1]} tensors from {x2}" in lines
    _, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["init_from"]["with"][0]["file"] == "x2.safetensors"


def test_learning_rate_warms_up_then_follows_cosine():
    config = TrainConfig(data=[], steps=100, lr=1.0, warmup_steps=10, schedule="cosine")
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 50) == pytest.approx(0.5)
    assert learning_rate(config, 100) == pytest.approx(0.0)
    budgeted = TrainConfig(data=[], steps=10**6, lr=1.0, warmup_steps=0, time_budget=100, schedule="cosine")
    assert learning_rate(budgeted, 5, elapsed=50) == pytest.approx(0.5)


def test_patches_are_aligned_lr_hr_pairs(images):
    sampler = PatchSampler.from_paths(find_images([images]), scale=2, lr_patch=8)
    lr, hr = sampler.sample(4, 8, np.random.default_rng(0))
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert 0 <= lr.min() and lr.max() <= 1
    # LR came from HR by bicubic: the 2x2 block means of HR track LR closely.
    pooled = torch.nn.functional.avg_pool2d(hr, 2)
    assert (pooled - lr)[..., 2:-2, 2:-2].abs().mean() < 0.1


def test_default_schedule_is_the_papers_halving():
    config = TrainConfig(data=[])
    assert (config.lr, config.weight_decay, config.batch, config.lr_patch) == (1e-4, 2e-4, 16, 48)
    assert learning_rate(config, 9999) == pytest.approx(1e-4)
    assert learning_rate(config, 10000) == pytest.approx(5e-5)
    assert learning_rate(config, 25000) == pytest.approx(2.5e-5)


def _tensors(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(images, tmp_path):
    straight = _config(images, tmp_path, steps=6, val_data=None, out=str(tmp_path / "straight"), ema=0.9)
    train(straight, log=lambda _: None)
    first = _config(images, tmp_path, steps=6, val_data=None, out=str(tmp_path / "split"), ema=0.9)
    first.time_budget = 1e-9  # stops after one step, as an interruption would, and saves
    assert train(first, log=lambda _: None)["step"] == 1
    lines = []
    resumed = _config(images, tmp_path, steps=6, val_data=None, out=str(tmp_path / "split"), ema=0.9, resume=True)
    assert train(resumed, log=lines.append)["step"] == 6
    assert any("resumed" in line and "step 1" in line for line in lines)
    a, b = _tensors(tmp_path / "straight" / "last.safetensors"), _tensors(tmp_path / "split" / "last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a) and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_restores_the_optimizer_state_exactly(images, tmp_path):
    train(_config(images, tmp_path, steps=3), log=lambda _: None)
    saved = _tensors(tmp_path / "run" / "last.safetensors")
    model = tiny_model(2)
    model.train()
    optimizer = torch.optim.Adam(model.parameters())
    load_checkpoint(tmp_path / "run" / "last.safetensors", model, optimizer)
    for index, values in optimizer.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(values[name], saved[f"optim.{index}.{name}"])
    assert optimizer.param_groups[0]["weight_decay"] == 2e-4


def test_ema_weights_trail_the_trained_weights(images, tmp_path):
    train(_config(images, tmp_path, steps=3, ema=0.5, val_data=None), log=lambda _: None)
    saved = _tensors(tmp_path / "run" / "last.safetensors")
    key = next(k for k in saved if k.startswith("model.") and k.endswith("head.weight"))
    ema_key = "ema." + key[len("model."):]
    assert not torch.equal(saved[key], saved[ema_key])
    # best.safetensors (no validation set) holds the EMA weights.
    best = _tensors(tmp_path / "run" / "best.safetensors")
    assert torch.equal(best[key[len("model."):]], saved[ema_key])


def test_div2k_style_folder_trains_on_hr_and_uses_its_lr_files(tmp_path):
    from bsrn_cli.imresize import imresize
    from bsrn_cli.io.images import read_image_rgb
    from PIL import Image

    root = tmp_path / "DIV2K"
    hr = write_image(root / "DIV2K_train_HR" / "0001.png", size=(40, 32), seed=3)
    lr_dir = root / "DIV2K_train_LR_bicubic" / "X2"
    lr_dir.mkdir(parents=True)
    lr = imresize(read_image_rgb(hr), 0.5)
    Image.fromarray(255 - lr).save(lr_dir / "0001x2.png")  # marked, to see that it is used
    assert find_images([root]) == [hr]
    sampler = PatchSampler.from_paths(find_images([root]), scale=2, lr_patch=8)
    assert np.array_equal(sampler.lr_images[0], 255 - lr)


def test_init_takes_a_registered_model_by_name():
    from bsrn_cli.errors import BsrnError
    from bsrn_cli.train.loop import initialise_from

    model = TrainConfig(data=["x"], preset="fast", scale=4).build_model()
    matched, meta = initialise_from(model, "bsrn-fast-x4")
    assert matched == len(model.state_dict()) and meta["scale"] == 4
    with pytest.raises(BsrnError, match="unknown model 'bsrn-nothing-x4'"):
        initialise_from(model, "bsrn-nothing-x4")


@pytest.mark.skipif(not hasattr(torch.compiler, "set_stance"), reason="regional compile needs torch >= 2.6")
def test_compiled_bf16_run_validates_eagerly_and_records_its_settings(images, tmp_path):
    summary = train(_config(images, tmp_path, steps=2, compile="blocks", precision="bf16"), log=lambda _: None)
    assert summary["step"] == 2
    _, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert (meta["training"]["compile"], meta["training"]["precision"]) == ("blocks", "bf16")
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("val" in r for r in records) and all(0 <= r["data_wait"] <= 1 for r in records if "loss" in r)
