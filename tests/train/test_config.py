"""TOML configs, shipped presets and command-line overrides."""

import dataclasses

import pytest

from bsrn_cli.errors import BsrnError
from bsrn_cli.train.config import apply_sets, make_config, preset_names, read_config_file


def test_every_shipped_preset_parses_and_builds_its_model():
    assert {"fast", "paper", "gpu-x2", "gpu-x3", "gpu-x4"} <= set(preset_names())
    for name in preset_names():
        config = make_config(name)
        config.build_model()
    gpu = make_config("gpu-x4")
    assert gpu.time_budget == 540 and gpu.device == "cuda" and gpu.scale == 4
    for scale in (2, 3):  # the x4 settings at another scale
        other = make_config(f"gpu-x{scale}")
        assert other == dataclasses.replace(gpu, scale=scale, out=f"runs/gpu-x{scale}")
    paper = make_config("paper")
    assert paper.preset == "paper" and paper.weight_decay == 2e-4 and paper.schedule == "step"
    # the real-photo recipes share the shipped one's degradation table and loss: on the CPU at x2,
    # and on the GPU at x4 and x2
    from bsrn_cli.degrade import Degradation
    x4 = make_config("real-balanced")
    table = Degradation.from_config(x4.degradation)
    assert table.clean_prob == 0.5 and table.jpeg_quality == (55, 95) and table.second_order == 0.0
    assert table.resize_kernels.count("bicubic") == 4
    for name, scale, init, val in (
            ("real-balanced-x2", 2, "weights/bsrn-fast-x2.safetensors", "data/Set14-jpeg-x2"),
            ("gpu-real-x4", 4, "weights/bsrn-real-x4.safetensors", "data/val/Set14-jpeg"),
            ("gpu-real-x2", 2, "weights/bsrn-fast-x2.safetensors", "data/val/Set14-jpeg-x2")):
        other = make_config(name)
        assert other.degradation == x4.degradation and other.loss_y_weight == x4.loss_y_weight == 0.75, name
        assert (other.scale, other.init, other.val_data) == (scale, init, val), name
    gpu = make_config("gpu-real-x2")
    assert (gpu.batch, gpu.device, gpu.lr, gpu.ema, gpu.out) == (64, "cuda", x4.lr, x4.ema, "runs/gpu-real-x2")


def test_file_then_options_then_sets(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('data = ["a"]\nbackbone = "vdsr"\nmethod = "dorefa"\nsteps = 10\nlr = 1e-3\n'
                    '[model]\nchannels = 16\nblocks = 2\n')
    config = make_config(path, {"steps": 20, "lr": None}, ["model.fp_skip=true", "blocks=3", "betas=[0.8, 0.9]"])
    assert config.steps == 20 and config.lr == 1e-3 and config.betas == (0.8, 0.9)
    assert config.model_overrides == {"channels": 16, "blocks": 3, "fp_skip": True}
    model = config.build_model()
    assert model.architecture == "vdsr" and model.config.method == "dorefa" and len(model.body) == 3


def test_a_config_states_only_what_differs_from_its_base(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "parent.toml").write_text(
        'data = ["a"]\nbackbone = "vdsr"\nsteps = 10\nlr = 1e-3\n'
        '[model]\nchannels = 16\nblocks = 2\n[degradation]\njpeg_quality = [60, 90]\nclean_prob = 0.5\n')
    child = tmp_path / "recipes" / "child.toml"
    child.write_text('base = "parent.toml"\nsteps = 20\n[model]\nblocks = 3\n[degradation]\nclean_prob = 0.25\n')
    config = make_config(child)
    assert (config.backbone, config.steps, config.lr) == ("vdsr", 20, 1e-3)
    assert config.model_overrides == {"channels": 16, "blocks": 3}
    assert config.degradation == {"jpeg_quality": [60, 90], "clean_prob": 0.25}
    # a name that is not a .toml path is a shipped preset
    (tmp_path / "x2.toml").write_text('base = "real-balanced"\nscale = 2\n')
    x2, shipped = make_config(tmp_path / "x2.toml"), make_config("real-balanced")
    assert x2.scale == 2 and x2.degradation == shipped.degradation and x2.lr == shipped.lr
    # a plain string replaces a table
    (tmp_path / "plain.toml").write_text('base = "recipes/parent.toml"\ndegradation = "real"\n')
    assert make_config(tmp_path / "plain.toml").degradation == "real"


def test_bad_bases_are_one_line_errors(tmp_path):
    loop_a, loop_b = tmp_path / "a.toml", tmp_path / "b.toml"
    loop_a.write_text('base = "b.toml"\ndata = ["x"]\n')
    loop_b.write_text('base = "a.toml"\n')
    with pytest.raises(BsrnError, match="a.toml: its base leads back to it"):
        read_config_file(loop_a)
    (tmp_path / "c.toml").write_text('base = "no-such-preset"\n')
    with pytest.raises(BsrnError, match="no-such-preset: no such config file or preset"):
        read_config_file(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text('base = 3\n')
    with pytest.raises(BsrnError, match="d.toml: base must be a preset name or a TOML file"):
        read_config_file(tmp_path / "d.toml")


@pytest.mark.parametrize("text, message", [
    ('data = ["a"]\nstepz = 3\n', "unknown training settings stepz"),
    ('data = ["a"\n', "not valid TOML"),
    ('data = ["a"]\nmethod = "xnor"\n', "unknown method"),
    ('data = ["a"]\n[model]\nwidth = 3\n', "width"),
    ('data = ["a"]\nschedule = "linear"\n', "schedule"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BsrnError, match=message):
        make_config(path)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(BsrnError, match="gpu-x4"):
        read_config_file("gpu-x5")


def test_set_values_parse_as_toml_or_stay_strings():
    values = apply_sets({}, ["lr=3e-4", "upsampler=edsr", "precision=\"fp32\"", "model.image_skip=\"nearest\""])
    assert values["lr"] == 3e-4 and values["precision"] == "fp32"
    assert values["model_overrides"] == {"upsampler": "edsr", "image_skip": "nearest"}
    with pytest.raises(BsrnError):
        apply_sets({}, ["nonsense"])
