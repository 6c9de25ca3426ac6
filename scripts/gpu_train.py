"""One prepared GPU run: train x4, then x2 and x3 from the x4 body, each within a time budget,
evaluate each on Set5/Set14, and copy weights, logs and results into OUT as they finish.

Usage: python scripts/gpu_train.py --data data/train --val data/val --runs runs/gpu --out $OUT \
           --budgets 4=270,2=100,3=100 [--batch 32] [--patch 48] [--lr 6e-4] [--device cuda]
Run from the repository root (it imports bsrn_cli from there; nothing to install).
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
from bsrn_cli.models.weights import load_weights  # noqa: E402
from bsrn_cli.train.loop import TrainConfig, train, validate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--val", required=True, help="folder holding Set5/ and Set14/")
    parser.add_argument("--runs", default="runs/gpu")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budgets", default="4=270,2=100,3=100", help="scale=seconds, in order")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--init-x4", default=None, help="weights to start x4 from")
    args = parser.parse_args()

    out, runs, val = Path(args.out), Path(args.runs), Path(args.val)
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
               "torch": torch.__version__, "batch": args.batch, "lr_patch": args.patch, "runs": {}}
    x4_best = args.init_x4
    for item in args.budgets.split(","):
        scale, seconds = (int(v) for v in item.split("="))
        started = time.monotonic()
        run_dir = runs / f"x{scale}"
        init = args.init_x4 if scale == 4 else x4_best
        config = TrainConfig(data=args.data, scale=scale, steps=1_000_000, batch=args.batch, lr_patch=args.patch,
                             lr=args.lr, time_budget=seconds, val_data=str(val / "Set5"), val_every=500,
                             checkpoint_every=2000, device=args.device, init=init, out=str(run_dir))
        summary = train(config, log=lambda line: print(line, flush=True))
        best = run_dir / "best.safetensors"
        if scale == 4:
            x4_best = str(best)
        model, meta = load_weights(best)
        device = torch.device(args.device)
        model = model.to(device)
        scores = {name: validate(model, load_pairs(val / name, scale), device) for name in ("Set5", "Set14")}
        rates = [json.loads(line)["it_per_s"] for line in (run_dir / "log.jsonl").read_text().splitlines()
                 if '"it_per_s"' in line]
        results["runs"][f"x{scale}"] = {"steps": summary["step"], "train_seconds": summary["seconds"],
                                        "wall_seconds": time.monotonic() - started,
                                        "median_it_per_s": float(np.median(rates)) if rates else None,
                                        "best_steps": meta["training"]["steps"], **scores}
        shutil.copy(best, out / f"bsrn-fast-x{scale}.safetensors")
        if scale == 4:
            shutil.copy(run_dir / "last.safetensors", out / "x4-last-checkpoint.safetensors")
        with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
            tar.add(runs, arcname="runs", filter=lambda m: None if m.name.endswith(".safetensors") else m)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results["runs"][f"x{scale}"]), flush=True)


if __name__ == "__main__":
    main()
