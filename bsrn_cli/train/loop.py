"""The training loop: random aligned patches, L1, Adam, EMA, validation, safe checkpoints, DDP.

Every setting lives in :class:`TrainConfig` (a TOML file and command-line overrides fill it,
config.py); the run folder holds ``config.json``, a jsonl log, ``last.safetensors``
(resumable: model, EMA, Adam state, loop state) and ``best.safetensors`` (the best validated
weights in the shipped format). A time budget, SIGINT and SIGTERM stop the run cleanly at a
step boundary. Under ``torchrun`` the model is wrapped in DistributedDataParallel (NCCL on
CUDA, gloo on the CPU); rank 0 alone validates, logs and writes files.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from bsrn_cli.backends.torch_backend import tensor_to_uint8
from bsrn_cli.degrade import Degradation
from bsrn_cli.errors import BsrnError
from bsrn_cli.evaluation import as_network_input, load_pairs, score
from bsrn_cli.networks import zoo
from bsrn_cli.pretrained.loader import looks_like_path, resolve_entry
from bsrn_cli.pretrained.registry import get_entry
from bsrn_cli.pretrained.weights import read_weights, save_weights
from bsrn_cli.train.checkpoint import load_checkpoint, save_checkpoint
from bsrn_cli.train.data import PatchSampler, find_images, to_device
from bsrn_cli.train.step import (COMPILE_MODES, PRECISIONS, autocast, compile_network, eager, forward_backward,
                                 loss_description, resolve, uncompile)

SCHEDULES = ("step", "cosine")


@dataclass
class TrainConfig:
    """Defaults are the paper's recipe (Xin et al. 2020, section 4.1): batch 16, LR patch
    48, Adam (0.9, 0.999), weight decay 2e-4, lr 1e-4 halved every 200 DIV2K epochs (10000
    steps at batch 16), L1. The presets in ``bsrn_cli/train/presets/`` change what they need."""

    data: list[str]
    scale: int = 4
    backbone: str = "bsrn"            # bsrn | vdsr | srresnet
    preset: str | None = None         # BSRN's network preset (fast | paper); None: fast
    method: str | None = None         # fp | bnn | dorefa | abc | ma | bam | bam-w1 ... (None: the preset's)
    model_overrides: dict = field(default_factory=dict)
    steps: int = 10000
    batch: int = 16
    lr_patch: int = 48
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 2e-4
    schedule: str = "step"            # step: halve every `halve_every` steps | cosine: to 0 over steps/budget
    halve_every: int = 10000
    warmup_steps: int = 0
    grad_clip: float = 0.0            # max gradient norm; 0 = off
    ema: float = 0.0                  # EMA decay of the weights (e.g. 0.999); 0 = off
    loss_y_weight: float = 0.0        # share of the L1 loss on the luminance Y instead of RGB (step.l1_loss)
    seed: int = 0
    device: str = "auto"
    threads: int = 0                  # CPU threads for torch; 0 leaves torch's default
    precision: str = "auto"           # fp32 | bf16 (autocast) | auto: bf16 on CUDA and on CPUs with bf16 (step.py)
    compile: str = "auto"             # torch.compile: auto | on (= blocks) | off | model | blocks (step.py)
    workers: int = 0                  # CUDA: threads cutting batches ahead of the step (0: 2); a CPU cuts in line
    val_data: str | None = None       # data set folder validated on (PSNR on Y)
    val_every: int = 1000
    log_every: int = 50
    checkpoint_every: int = 500
    time_budget: float = 0.0          # seconds; 0 = no limit
    init: str | list[str] | None = None  # weights whose tensors of matching shape start the model; several:
                                         # each tensor from the first file that has it
    downscale_larger_than: int = 0    # halve HR images larger than this before training
    degradation: str | dict = "bicubic"  # LR: "bicubic" (the protocol's), "real" or a table (bsrn_cli/degrade.py)
    out: str = "runs/bsrn"
    resume: bool = False

    def __post_init__(self):
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.betas = tuple(self.betas)
        if self.schedule not in SCHEDULES:
            raise BsrnError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if isinstance(self.compile, bool):  # compile = true / false in a TOML file
            self.compile = "on" if self.compile else "off"
        if self.compile not in COMPILE_MODES:
            raise BsrnError(f"compile must be one of {', '.join(COMPILE_MODES)}, not {self.compile!r}")
        if self.precision not in PRECISIONS:
            raise BsrnError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.workers < 0:
            raise BsrnError(f"workers must be 0 (automatic) or more, not {self.workers}")
        Degradation.from_config(self.degradation)  # names, types and ranges checked now
        if not 0.0 <= self.ema < 1.0:
            raise BsrnError(f"ema must be a decay in [0, 1), not {self.ema}")
        if not 0.0 <= self.loss_y_weight <= 1.0:
            raise BsrnError(f"loss_y_weight must be in [0, 1], not {self.loss_y_weight}")
        for name in ("steps", "batch", "lr_patch", "val_every", "log_every", "checkpoint_every", "halve_every"):
            if getattr(self, name) < 1:
                raise BsrnError(f"{name} must be positive, not {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def build_model(self) -> nn.Module:
        return zoo.build(self.backbone, self.scale, method=self.method, preset=self.preset, **self.model_overrides)


def _device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise BsrnError("--device cuda: no CUDA device is available to torch")
        return torch.device("cuda", local_rank)
    return torch.device(requested)


def learning_rate(config: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    """Warm-up, then halving every ``halve_every`` steps, or cosine (over steps or the time
    budget, whichever runs out first, so a budgeted run still ends at a low learning rate)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        progress = step / max(config.steps, 1)
        if config.time_budget:
            progress = max(progress, elapsed / config.time_budget)
        progress = min(progress, 1.0)
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * 0.5 ** (step // config.halve_every)


def initialise_from(model: nn.Module, path: str, taken: set | None = None) -> tuple[int, dict]:
    """Copy every tensor of matching name and shape (e.g. an x4 body into an x2 model).

    ``path`` is a weights file or a registered model's name (``bsrn-fast-x4``). Tensors named in
    ``taken`` (filled from an earlier file) are left alone, and the names copied are added to it.
    Returns how many tensors matched and the source's metadata, kept as the new weights' lineage.
    """
    if not Path(path).exists() and not looks_like_path(path):
        path, _ = resolve_entry(get_entry(path))
    tensors, meta = read_weights(path)
    own = model.state_dict()
    taken = set() if taken is None else taken
    matched = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape and k not in taken}
    if not matched:
        raise BsrnError(f"{path}: no tensor matches this model (another backbone?)" if not taken else
                        f"{path}: no tensor of this model is left to fill (the files before it gave them all)")
    model.load_state_dict(matched, strict=False)
    taken.update(matched)
    return len(matched), meta


