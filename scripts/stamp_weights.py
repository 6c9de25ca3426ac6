"""Record how weights were trained and measure them: rewrites the file's bsrn metadata.

Usage: python scripts/stamp_weights.py [--packed] [--note TEXT] WEIGHTS TRAINING_JSON DATASET_DIR...
Sets metadata "training" to the JSON record ("-": keep the file's own record, as `bsrn train`
wrote it), measures Y-PSNR/SSIM on each data set by the protocol of bsrn eval, with the CPU
PyTorch backend (or the packed backend with --packed), and stores them under "metrics";
--note adds what the data sets are to "measured_with".
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bsrn_cli.backends import make_upscaler  # noqa: E402
from bsrn_cli.evaluation import as_network_input, load_pairs, score, truncated  # noqa: E402
from bsrn_cli.pretrained.weights import load_weights, open_weights, save_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights")
    parser.add_argument("training_json")
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--packed", action="store_true", help="measure with the packed backend")
    parser.add_argument("--note", help="what the data sets are, added to measured_with")
    args = parser.parse_args()
    model, meta = load_weights(args.weights)
    backend = "packed" if args.packed else "torch"
    upscale = as_network_input(make_upscaler(open_weights(args.weights), backend, "cpu").upscale)
    metrics = {}
    for dataset in args.datasets:
        rows = score(load_pairs(dataset, model.scale), upscale, model.scale)
        name = Path(dataset).name
        metrics[f"{name}_psnr"] = truncated(float(np.mean([r["psnr"] for r in rows])), 3)
        metrics[f"{name}_ssim"] = truncated(float(np.mean([r["ssim"] for r in rows])), 4)
    training = meta["training"] if args.training_json == "-" else json.loads(Path(args.training_json).read_text())
    measured_with = "bsrn eval protocol, " + ("packed backend" if args.packed else "CPU torch backend")
    if args.note:
        measured_with += f" ({args.note})"
    save_weights(model, args.weights, training=training, metrics={**metrics, "measured_with": measured_with})
    print(args.weights, json.dumps(metrics))


if __name__ == "__main__":
    main()
