"""Convert a PyTorch checkpoint (.pt/.pth) you trust into bsrn weights (.safetensors + bsrn metadata).

Usage: python scripts/convert_checkpoint.py CHECKPOINT OUT.safetensors --scale 4 [--preset fast]
                                            [--config '{"channels": 48}'] [--key state_dict]

bsrn itself never unpickles anything. This script does, once, on a file you choose: it uses
torch.load(weights_only=True) (tensors and plain containers only), but run it only on checkpoints
from a source you trust. The tensors must fit the BSRN configuration given by --preset, --scale and
--config (the same names as `bsrn info` shows); the result loads with `bsrn upscale --model OUT`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bsrn_cli.networks.bsrn import BSRN, preset_config  # noqa: E402
from bsrn_cli.pretrained.weights import save_weights  # noqa: E402

NESTED_KEYS = ("state_dict", "model", "params", "params_ema", "net")


def state_dict_of(checkpoint, key: str | None) -> dict[str, torch.Tensor]:
    """The tensors: under ``key`` when given, else the checkpoint itself or its usual nested entry."""
    if key is not None:
        checkpoint = checkpoint[key]
    elif isinstance(checkpoint, dict) and not any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        found = [k for k in NESTED_KEYS if isinstance(checkpoint.get(k), dict)]
        if not found:
            raise SystemExit(f"no tensors at the top level and none of {', '.join(NESTED_KEYS)}; give --key")
        checkpoint = checkpoint[found[0]]
    tensors = {k.removeprefix("module."): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SystemExit("the checkpoint holds no tensors")
    return tensors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--scale", type=int, required=True, choices=(2, 3, 4))
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--config", default="{}", help="JSON object of configuration overrides")
    parser.add_argument("--key", default=None, help="entry of the checkpoint that holds the state dict")
    args = parser.parse_args(argv)
    if args.output.suffix != ".safetensors":
        raise SystemExit(f"{args.output}: the output must end in .safetensors")
    if args.output.exists():
        raise SystemExit(f"{args.output}: exists; choose a new name")

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = BSRN(preset_config(args.preset, args.scale, **json.loads(args.config)))
    try:
        missing, unexpected = model.load_state_dict(state_dict_of(checkpoint, args.key), strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise SystemExit(f"the tensors do not fit the configuration: {str(exc).splitlines()[-1].strip()}") from exc
    if missing or unexpected:
        raise SystemExit(f"the tensors do not fit the configuration: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    save_weights(model.eval(), args.output, converted_from={"file": args.checkpoint.name, "tool": "convert_checkpoint"})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
