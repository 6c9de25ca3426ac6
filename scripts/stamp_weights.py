"""Record how weights were trained and measure them: rewrites the file's bsrn metadata.

Usage: python scripts/stamp_weights.py WEIGHTS TRAINING_JSON DATASET_DIR...
Sets metadata "training" to the JSON record, measures Y-PSNR/SSIM on each data set with the
CPU PyTorch backend (the protocol of bsrn eval) and stores them under "metrics".
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bsrn_cli.backends.torch_backend import TorchUpscaler  # noqa: E402
from bsrn_cli.evaluation import as_network_input, load_pairs, score  # noqa: E402
from bsrn_cli.pretrained.weights import load_weights, save_weights  # noqa: E402


def main(weights: str, training_json: str, *datasets: str) -> None:
    model, meta = load_weights(weights)
    upscale = as_network_input(TorchUpscaler(model, "cpu").upscale)
    metrics = {}
    for dataset in datasets:
        rows = score(load_pairs(dataset, model.scale), upscale, model.scale)
        name = Path(dataset).name
        metrics[f"{name}_psnr"] = round(float(np.mean([r["psnr"] for r in rows])), 3)
        metrics[f"{name}_ssim"] = round(float(np.mean([r["ssim"] for r in rows])), 4)
    training = json.loads(Path(training_json).read_text())
    save_weights(model, weights, training=training, metrics={**metrics, "measured_with": "bsrn eval protocol, CPU torch backend"})
    print(weights, json.dumps(metrics))


if __name__ == "__main__":
    main(*sys.argv[1:])
