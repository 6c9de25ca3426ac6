"""The training loop: random aligned patches, L1, Adam, periodic validation, safe checkpoints.

Small on purpose but built to grow: every setting lives in :class:`TrainConfig`, the run
directory holds a jsonl log, ``last.safetensors`` (resumable) and ``best.safetensors``
(exportable weights), and a time budget stops the run cleanly at a step boundary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bsrn_cli.backends.torch_backend import tensor_to_uint8
from bsrn_cli.errors import BsrnError
from bsrn_cli.evaluation import as_network_input, load_pairs, score
from bsrn_cli.models.bsrn import BSRN, preset_config
from bsrn_cli.models.weights import read_weights, save_weights
from bsrn_cli.train.checkpoint import load_checkpoint, save_checkpoint
from bsrn_cli.train.data import PatchSampler, find_images


@dataclass
class TrainConfig:
    data: list[str]
    scale: int = 4
    preset: str = "fast"
    model_overrides: dict = field(default_factory=dict)
    steps: int = 10000
    batch: int = 16
    lr_patch: int = 48
    lr: float = 5e-4
    weight_decay: float = 0.0
    schedule: str = "cosine"          # cosine | step (halve every `halve_every` steps)
    halve_every: int = 200000
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0                  # CPU threads for torch; 0 leaves torch's default
    bf16: bool = True                 # autocast on CUDA
    val_data: str | None = None       # data set folder validated on (PSNR on Y)
    val_every: int = 1000
    checkpoint_every: int = 500
    time_budget: float = 0.0          # seconds; 0 = no limit
    init: str | None = None           # weights whose tensors of matching shape start the model
    downscale_larger_than: int = 0    # halve HR images larger than this before training
    out: str = "runs/bsrn"
    resume: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def learning_rate(config: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    """Warm-up, then cosine (over steps or the time budget, whichever runs out first) or halving."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        progress = step / max(config.steps, 1)
        if config.time_budget:
            progress = max(progress, elapsed / config.time_budget)
        progress = min(progress, 1.0)
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.lr * 0.5 ** (step // config.halve_every)
    raise BsrnError(f"unknown schedule {config.schedule!r} (cosine or step)")


def initialise_from(model: BSRN, path: str) -> tuple[int, dict]:
    """Copy every tensor of matching name and shape (e.g. an x4 body into an x2 model).

    Returns how many tensors matched and the source's metadata, kept as the new weights' lineage.
    """
    tensors, meta = read_weights(path)
    own = model.state_dict()
    matched = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    return len(matched), meta


@torch.no_grad()
def validate(model: BSRN, pairs, device: torch.device) -> dict:
    was_training = model.training
    model.eval()

    def run(rgb: np.ndarray) -> np.ndarray:
        lr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255).unsqueeze(0)
        return tensor_to_uint8(model(lr.to(device)).float())

    rows = score(pairs, as_network_input(run), model.scale)
    model.train(was_training)
    return {"psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows]))}


class _StopFlag:
    """Set by SIGINT/SIGTERM so the loop saves and exits at the next step boundary."""

    def __init__(self):
        self.stop = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(config: TrainConfig, log=print) -> dict:
    """Run (or resume) training; returns the final summary. Writes everything under ``config.out``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    paths = find_images(config.data)
    sampler = PatchSampler.from_paths(paths, config.scale, config.lr_patch, device,
                                      config.downscale_larger_than)
    val_pairs = load_pairs(config.val_data, config.scale) if config.val_data else []
    model = BSRN(preset_config(config.preset, config.scale, **config.model_overrides)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    state = {"step": 0, "best_psnr": -1.0, "seconds": 0.0, "images": len(sampler), "init_from": None}
    if config.resume and last_path.exists():
        state = load_checkpoint(last_path, model, optimizer)
        log(f"resumed from {last_path} at step {state['step']}")
    elif config.init:
        matched, source_meta = initialise_from(model, config.init)
        state["init_from"] = {"file": Path(config.init).name, "scale": source_meta.get("scale"),
                              "training": source_meta.get("training")}
        log(f"initialised {matched} tensors from {config.init}")
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.bf16
                else nullcontext())
    listing = "\n".join(sorted(str(p) for p in paths)).encode()
    training_record = {"data": [str(d) for d in config.data], "images": len(sampler),
                       "image_list_sha256": hashlib.sha256(listing).hexdigest(), "scale": config.scale,
                       "batch": config.batch, "lr_patch": config.lr_patch, "device": str(device),
                       "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                       "init_from": state.get("init_from")}

    def export_best(metrics: dict) -> None:
        save_weights(model, best_path, training={**training_record, "steps": state["step"],
                                                  "minutes": round(state["seconds"] / 60, 2)},
                     metrics=metrics)

    def checkpoint() -> None:
        save_checkpoint(last_path, model, optimizer, state)

    started = time.monotonic()
    seconds_before = state["seconds"]
    window_loss, window_steps, window_start = 0.0, 0, time.monotonic()
    model.train()
    with open(out / "log.jsonl", "a") as log_file, _StopFlag() as stop:
        while state["step"] < config.steps:
            step = state["step"]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, time.monotonic() - started)
            lr_batch, hr_batch = sampler.sample(config.batch, config.lr_patch, generator)
            if device.type == "cuda":
                lr_batch = lr_batch.contiguous(memory_format=torch.channels_last)
            with autocast:
                sr = model(lr_batch)
            loss = F.l1_loss(sr.float(), hr_batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state["step"] = step + 1
            state["seconds"] = seconds_before + time.monotonic() - started
            window_loss += float(loss.detach())
            window_steps += 1

            at_end = state["step"] == config.steps
            out_of_time = config.time_budget and time.monotonic() - started >= config.time_budget
            finishing = at_end or out_of_time or stop.stop
            if state["step"] % 50 == 0 or finishing:
                rate = window_steps / max(time.monotonic() - window_start, 1e-9)
                record = {"step": state["step"], "loss": window_loss / window_steps, "lr": optimizer.param_groups[0]["lr"],
                          "it_per_s": rate, "seconds": round(state["seconds"], 1)}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log(f"step {record['step']:>6}  loss {record['loss']:.4f}  {rate:.2f} it/s  "
                    f"{state['seconds'] / 60:.1f} min")
                window_loss, window_steps, window_start = 0.0, 0, time.monotonic()
            if val_pairs and (state["step"] % config.val_every == 0 or finishing):
                metrics = validate(model, val_pairs, device)
                log_file.write(json.dumps({"step": state["step"], "val": metrics}) + "\n")
                log(f"step {state['step']:>6}  val PSNR {metrics['psnr']:.3f} dB  SSIM {metrics['ssim']:.4f}")
                if metrics["psnr"] > state["best_psnr"]:
                    state["best_psnr"] = metrics["psnr"]
                    export_best({f"{Path(config.val_data).name}_psnr": round(metrics["psnr"], 3),
                                 f"{Path(config.val_data).name}_ssim": round(metrics["ssim"], 4)})
            if state["step"] % config.checkpoint_every == 0 or finishing:
                checkpoint()
            if finishing:
                break
    if not val_pairs:
        export_best({})
    summary = {**state, "stopped_early": state["step"] < config.steps, "best": str(best_path)}
    log(json.dumps(summary))
    return summary
