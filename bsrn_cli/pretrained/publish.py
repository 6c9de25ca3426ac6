"""A Hub-ready folder: the weights files byte for byte, config.json, and a model card README.md.

The card's results come from each file's own metadata (what ``scripts/stamp_weights.py``
measured), so nothing in it is typed by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.registry import HUB_REPO
from bsrn_cli.pretrained.weights import FORMAT_NAME, FORMAT_VERSION, read_weights, sha256_file

CARD_TAGS = ("super-resolution", "image-to-image", "binarized-neural-network", "bsrn", "safetensors")


@dataclass(frozen=True)
class ExportItem:
    name: str  # registry name, or the file's stem
    source: Path  # a verified local file
    filename: str  # name in the exported folder and the Hub repo
    licence: str | None  # from the registry; None for a plain file


@dataclass(frozen=True)
class ExportedFile:
    filename: str
    sha256: str
    size: int


def _folder_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _datasets(metas: list[dict]) -> list[str]:
    names = {key[: -len("_psnr")] for meta in metas for key in meta.get("metrics", {}) if key.endswith("_psnr")}
    usual = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
    return sorted(names, key=lambda n: (usual.index(n) if n in usual else len(usual), n))


def _cell(metrics: dict, dataset: str) -> str:
    psnr, ssim = metrics.get(f"{dataset}_psnr"), metrics.get(f"{dataset}_ssim")
    if psnr is None:
        return "-"
    return f"{psnr} / {ssim}" if ssim is not None else f"{psnr}"


def model_card(repo_id: str, licence: str, rows: list[tuple[ExportItem, dict, ExportedFile]]) -> str:
    datasets = _datasets([meta for _, meta, _ in rows])
    lines = ["---", f"license: {licence}", "library_name: bsrn", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {tag}" for tag in CARD_TAGS]
    lines += ["---", "", f"# {repo_id}", "",
              "Binarized super-resolution networks (BSRN with the bit-accumulation mechanism, Xin et al., ECCV 2020) "
              "for the `bsrn` command-line upscaler. Weights are safetensors with the architecture, configuration, "
              "training record and measured quality in the header metadata (key `bsrn`); no pickle anywhere.", "",
              "## Results", "",
              "Y-channel PSNR (dB) / SSIM, scale-pixel border cropped, MATLAB-bicubic LR (the `bsrn eval` protocol), "
              "as recorded in each file's metadata.", ""]
    lines.append("| file | scale | " + " | ".join(f"{d} PSNR / SSIM" for d in datasets) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in datasets) + " |")
    for item, meta, exported in rows:
        metrics = meta.get("metrics", {})
        lines.append(f"| {exported.filename} | x{meta['scale']} | "
                     + " | ".join(_cell(metrics, d) for d in datasets) + " |")
    measured_with = sorted({m.get("metrics", {}).get("measured_with") for _, m, _ in rows} - {None})
    if measured_with:
        lines += ["", "Measured with: " + "; ".join(measured_with) + "."]
    lines += ["", "## Training", ""]
    for item, meta, exported in rows:
        training = meta.get("training") or {}
        facts = [f"{key}: {training[key]}" for key in ("steps", "minutes", "device_name", "data", "preliminary")
                 if key in training]
        lines.append(f"- `{exported.filename}`: " + ("; ".join(facts) if facts else "no training record"))
    lines += ["", "## Files", "", "| file | sha256 | bytes |", "| --- | --- | --- |"]
    lines += [f"| {e.filename} | `{e.sha256}` | {e.size} |" for _, _, e in rows]
    lines += ["", "## Use", "", "With the `bsrn` command-line tool installed:", "", "```bash",
              "bsrn models download bsrn-fast-x4   # optional: bsrn upscale fetches what it needs",
              "bsrn upscale photo.jpg -s 4", "```", "",
              "`bsrn` downloads these files at the revision its registry pins and refuses any file whose sha256 "
              "differs from the one recorded there.", ""]
    return "\n".join(lines)


def export_hub(folder: Path, items: list[ExportItem], repo_id: str = HUB_REPO,
               licence: str | None = None) -> list[ExportedFile]:
    """Write the folder; refuse one that already holds files, and two items with one file name."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BsrnError(f"{folder}: exists and is not an empty folder; choose a new one")
    names = [item.filename for item in items]
    if len(set(names)) != len(names):
        raise BsrnError(f"two models would be exported under one file name: {', '.join(sorted(names))}")
    licences = {item.licence for item in items if item.licence}
    if licence is None:
        if len(licences) > 1:
            raise BsrnError(f"the models have different licences ({', '.join(sorted(licences))}); give --licence")
        licence = licences.pop() if licences else "mit"
    metas = [read_weights(item.source)[1] for item in items]  # refuses pickles and files without bsrn metadata
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        rows, config = [], {"library_name": "bsrn", "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                            "models": {}}
        for item, meta in zip(items, metas):
            target = staging / item.filename
            shutil.copyfile(item.source, target)
            exported = ExportedFile(item.filename, sha256_file(target), target.stat().st_size)
            rows.append((item, meta, exported))
            config["models"][item.filename] = {
                "name": item.name, "scale": meta["scale"], "architecture": meta["architecture"],
                "config": meta["config"], "sha256": exported.sha256, "size": exported.size,
                "metrics": meta.get("metrics", {})}
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(model_card(repo_id, licence, rows), encoding="utf-8")
        os.chmod(staging, _folder_mode())
        os.replace(staging, folder)  # an empty existing folder is replaced; the result appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [exported for _, _, exported in rows]
