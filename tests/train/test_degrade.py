"""The degradation pipeline (bsrn_cli/degrade.py): each step's effect, range and determinism,
the TOML table's checks, training on degraded patches, and the degraded test sets of
`bsrn degrade` that `bsrn eval` reads."""

import json
import math

import numpy as np
import pytest

from bsrn_cli.degrade import (Degradation, EvalDegradation, blur, gaussian_kernel, gaussian_noise, jpeg,
                              poisson_noise, resize)
from bsrn_cli.errors import BsrnError
from bsrn_cli.evaluation import load_pairs
from bsrn_cli.imresize import imresize
from bsrn_cli.train.config import make_config
from bsrn_cli.train.data import PatchSampler, find_images
from bsrn_cli.train.loop import TrainConfig, train
from tests.cli.test_upscale import bsrn
from tests.conftest import write_image


def smooth_image(h=64, w=64, seed=0) -> np.ndarray:
    """A photo-like uint8 RGB image: smooth gradients plus a few edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [np.sin(3 * x + c) * np.cos(2 * y - c) for c in rng.uniform(0, 3, 3)]
    image = 128 + 100 * np.stack(channels, -1)
    image[h // 3: h // 2, w // 4: w // 2] = (220, 30, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ the steps

def test_gaussian_kernels_are_normalised_and_anisotropic_ones_turn_with_the_angle():
    iso = gaussian_kernel(1.0, 1.0, 0.0)
    assert iso.shape == (7, 7) and math.isclose(iso.sum(), 1.0, rel_tol=1e-6)
    assert np.allclose(iso, iso.T) and np.allclose(iso, iso[::-1, ::-1])
    wide = gaussian_kernel(2.0, 0.5, 0.0)  # wide along x (columns)
    assert wide[6, 0] > wide[0, 6]
    assert np.allclose(gaussian_kernel(2.0, 0.5, math.pi / 2), wide.T, atol=1e-6)
    with pytest.raises(ValueError):
        gaussian_kernel(0.0, 1.0, 0.0)


def test_blur_keeps_flat_areas_and_softens_edges():
    flat = np.full((20, 20, 3), 77, np.uint8)
    assert np.allclose(blur(flat, gaussian_kernel(1.5, 1.5, 0)), 77, atol=1e-3)
    edge = np.zeros((20, 20), np.float32)
    edge[:, 10:] = 255
    soft = blur(edge, gaussian_kernel(1.0, 1.0, 0))
    assert 0 < soft[5, 9] < 128 < soft[5, 10] < 255  # the step is spread over neighbours


def test_bicubic_resize_is_the_protocols_matlab_bicubic_and_the_others_give_the_asked_size():
    image = smooth_image(48, 40).astype(np.float32)
    ours = resize(image, 10, 12, "bicubic")
    assert ours.shape == (12, 10, 3)
    assert np.abs(ours - imresize(image, output_shape=(12, 10))).max() < 1e-3
    for kernel in ("bilinear", "area"):
        assert resize(image, 10, 12, kernel).shape == (12, 10, 3)
    with pytest.raises(ValueError, match="unknown resize kernel"):
        resize(image, 10, 12, "lanczos")


def test_gaussian_noise_has_the_asked_sigma_and_gray_noise_is_equal_on_every_channel():
    image = np.full((200, 200, 3), 128.0, np.float32)
    colour = gaussian_noise(image, 5.0, gray=False, rng=np.random.default_rng(0)) - 128
    assert abs(colour.std() - 5.0) < 0.1 and abs(colour.mean()) < 0.1
    assert not np.allclose(colour[..., 0], colour[..., 1])
    gray = gaussian_noise(image, 5.0, gray=True, rng=np.random.default_rng(0)) - 128
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_poisson_noise_grows_with_brightness_and_scale_zero_adds_none():
    rng = np.random.default_rng(0)
    dark = poisson_noise(np.full((200, 200, 3), 20.0, np.float32), 1.0, False, rng) - 20
    bright = poisson_noise(np.full((200, 200, 3), 200.0, np.float32), 1.0, False, rng) - 200
    assert abs(dark.mean()) < 0.5 and abs(bright.mean()) < 1.0
    assert bright.std() > 2 * dark.std() > 0
    image = smooth_image().astype(np.float32)
    assert np.array_equal(poisson_noise(image, 0.0, False, rng), image)
    gray = poisson_noise(image, 1.0, True, rng) - image
    assert np.allclose(gray[..., 0], gray[..., 2], atol=1e-3)


def test_jpeg_keeps_colours_in_rgb_order_and_loses_more_at_lower_quality():
    image = smooth_image()
    high, low = jpeg(image, 95), jpeg(image, 20)
    assert high.shape == image.shape and high.dtype == np.uint8
    red = high[int(64 / 3) + 3, 20]
    assert red[0] > 180 and red[2] < 90  # still red, not blue: channels were not swapped
    error = lambda out: np.abs(out.astype(int) - image).mean()  # noqa: E731
    assert error(high) < error(low)
    assert jpeg(image[..., 0], 90).shape == (64, 64)
    with pytest.raises(ValueError):
        jpeg(image, 0)


# ------------------------------------------------------------------ the random pipeline

def test_the_pipeline_gives_uint8_lr_of_the_scaled_size_and_repeats_with_the_seed():
    hr = smooth_image(96, 96)
    degrade = Degradation(second_order=1.0)
    first = degrade(hr, 4, np.random.default_rng(3))
    assert first.shape == (24, 24, 3) and first.dtype == np.uint8
    assert np.array_equal(first, degrade(hr, 4, np.random.default_rng(3)))
    others = [degrade(hr, 4, np.random.default_rng(seed)) for seed in range(4, 8)]
    assert not all(np.array_equal(first, other) for other in others)
    clean = imresize(hr, 0.25)
    assert all(np.abs(o.astype(int) - clean).mean() > 0.3 for o in [first, *others])
    with pytest.raises(ValueError, match="not divisible"):
        degrade(hr[:95], 4, np.random.default_rng(0))


def test_with_every_step_off_the_pipeline_is_the_clean_bicubic_lr():
    hr = smooth_image(96, 96)
    off = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0, second_order=0, resize_kernels=("bicubic",))
    lr = off(hr, 4, np.random.default_rng(0))
    assert np.abs(lr.astype(int) - imresize(hr, 0.25).astype(int)).max() <= 1  # rounding only


def test_clean_prob_leaves_that_share_of_patches_clean_and_zero_keeps_the_old_draws():
    hr = smooth_image(96, 96)
    clean = imresize(hr, 0.25).astype(int)
    always = Degradation(clean_prob=1.0)
    assert all(np.abs(always(hr, 4, np.random.default_rng(s)).astype(int) - clean).max() <= 1 for s in range(3))
    half = Degradation(clean_prob=0.5)
    outs = [half(hr, 4, np.random.default_rng(s)) for s in range(200)]
    share = np.mean([np.abs(o.astype(int) - clean).max() <= 1 for o in outs])
    assert 0.4 < share < 0.6
    # clean_prob 0 draws nothing extra, so older tables see the same patches as before: with every
    # step off the pipeline draws blur?, the kernel, noise?, JPEG? and second order?, no more
    off = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0, second_order=0, resize_kernels=("bicubic",))
    used, replay = np.random.default_rng(11), np.random.default_rng(11)
    off(hr, 4, used)
    replay.random(), replay.integers(1), replay.random(), replay.random(), replay.random()
    assert used.random() == replay.random()
    gray = Degradation(clean_prob=1.0)(hr[..., :1], 4, np.random.default_rng(0))
    assert gray.shape == (24, 24, 1)
    assert Degradation.from_config({"clean_prob": 0.25}).clean_prob == 0.25
    with pytest.raises(BsrnError, match="clean_prob"):
        Degradation.from_config({"clean_prob": 2})


def test_config_values_real_bicubic_and_tables_with_checked_keys_and_ranges():
    assert Degradation.from_config("bicubic") is None and Degradation.from_config(None) is None
    assert Degradation.from_config("real") == Degradation()
    table = Degradation.from_config({"jpeg_quality": [70, 80], "resize_kernels": "area", "second_order": 0})
    assert table.jpeg_quality == (70.0, 80.0) and table.resize_kernels == ("area",) and table.second_order == 0
    assert table.to_dict()["jpeg_quality"] == [70.0, 80.0]
    bad = [({"jpeg": 50}, "unknown keys jpeg"), ({"jpeg_quality": [90, 50]}, "ordered range"),
           ({"noise_prob": 1.5}, "probability"), ({"blur_sigma": "wide"}, "a number or"),
           ({"resize_kernels": ["nearest"]}, "resize_kernels"), ("realistic", "must be")]
    for value, message in bad:
        with pytest.raises(BsrnError, match=message):
            Degradation.from_config(value)


def test_a_training_config_takes_the_degradation_from_toml_and_refuses_a_bad_one(tmp_path):
    config_file = tmp_path / "real.toml"
    config_file.write_text('data = ["x"]\n[degradation]\njpeg_quality = [60, 90]\nsecond_order = 0.5\n')
    config = make_config(config_file)
    assert config.degradation == {"jpeg_quality": [60, 90], "second_order": 0.5}
    assert make_config(None, {"data": ["x"]}, ["degradation=real"]).degradation == "real"
    with pytest.raises(BsrnError, match="degradation: unknown keys"):
        TrainConfig(data=["x"], degradation={"quality": 3})


def test_degraded_patches_are_made_from_their_hr_patch_and_training_records_the_degradation(images, tmp_path):
    sampler = PatchSampler.from_paths(find_images([images]), 2, 8, degradation=Degradation())
    assert sampler.lr_images == [None] * 3  # no clean LR is kept
    lr, hr = sampler.sample_uint8(6, 8, np.random.default_rng(0))
    assert lr.shape == (6, 8, 8, 3) and hr.shape == (6, 16, 16, 3)
    again = sampler.sample_uint8(6, 8, np.random.default_rng(0))
    assert np.array_equal(again[0], lr) and np.array_equal(again[1], hr)
    off = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0, second_order=0, resize_kernels=("bicubic",))
    plain = PatchSampler.from_paths(find_images([images]), 2, 8, degradation=off).sample_uint8(
        6, 8, np.random.default_rng(0))
    bicubic = np.stack([imresize(patch.astype(np.float32), 0.5) for patch in plain[1]])
    assert np.abs(plain[0] - bicubic).max() <= 0.5 + 1e-3  # LR is the bicubic of its own HR patch

    from bsrn_cli.pretrained.weights import load_weights
    config = TrainConfig(data=[str(images)], scale=2, model_overrides={"channels": 8, "hpb_blocks": 1}, steps=2,
                         batch=2, lr_patch=8, threads=1, val_data=str(images), val_every=2, checkpoint_every=2,
                         device="cpu", out=str(tmp_path / "run"), degradation={"jpeg_quality": [60, 90]})
    train(config, log=lambda _: None)
    _, meta = load_weights(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["degradation"]["jpeg_quality"] == [60.0, 90.0]
    assert meta["training"]["degradation"]["second_order"] == Degradation().second_order


# ------------------------------------------------------------------ degraded test sets

def test_eval_degradation_of_an_image_depends_on_its_name_and_the_seed_only():
    hr = smooth_image(64, 64)
    make = EvalDegradation(seed=0)
    lr, drawn = make(hr, 4, "zebra")
    assert lr.shape == (16, 16, 3) and lr.dtype == np.uint8
    assert 1 <= drawn["noise_sigma"] <= 4 and 60 <= drawn["jpeg_quality"] <= 90
    assert np.array_equal(make(hr, 4, "zebra")[0], lr)
    assert not np.array_equal(make(hr, 4, "lenna")[0], lr)
    assert not np.array_equal(EvalDegradation(seed=1)(hr, 4, "zebra")[0], lr)
    gray, _ = make(hr[..., 1], 4, "bridge")
    assert gray.shape == (16, 16)


def test_bsrn_degrade_writes_a_set_that_eval_reads_and_refuses_to_overwrite(tmp_path):
    source = tmp_path / "Set" / "HR"
    write_image(source / "a.png", size=(50, 42), seed=1)
    write_image(source / "b.png", size=(40, 40), mode="L", seed=2)
    out = tmp_path / "Set-jpeg"
    made = bsrn("degrade", tmp_path / "Set", "-o", out, "-s", "4", "--jpeg", "70-80")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (f"wrote 2 HR/LR pairs to {out} (x4, JPEG 70-80, noise sigma 1-4, seed 0)")
    record = json.loads((out / "degradation.json").read_text())
    assert record["seed"] == 0 and set(record["images"]) == {"a", "b"}
    assert all(70 <= d["jpeg_quality"] <= 80 for d in record["images"].values())
    pairs = load_pairs(out, 4)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].hr.shape == (40, 48, 3) and pairs[0].lr.shape == (10, 12, 3) and pairs[1].lr.shape == (10, 10)
    expected, _ = EvalDegradation(seed=0, jpeg_quality=(70, 80))(pairs[0].hr, 4, "a")
    assert np.array_equal(pairs[0].lr, expected)

    again = bsrn("degrade", tmp_path / "Set", "-o", out)
    assert again.returncode == 1 and again.stderr.strip() == f"error: {out}: already exists (add --overwrite to write into it)"
    bad = bsrn("degrade", tmp_path / "Set", "-o", tmp_path / "x", "--jpeg", "90-60")
    assert bad.returncode == 2 and "--jpeg: '90-60' is not an ordered range within 1-100" in bad.stderr
    assert not (tmp_path / "x").exists()
