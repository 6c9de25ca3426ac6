"""One prepared GPU run with the shipped presets: x4 (then x2/x3 from the x4 body if budgets
are given, and the real-photo models as "real4=SECONDS" / "real2=SECONDS"), each within its time
budget; evaluate each on Set5/Set14 (the real-photo models on degraded copies made by `bsrn
degrade`: Set14-jpeg and Set5-jpeg at x4, Set14-jpeg-x2 and Set5-jpeg-x2 at x2, and clean Set5);
time CUDA inference; write weights, logs and a results record into OUT as each part finishes.

Usage (from the repository root, after scripts/gpu_session.sh installed the project):
    python scripts/gpu_train.py --out $OUT --budgets 4=480 [--init-x4 weights/bsrn-fast-x4.safetensors]
        [--set batch=64 ...] [--device cuda] [--data data/train] [--val data/val]
Smoke test on the CPU: python scripts/gpu_train.py --out /tmp/gpu-smoke --budgets 4=30 --device cpu \
        --set batch=2 --set lr_patch=16 --set val_every=5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bsrn_cli.evaluation import load_pairs  # noqa: E402
from bsrn_cli.pretrained.weights import load_weights  # noqa: E402
from bsrn_cli.train.config import make_config  # noqa: E402
from bsrn_cli.train.loop import train, validate  # noqa: E402


def inference_speed(model, device: torch.device, seconds: float = 20.0) -> dict:
    """Median time of a 320x180 -> 720p (x4) forward pass in fp32 and fp16 (kernels precomputed)."""
    h, w = (720 // model.scale, 1280 // model.scale)
    x = torch.rand(1, 3, h, w, device=device)
    model = model.to(device).eval()
    result = {"input": f"{w}x{h}", "output": f"{w * model.scale}x{h * model.scale}"}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        net = model.to(dtype)
        with torch.no_grad():
            kernels = net.binary_kernels()
            times = []
            deadline = time.monotonic() + seconds / 2
            while time.monotonic() < deadline or len(times) < 5:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                net(x.to(dtype), kernels)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        result[f"{name}_ms_median"] = float(np.median(times[2:]) * 1000)
        result[f"{name}_runs"] = len(times) - 2
    model.float()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--budgets", default="4=480",
                        help="scale=seconds (or real4=/real2=seconds for the real-photo models), in order (x4 first)")
    parser.add_argument("--data", default=None, help="training folder (default: the preset's)")
    parser.add_argument("--val", default="data/val", help="folder holding Set5/ and Set14/")
    parser.add_argument("--runs", default=None, help="run folders (default: OUT/runs)")
    parser.add_argument("--init-x4", default=None, help="weights to start x4 from")
    parser.add_argument("--init-real", default=None, help="weights to start the real-photo x4 from "
                        "(default: the preset's, the shipped bsrn-real-x4)")
    parser.add_argument("--init-real2", default=None, help="weights to start the real-photo x2 from "
                        "(default: the preset's)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for the preset")
    parser.add_argument("--speed-seconds", type=float, default=20.0)
    args = parser.parse_args()

    out = Path(args.out)
    runs = Path(args.runs) if args.runs else out / "runs"
    val = Path(args.val)
    out.mkdir(parents=True, exist_ok=True)
    cuda = args.device == "cuda"
    results = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__, "runs": {}}
    x4_best = args.init_x4
    for item in args.budgets.split(","):
        stage, seconds = item.split("=")
        real = stage in ("real4", "real2")
        scale, seconds = (int(stage[4:]) if real else int(stage)), int(seconds)
        name = f"real-x{scale}" if real else f"x{scale}"
        started = time.monotonic()
        run_dir = runs / name
        suffix = "" if scale == 4 else f"-x{scale}"
        # the first set is the validation that picks the kept weights
        sets = (f"Set14-jpeg{suffix}", f"Set5-jpeg{suffix}", "Set5") if real else ("Set5", "Set14")
        options = {"time_budget": float(seconds), "device": args.device, "out": str(run_dir),
                   "val_data": str(val / sets[0]), "data": [args.data] if args.data else None}
        if real:
            init = args.init_real if scale == 4 else args.init_real2
            if init:
                options["init"] = init
        else:
            options["init"] = args.init_x4 if scale == 4 else x4_best
        config = make_config(f"gpu-real-x{scale}" if real else f"gpu-x{scale}", options, args.sets)
        summary = train(config, log=lambda line: print(line, flush=True))
        best = run_dir / "best.safetensors"
        if scale == 4 and not real:
            x4_best = str(best)
        model, meta = load_weights(best)
        device = torch.device(args.device)
        model = model.to(device)
        scores = {s: validate(model, load_pairs(val / s, scale), device) for s in sets}
        rates = [json.loads(line)["it_per_s"] for line in (run_dir / "log.jsonl").read_text().splitlines()
                 if '"it_per_s"' in line]
        results["runs"][name] = {"steps": summary["step"], "train_seconds": summary["seconds"],
                                 "wall_seconds": time.monotonic() - started, "batch": config.batch,
                                 "lr_patch": config.lr_patch, "compile": config.compile, "precision": config.precision,
                                 "median_it_per_s": float(np.median(rates[1:] or rates)) if rates else None,
                                 "best_steps": meta["training"]["steps"], "init": config.init, **scores}
        shutil.copy(best, out / (f"bsrn-{name}.safetensors" if real else f"bsrn-fast-x{scale}.safetensors"))
        with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
            tar.add(runs, arcname="runs", filter=lambda m: None if m.name.endswith(".safetensors") else m)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results["runs"][name]), flush=True)
    if cuda and args.speed_seconds > 0:
        model, _ = load_weights(out / "bsrn-fast-x4.safetensors") if (out / "bsrn-fast-x4.safetensors").exists() \
            else (None, None)
        if model is not None:
            results["inference_x4"] = inference_speed(model, torch.device("cuda"), args.speed_seconds)
            (out / "results.json").write_text(json.dumps(results, indent=2))
            print(json.dumps(results["inference_x4"]), flush=True)


if __name__ == "__main__":
    main()
