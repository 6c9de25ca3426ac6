"""Side-by-side crops of one photo upscaled several ways (bicubic and models), for the docs.

Usage: python scripts/compare_crops.py PHOTO OUT.png --box X Y W H [--scale 4]
           [--model bsrn-fast-x4 --model weights/bsrn-real-x4.safetensors] [--zoom 1]
The photo is upscaled as a user would (`bsrn upscale`, packed backend); each panel is the same
box (in input pixels) of one output, labelled with what made it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

LABEL_HEIGHT = 22


def upscale(photo: Path, scale: int, model: str | None, out: Path) -> Image.Image:
    if model is None:
        with Image.open(photo) as image:
            image = image.convert("RGB")
            return image.resize((image.width * scale, image.height * scale), Image.BICUBIC)
    command = [sys.executable, "-m", "bsrn_cli", "upscale", str(photo), "-s", str(scale), "--model", model,
               "-o", str(out), "-q"]
    subprocess.run(command, check=True)
    return Image.open(out).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--box", type=int, nargs=4, metavar=("X", "Y", "W", "H"), required=True)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--zoom", type=int, default=1, help="nearest-neighbour enlargement of each panel")
    args = parser.parse_args()
    x, y, w, h = args.box
    s = args.scale
    panels = []
    with tempfile.TemporaryDirectory() as work:
        for index, model in enumerate([None, *args.model]):
            image = upscale(args.photo, s, model, Path(work) / f"{index}.png")
            crop = image.crop((x * s, y * s, (x + w) * s, (y + h) * s))
            if args.zoom > 1:
                crop = crop.resize((crop.width * args.zoom, crop.height * args.zoom), Image.NEAREST)
            label = "bicubic" if model is None else Path(model).stem
            panels.append((label, crop))
    width = sum(crop.width for _, crop in panels) + 4 * (len(panels) - 1)
    height = panels[0][1].height + LABEL_HEIGHT
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    left = 0
    for label, crop in panels:
        sheet.paste(crop, (left, LABEL_HEIGHT))
        draw.text((left + 4, 4), label, fill="black")
        left += crop.width + 4
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}: {', '.join(label for label, _ in panels)}")


if __name__ == "__main__":
    main()
