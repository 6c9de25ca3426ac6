"""Equal-budget comparison of the binarization methods on the VDSR backbone at x4 (issue 5).

Every method trains with the same steps, batch, patch, schedule, seed and data, then is
scored on Set5 and Set14 by the evaluation protocol (torch CPU backend); the script writes a
JSON record and the markdown table of docs/reproduction.md. Runs that finished are reused,
interrupted ones resumed (rerun the same command).

    python scripts/reproduce_methods.py --data data/train --sets data \
        --runs runs/repro --json results/bench/reproduction-results.json --table docs/reproduction-table.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bsrn_cli.evaluation import load_pairs, truncated  # noqa: E402
from bsrn_cli.pretrained.weights import load_weights  # noqa: E402
from bsrn_cli.published import published_rows  # noqa: E402
from bsrn_cli.system import cpu_name  # noqa: E402
from bsrn_cli.train.loop import TrainConfig, train, validate  # noqa: E402

METHODS = ("bnn", "dorefa", "abc", "ma", "bam", "fp")
PAPER_NAMES = {"bnn": "VDSR_BNN", "dorefa": "VDSR_DoReFa", "abc": "VDSR_ABC", "bam": "VDSR_BAM", "fp": "VDSR"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["data/train"])
    parser.add_argument("--sets", default="data", help="folder holding Set5/ and Set14/")
    parser.add_argument("--runs", default="runs/repro")
    parser.add_argument("--json", default="results/bench/reproduction-results.json")
    parser.add_argument("--table", default="docs/reproduction-table.md")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=12, help="LR patch (VDSR sees it bicubic-upscaled)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sets = {name: load_pairs(Path(args.sets) / name, args.scale) for name in ("Set5", "Set14")}
    results = {"machine": f"{cpu_name()} ({torch.get_num_threads()} threads)", "torch": torch.__version__,
               "python": platform.python_version(), "backbone": "vdsr", "scale": args.scale,
               "steps": args.steps, "batch": args.batch, "lr_patch": args.patch, "lr": args.lr,
               "data": args.data, "methods": {}}
    out_json = Path(args.json)
    if out_json.exists():
        previous = json.loads(out_json.read_text())
        if all(previous.get(k) == results[k] for k in ("steps", "batch", "lr_patch", "lr", "scale", "data")):
            results["methods"] = previous.get("methods", {})
    for method in args.methods.split(","):
        run = Path(args.runs) / method
        summary_file = run / "summary.json"
        done = summary_file.exists() and json.loads(summary_file.read_text()).get("step") == args.steps
        if not (done and method in results["methods"]):
            started = time.monotonic()
            config = TrainConfig(data=args.data, scale=args.scale, backbone="vdsr", method=method,
                                 steps=args.steps, batch=args.batch, lr_patch=args.patch, lr=args.lr,
                                 weight_decay=0.0, schedule="cosine", warmup_steps=max(args.steps // 10, 1),
                                 grad_clip=1.0, seed=0, device="cpu", log_every=25,
                                 checkpoint_every=25, out=str(run), resume=True)
            summary = train(config, log=lambda line: print(f"[{method}] {line}", flush=True))
            if summary["stopped_early"]:
                print(f"[{method}] stopped early; rerun to resume")
                return
            model, meta = load_weights(run / "best.safetensors")
            scores = {name: validate(model, pairs, torch.device("cpu")) for name, pairs in sets.items()}
            losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()
                      if '"loss"' in line]
            results["methods"][method] = {"scores": scores, "train_minutes": summary["seconds"] / 60,
                                          "final_loss": float(np.mean(losses[-2:])),
                                          "wall_minutes_this_call": (time.monotonic() - started) / 60}
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(results, indent=2))
            print(f"[{method}] Set5 {scores['Set5']['psnr']:.3f}  Set14 {scores['Set14']['psnr']:.3f}", flush=True)
            Path(args.table).write_text(table(results, sets))
    Path(args.table).write_text(table(results, sets))
    print(Path(args.table).read_text())


def table(results: dict, sets: dict) -> str:
    from bsrn_cli.evaluation import score
    from bsrn_cli.imresize import imresize

    s = results["scale"]
    bicubic = {}
    for name, pairs in sets.items():
        rows = score(pairs, lambda lr: imresize(lr, float(s)), s)
        bicubic[name] = (np.mean([r["psnr"] for r in rows]), np.mean([r["ssim"] for r in rows]))
    published = {name: {r["method"]: r for r in published_rows(name, s) if r["source"] == "Xin2020 Table1"}
                 for name in sets}
    lines = ["| method | Set5 PSNR / SSIM (ours) | Set14 PSNR / SSIM (ours) | final train L1 | "
             "Set5 / Set14 PSNR, paper (full training) |", "| --- | --- | --- | --- | --- |",
             f"| bicubic | {trunc(bicubic['Set5'][0])} / {trunc(bicubic['Set5'][1], 4)} | "
             f"{trunc(bicubic['Set14'][0])} / {trunc(bicubic['Set14'][1], 4)} | - | - |"]
    ranked = sorted(results["methods"].items(), key=lambda kv: -kv[1]["scores"]["Set5"]["psnr"])
    for method, record in ranked:
        sc = record["scores"]
        paper = PAPER_NAMES.get(method)
        paper_cell = " / ".join(f"{published[n][paper]['psnr']:.2f}" if paper in published[n] else "-"
                                for n in ("Set5", "Set14")) if paper else "-"
        lines.append(f"| {method} | {trunc(sc['Set5']['psnr'])} / {trunc(sc['Set5']['ssim'], 4)} | "
                     f"{trunc(sc['Set14']['psnr'])} / {trunc(sc['Set14']['ssim'], 4)} | "
                     f"{trunc(record['final_loss'], 4)} | {paper_cell} |")
    return "\n".join(lines) + "\n"


def trunc(value: float, digits: int = 2) -> str:
    """Truncate, never round up."""
    return f"{truncated(value, digits):.{digits}f}"


if __name__ == "__main__":
    main()
