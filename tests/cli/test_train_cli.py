"""`bsrn train` and `bsrn export` end to end: presets, DDP on two CPU processes, signals."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from bsrn_cli.pretrained.weights import read_weights
from tests.conftest import REPO, write_image

TINY_SETS = ["--set", "channels=8", "--set", "hpb_blocks=1"]


def bsrn(*args, env=None, **kwargs):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bsrn_cli", *map(str, args)], capture_output=True, text=True,
                          env=environment, cwd=REPO, **kwargs)


def test_gpu_preset_runs_end_to_end_on_the_cpu_with_a_tiny_budget(tmp_path):
    # The exact preset of the GPU runs (full-size BSRN x4), on the CPU, a few seconds; eager here
    # (compiling takes a minute on 2 cores; tests/train/test_compile.py covers the compiled step).
    images = tmp_path / "hr64"
    for i in range(2):
        write_image(images / f"im{i}.png", size=(64, 56), seed=i)
    out = tmp_path / "gpu"
    result = bsrn("train", "-c", "gpu-x4", images, "--device", "cpu", "--time-budget", "2", "--batch", "1",
                  "--patch", "12", "--val", images, "-o", out, "--threads", "1", "--compile", "off")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] >= 1 and summary["stopped_early"]
    assert "--resume continues" in result.stdout
    _, meta = read_weights(out / "best.safetensors")
    assert meta["training"]["method"] == "bam" and meta["config"]["rprelu"] is True
    config = json.loads((out / "config.json").read_text())
    assert config["compile"] == "off" and config["precision"] == "bf16" and config["batch"] == 1
    assert config["time_budget"] == 2 and config["workers"] == 4


def test_train_then_export_records_method_backbone_data_steps_and_psnr(images, tmp_path):
    run = tmp_path / "run"
    result = bsrn("train", images, "-s", "2", "--backbone", "srresnet", "--method", "bnn", "--set", "channels=8",
                  "--set", "blocks=1", "--set", "loss_y_weight=0.5", "--steps", "3", "--batch", "2", "--patch", "8",
                  "--ema", "0.9", "--checkpoint-every", "1", "-o", run, "--threads", "1")
    assert result.returncode == 0, result.stderr
    target = tmp_path / "exported.safetensors"
    result = bsrn("export", run, "-o", target, "--from", "last", "--val", images)
    assert result.returncode == 0, result.stderr
    _, meta = read_weights(target)
    assert meta["architecture"] == "srresnet" and meta["method"] == "bnn"
    assert meta["training"]["steps"] == 3 and meta["training"]["ema"] is True
    assert meta["training"]["data"] == [str(images)] and "hr_psnr" in meta["metrics"]
    assert meta["training"]["loss"] == "L1, 0.5 of it on the luminance Y"
    assert meta["training"]["degradation"] == "bicubic"
    again = bsrn("export", run, "-o", target)
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_bad_training_input_is_one_line(tmp_path):
    result = bsrn("train", tmp_path / "missing", "--steps", "1")
    assert result.returncode == 1
    assert "no such training folder" in result.stderr and "Traceback" not in result.stderr
    result = bsrn("train", tmp_path, "--method", "xnor")
    assert result.returncode == 1 and "unknown method" in result.stderr


def test_ddp_with_two_cpu_processes_keeps_replicas_identical(images, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "bsrn_cli", "train", str(images), "-s", "2", *TINY_SETS, "--steps", "3", "--batch", "2",
               "--patch", "8", "--device", "cpu", "--threads", "1", "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    first, second = summary["replica_checksums"]
    assert first == second  # gradients were averaged: both processes hold the same weights
    _, meta = read_weights(out / "best.safetensors")
    assert meta["training"]["devices"] == 2 and meta["training"]["batch"] == 4


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(images, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "bsrn_cli", "train", str(images), "-s", "2", *TINY_SETS,
                                "--steps", "1000000", "--batch", "1", "--patch", "8", "--checkpoint-every", "100000",
                                "-o", str(out), "--threads", "1"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = out / "log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)  # the first 50-step record shows the loop is running
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] and summary["step"] >= 50
    assert (out / "last.safetensors").exists() and "Traceback" not in stderr


def test_init_is_repeatable_and_fills_each_tensor_from_the_first_file_that_has_it(images, tmp_path):
    from bsrn_cli.pretrained.weights import save_weights
    from tests.conftest import tiny_model

    x4, x2 = tmp_path / "x4.safetensors", tmp_path / "x2.safetensors"
    save_weights(tiny_model(4, seed=1), x4)
    save_weights(tiny_model(2, seed=2), x2)
    run = tmp_path / "run"
    result = bsrn("train", images, "-s", "2", "--preset", "fast", *TINY_SETS, "--steps", "1", "--batch", "2",
                  "--patch", "8", "--init", x4, "--init", x2, "-o", run, "--threads", "1", "--compile", "off")
    assert result.returncode == 0, result.stderr
    said = result.stdout.replace("\n", "")  # the console wraps long lines
    assert re.search(rf"initialised \d+ tensors from {re.escape(str(x4))}, 2 tensors from {re.escape(str(x2))}", said)
    assert json.loads((run / "config.json").read_text())["init"] == [str(x4), str(x2)]
    _, meta = read_weights(run / "best.safetensors")
    assert meta["training"]["init_from"]["file"] == "x4.safetensors"
    assert meta["training"]["init_from"]["with"][0]["file"] == "x2.safetensors"
