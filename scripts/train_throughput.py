"""Training throughput (patches/s) of `bsrn train` steps: eager or compiled, fp32 or bf16 autocast.

Each variant runs in a fresh process on synthetic batches of the preset's shape (the data
loader is not timed: batches are cut on another thread or are small next to a step): the same
step as the training loop (zero_grad, forward under the precision's autocast, L1 in float32,
backward, gradient clipping, Adam). The first ``--warmup`` steps (compilation included) are
excluded; patches/s is the batch over the median of the timed steps. The load average is
recorded before and after each variant.

    python scripts/train_throughput.py [-c fast] [--batch 16] [--patch 48] [--steps 5] [--warmup 2]
        [--variants off-fp32,off-bf16,blocks-fp32,blocks-bf16,model-fp32,model-bf16]
        [--json results/bench/train-throughput-DATE.json] [--profile results/bench/profile.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_VARIANTS = "off-fp32,off-bf16,blocks-fp32,blocks-bf16,model-fp32,model-bf16"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_variant(args) -> dict:
    """Runs in the child process: time one (compile, precision) variant."""
    import torch

    from bsrn_cli.train.config import read_config_file
    from bsrn_cli.train.loop import TrainConfig
    from bsrn_cli.train.step import autocast, compile_network, forward_backward

    if args.threads:
        torch.set_num_threads(args.threads)
    compile_mode, precision = args.one.split("-")
    values = read_config_file(args.config)
    values["model_overrides"].update(json.loads(args.model) if args.model else {})
    config = TrainConfig(**{**values, "batch": args.batch, "lr_patch": args.patch})
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = config.build_model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    net = compile_network(model, model, compile_mode, device)
    context = autocast(device, precision)
    g = torch.Generator().manual_seed(1)
    p, s = config.lr_patch, config.scale
    # NHWC storage, as the sampler delivers batches.
    lr = torch.rand(config.batch, p, p, 3, generator=g).permute(0, 3, 1, 2).to(device)
    hr = torch.rand(config.batch, p * s, p * s, 3, generator=g).permute(0, 3, 1, 2).to(device)

    def step():
        loss = forward_backward(net, lr, hr, context, optimizer)
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times, cpu_times, losses = [], [], []
    for _ in range(args.warmup + args.steps):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(float(step()))
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        print(f"{args.one}: step {len(times)} {times[-1]:.2f} s (cpu {cpu_times[-1]:.2f} s)", file=sys.stderr, flush=True)
    timed, cpu_timed = times[args.warmup:], cpu_times[args.warmup:]
    threads = torch.get_num_threads()
    result = {"variant": args.one, "compile": compile_mode, "precision": precision,
              "first_step_s": round(times[0], 3), "step_s": [round(t, 4) for t in timed],
              "median_step_s": round(statistics.median(timed), 4),
              "patches_per_s": round(config.batch / statistics.median(timed), 3),
              # CPU seconds of this process per step (all threads): what the step costs when it
              # shares the cores with other work; batch * threads / cpu_s is the rate on idle cores.
              "cpu_s_per_step": round(statistics.median(cpu_timed), 3),
              "patches_per_s_idle_estimate": round(config.batch * threads / statistics.median(cpu_timed), 3),
              "threads": threads, "peak_rss_mib": round(_peak_rss_mib(), 1), "losses": losses}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        result["profile"] = {"self_cpu_total_ms": round(total / 1000, 1), "ops": len(events),
                             "calls": sum(e.count for e in events),
                             "top": [{"name": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1000, 1),
                                      "share": round(e.self_cpu_time_total / total, 3)}
                                     for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.profile_rows]]}
        Path(args.profile.format(variant=args.one)).write_text(table)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="fast", help="preset or TOML file (its model and batch shape)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch side")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (compilation)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="COMPILE-PRECISION, comma-separated; "
                        "COMPILE: off | blocks | model; PRECISION: fp32 | bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="", help="JSON of model overrides, e.g. '{\"hpb_blocks\": 2}'")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--profile", default=None, help="write a torch.profiler table of one more step here ({variant} in the path: one file per variant)")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_variant(args)), flush=True)
        return

    import torch

    from bsrn_cli.train.step import cpu_has_bf16

    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
              "cores": os.cpu_count(), "cpu_bf16": cpu_has_bf16(), "torch": torch.__version__, "device": args.device,
              "config": args.config, "batch": args.batch, "lr_patch": args.patch, "steps": args.steps,
              "warmup": args.warmup, "threads": args.threads or torch.get_num_threads(),
              "model_overrides": json.loads(args.model) if args.model else {},
              "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "variants": []}
    for variant in args.variants.split(","):
        before = load_average()
        command = [sys.executable, __file__, "--one", variant] + [
            a for a in sys.argv[1:]]
        started = time.monotonic()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(done.stderr[-2000:] if done.returncode else "")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            row = {"variant": variant, "error": " | ".join(tail)}
        else:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        row.update({"load_before": before, "load_after": load_average(),
                    "wall_s": round(time.monotonic() - started, 1)})
        record["variants"].append(row)
        if "error" in row:
            print(f"{variant:12s} failed: {row['error']}", flush=True)
        else:
            print(f"{variant:12s} {row['patches_per_s']:8.2f} patches/s  median step {row['median_step_s']:.3f} s  "
                  f"cpu {row['cpu_s_per_step']:.2f} s/step ({row['patches_per_s_idle_estimate']:.2f} idle est.)  "
                  f"first step {row['first_step_s']:.1f} s  load {before[0]:.2f} -> {row['load_after'][0]:.2f}",
                  flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