def initialise_from_files(model: nn.Module, paths: list[str]) -> tuple[list[int], dict]:
    """:func:`initialise_from` for several files in order: each tensor comes from the first file
    that has it with a matching shape (an x4 body and an x2 upsampler into an x2 model: the x4
    file, then the x2 one). Returns the counts per file and the lineage: the first file's, with
    the others under ``with``."""
    taken: set = set()
    counts, lineage = [], None
    for path in paths:
        matched, meta = initialise_from(model, path, taken)
        counts.append(matched)
        record = {"file": Path(path).name, "scale": meta.get("scale"), "training": meta.get("training")}
        if lineage is None:
            lineage = record
        else:
            lineage.setdefault("with", []).append({**record, "tensors": matched})
    return counts, lineage


@torch.no_grad()
def validate(model: nn.Module, pairs, device: torch.device) -> dict:
    was_training = model.training
    model.eval()

    def run(rgb: np.ndarray) -> np.ndarray:
        lr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255).unsqueeze(0)
        return tensor_to_uint8(model(lr.to(device)).float())

    rows = score(pairs, as_network_input(run), model.scale)
    model.train(was_training)
    return {"psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows]))}


class EMA:
    """Exponential moving average of the parameters (buffers copied): validated and exported."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs.detach().to(mine.dtype), 1.0 - self.decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)


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


class _Prefetcher:
    """Cuts the next batches on background threads while the device works (numpy releases the GIL).

    Each worker has its own generator, drawn from the run's; ``pin``: batches come in pinned
    host memory, so the copy to the GPU does not block.
    """

    def __init__(self, sampler: PatchSampler, batch: int, patch: int, rng: np.random.Generator,
                 workers: int = 1, pin: bool = False, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 2 * workers))
        self._stop = threading.Event()
        seeds = rng.integers(2**63, size=workers)
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          args=(sampler, batch, patch, np.random.default_rng(int(seed)), pin))
                         for seed in seeds]
        for thread in self._threads:
            thread.start()

    def _run(self, sampler, batch, patch, rng, pin):
        while not self._stop.is_set():
            item = sampler.sample_uint8(batch, patch, rng)
            if pin:
                item = tuple(torch.from_numpy(a).pin_memory() for a in item)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def next(self):
        return self._queue.get()

    def close(self):
        self._stop.set()


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def train(config: TrainConfig, log: Callable[[str], None] = print,
          progress: Callable[[dict], None] | None = None) -> dict:
    """Run (or resume) training; returns the final summary. Writes everything under ``config.out``.

    ``progress`` (rank 0 only) gets a dict per logged window: step, steps, loss, it_per_s,
    seconds, eta_seconds and, after validation, psnr.
    """
    rank, world, local_rank = _distributed()
    device = _device(config.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    main = rank == 0
    if not main:
        log = lambda _line: None  # noqa: E731
        progress = None
    out = Path(config.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # same initial weights on every rank
    rng = np.random.default_rng([config.seed, rank])

    paths = find_images(config.data)
    degradation = Degradation.from_config(config.degradation)
    sampler = PatchSampler.from_paths(paths, config.scale, config.lr_patch, config.downscale_larger_than,
                                      degradation)
    val_pairs = load_pairs(config.val_data, config.scale) if (config.val_data and main) else []
    model = config.build_model().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    ema = EMA(model, config.ema) if config.ema else None

    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    state = {"step": 0, "best_psnr": -1.0, "seconds": 0.0, "images": len(sampler), "init_from": None}
    if config.resume and last_path.exists():
        state = load_checkpoint(last_path, model, optimizer, ema.model if ema else None)
        # The batch stream continues where it stopped (single process: a resumed run equals an
        # uninterrupted one); under DDP the other ranks reseed from the step.
        if rank == 0 and "rng" in state:
            rng.bit_generator.state = state["rng"]
        else:
            rng = np.random.default_rng([config.seed, rank, state["step"]])
        log(f"resumed from {last_path} at step {state['step']}")
    elif config.resume:
        log(f"no checkpoint at {last_path}: starting a new run")
    if not (config.resume and last_path.exists()) and config.init:
        sources = [config.init] if isinstance(config.init, str) else list(config.init)
        counts, state["init_from"] = initialise_from_files(model, sources)
        if ema:
            ema.model.load_state_dict(model.state_dict())
        log("initialised " + ", ".join(f"{n} tensors from {p}" for n, p in zip(counts, sources)))
    if main:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None,
                                                  find_unused_parameters=True)
    eager_net = net
    compile_mode, precision = resolve(config.compile, config.precision, device, config.steps - state["step"])
    net = compile_network(net, model, compile_mode, device)
    precision_context = autocast(device, precision)
    log(f"device {device.type}, precision {precision}, compile {compile_mode}")
    listing = "\n".join(sorted(str(p) for p in paths)).encode()
    cfg = model.config
    training_record = {"backbone": config.backbone, "method": cfg.method_name,
                       "data": [str(d) for d in config.data], "images": len(sampler),
                       "image_list_sha256": hashlib.sha256(listing).hexdigest(), "scale": config.scale,
                       "batch": config.batch * world, "lr_patch": config.lr_patch, "device": str(device.type),
                       "devices": world,
                       "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                       "ema": config.ema, "loss": loss_description(config.loss_y_weight),
                       "precision": precision, "compile": compile_mode,
                       "init_from": state.get("init_from"),
                       "degradation": degradation.to_dict() if degradation else "bicubic"}
    val_name = Path(config.val_data).name if config.val_data else None
    eval_model = ema.model if ema else model

    def export_best(metrics: dict) -> None:
        save_weights(eval_model, best_path, training={**training_record, "steps": state["step"],
                                                       "minutes": round(state["seconds"] / 60, 2)},
                     metrics=metrics)

    def checkpoint() -> None:
        state["rng"] = rng.bit_generator.state
        save_checkpoint(last_path, model, optimizer, state, ema.model if ema else None)

    def agree(flag: bool) -> bool:
        """Every rank stops at the same step (time budgets and signals differ per process)."""
        if world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # On CUDA batches are cut ahead on worker threads (pinned host memory, copied without
    # blocking); on a CPU the step itself uses every core and batches are cut in line, which
    # also keeps a resumed single-process run identical to an uninterrupted one.
    prefetch = (_Prefetcher(sampler, config.batch, config.lr_patch, rng, workers=config.workers or 2, pin=True)
                if device.type == "cuda" else None)
    started = time.monotonic()
    seconds_before = state["seconds"]
    window_loss, window_steps, window_start, window_wait = 0.0, 0, time.monotonic(), 0.0
    steps_this_call = 0
    model.train()
    log_file = open(out / "log.jsonl", "a") if main else None
    try:
        with _StopFlag() as stop:
            while state["step"] < config.steps:
                step = state["step"]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config, step, time.monotonic() - started)
                waited = time.monotonic()
                if prefetch is not None:
                    lr_batch, hr_batch = to_device(*prefetch.next(), device=device)
                else:
                    lr_batch, hr_batch = sampler.sample(config.batch, config.lr_patch, rng, device)
                window_wait += time.monotonic() - waited
                try:
                    loss = forward_backward(net, lr_batch, hr_batch, precision_context, optimizer,
                                            config.loss_y_weight)
                except Exception as exc:  # torch.compile fails lazily, at the first call
                    if compile_mode == "off" or steps_this_call:
                        raise
                    log(f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                        "training without it")
                    uncompile(model)
                    net, compile_mode = eager_net, "off"
                    training_record["compile"] = "off (failed)"
                    loss = forward_backward(net, lr_batch, hr_batch, precision_context, optimizer,
                                            config.loss_y_weight)
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema:
                    ema.update(model)
                state["step"] = step + 1
                state["seconds"] = seconds_before + time.monotonic() - started
                window_loss += float(loss.detach())
                window_steps += 1
                steps_this_call += 1

                at_end = state["step"] == config.steps
                out_of_time = bool(config.time_budget) and time.monotonic() - started >= config.time_budget
                finishing = agree(at_end or out_of_time or stop.stop)
                if main and (state["step"] % config.log_every == 0 or finishing):
                    rate = window_steps / max(time.monotonic() - window_start, 1e-9)
                    left = config.steps - state["step"]
                    if config.time_budget:
                        left = min(left, max(config.time_budget - (time.monotonic() - started), 0) * rate)
                    record = {"step": state["step"], "loss": window_loss / window_steps,
                              "lr": optimizer.param_groups[0]["lr"], "it_per_s": rate,
                              "patches_per_s": rate * config.batch * world,
                              "data_wait": round(window_wait / max(time.monotonic() - window_start, 1e-9), 4),
                              "seconds": round(state["seconds"], 1)}
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    if progress:
                        progress({**record, "steps": config.steps, "eta_seconds": left / max(rate, 1e-9)})
                    else:
                        log(f"step {record['step']:>6}  loss {record['loss']:.4f}  {rate:.2f} it/s ({record['patches_per_s']:.1f} patches/s)  "
                            f"{state['seconds'] / 60:.1f} min")
                    window_loss, window_steps, window_start, window_wait = 0.0, 0, time.monotonic(), 0.0
                if val_pairs and (state["step"] % config.val_every == 0 or finishing):
                    with eager():  # whole images of other sizes: no recompilation
                        metrics = validate(eval_model, val_pairs, device)
                    log_file.write(json.dumps({"step": state["step"], "val": metrics}) + "\n")
                    log_file.flush()
                    if progress:
                        progress({"step": state["step"], "steps": config.steps, "psnr": metrics["psnr"]})
                    log(f"step {state['step']:>6}  val PSNR {metrics['psnr']:.3f} dB  SSIM {metrics['ssim']:.4f}")
                    if metrics["psnr"] > state["best_psnr"]:
                        state["best_psnr"] = metrics["psnr"]
                        export_best({f"{val_name}_psnr": round(metrics["psnr"], 3),
                                     f"{val_name}_ssim": round(metrics["ssim"], 4)})
                if main and (state["step"] % config.checkpoint_every == 0 or finishing):
                    checkpoint()
                if finishing:
                    break
    finally:
        if prefetch is not None:
            prefetch.close()
        if log_file is not None:
            log_file.close()
    if main and not val_pairs:
        export_best({})
    summary = {**{k: v for k, v in state.items() if k != "rng"}, "stopped_early": state["step"] < config.steps, "best": str(best_path), "world_size": world}
    if world > 1:
        sums = [None] * world
        dist.all_gather_object(sums, _checksum(model))
        summary["replica_checksums"] = sums
        dist.barrier()
        dist.destroy_process_group()
    if main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(json.dumps(summary))
    return summary
