"""`bsrn degrade`: a reproducible degraded test set (bicubic down, mild noise, JPEG) from HR images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bsrn_cli.cli.common import check_scale, console
from bsrn_cli.errors import BsrnError, UsageProblem
from bsrn_cli.io.formats import IMAGE_SUFFIXES


def _range(text: str, option: str, low: float, high: float, integer: bool = False) -> tuple:
    parts = text.split("-") if text.count("-") == 1 else [text, text]
    try:
        values = tuple(int(p) if integer else float(p) for p in parts)
    except ValueError:
        raise UsageProblem(option, f"{text!r} is not a number or a range LOW-HIGH",
                           "e.g. --jpeg 60-90" if integer else "e.g. --noise 1-4") from None
    if not low <= values[0] <= values[1] <= high:
        raise UsageProblem(option, f"{text!r} is not an ordered range within {low:g}-{high:g}",
                           "see bsrn degrade --help")
    return values


def degrade_command(
    source: Annotated[Path, typer.Argument(help="A data set folder (with HR/) or a folder of HR images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write: HR/, LR/X{s}/ and "
                                         "degradation.json (must not exist unless --overwrite).")],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Downscaling factor: 2, 3 or 4.")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draws (with each image's name).")] = 0,
    jpeg_quality: Annotated[str, typer.Option("--jpeg", help="JPEG quality, or a range drawn from per image.")]
    = "60-90",
    noise: Annotated[str, typer.Option("--noise", help="Gaussian noise sigma in grey levels (0-255), or a "
                                       "range drawn from per image.")] = "1-4",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into an existing folder.")] = False,
) -> None:
    """Make a degraded test set (MATLAB-bicubic down, Gaussian noise, JPEG), seeded.

    Each HR image is cropped to a multiple of the scale, then degraded with draws seeded by --seed.

    An image's draws depend only on the seed and its name. `bsrn eval OUT` then scores a model on it.

    Example: bsrn degrade data/Set14 -o data/Set14-jpeg -s 4
    """
    check_scale(scale, "degrade")
    quality = _range(jpeg_quality, "--jpeg", 1, 100, integer=True)
    sigma = _range(noise, "--noise", 0, 50)
    hr_dir = source / "HR" if (source / "HR").is_dir() else source
    if not hr_dir.is_dir():
        raise BsrnError(f"{source}: no such folder")
    paths = sorted(p for p in hr_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not paths:
        raise BsrnError(f"{hr_dir}: no images")
    stems = [p.stem for p in paths]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise BsrnError(f"{hr_dir}: several images are called {clash[0]} (different suffixes); keep one")
    if output.exists() and not overwrite:
        raise BsrnError(f"{output}: already exists (add --overwrite to write into it)")
    if output.resolve() == source.resolve() or output.resolve() == hr_dir.resolve():
        raise BsrnError(f"{output}: is the source folder; choose another output folder")

    from bsrn_cli.degrade import EvalDegradation
    from bsrn_cli.imresize import modcrop
    from bsrn_cli.io.images import read_image_array, save_image_array

    make = EvalDegradation(seed=seed, noise_sigma=sigma, jpeg_quality=quality)
    (output / "HR").mkdir(parents=True, exist_ok=True)
    lr_dir = output / "LR" / f"X{scale}"
    lr_dir.mkdir(parents=True, exist_ok=True)
    draws = {}
    for path in paths:
        try:
            hr = modcrop(read_image_array(path), scale)
        except BsrnError:
            raise
        except Exception as exc:  # a broken file: name it
            raise BsrnError(f"{path}: cannot be read ({exc})") from exc
        lr, drawn = make(hr, scale, path.stem)
        save_image_array(hr, output / "HR" / f"{path.stem}.png")
        save_image_array(lr, lr_dir / f"{path.stem}.png")
        draws[path.stem] = drawn
    record = {"source": str(source), "scale": scale, "seed": seed, "noise_sigma": list(sigma),
              "jpeg_quality": list(quality), "downscale": "MATLAB bicubic (the evaluation protocol's)",
              "images": draws}
    (output / "degradation.json").write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {len(paths)} HR/LR pairs to {output} (x{scale}, JPEG {quality[0]}-{quality[1]}, "
                  f"noise sigma {sigma[0]:g}-{sigma[1]:g}, seed {seed})", markup=False, highlight=False, soft_wrap=True)
