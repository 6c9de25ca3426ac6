"""Gather the training images named in DATA.md into one folder: BSDS500 train+test and T91.

Usage: python scripts/prepare_training_data.py BSDS500_GIT_DIR DCSCN_GIT_DIR OUT_DIR
(the git directories are snapshots of BIDS/BSDS500 and jiny2001/dcscn-super-resolution).
BSDS500 val is B100, a test set: it is never copied. T91 BMPs become lossless PNGs.
"""

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image


def archive_members(git_dir: str, path: str):
    data = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "HEAD", path],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                yield Path(member.name), tar.extractfile(member).read()


def main(bsds_git: str, dcscn_git: str, out: str) -> None:
    out_dir = Path(out)
    count = 0
    for split in ("train", "test"):
        target = out_dir / f"bsds500_{split}"
        target.mkdir(parents=True, exist_ok=True)
        for name, blob in archive_members(bsds_git, f"BSDS500/data/images/{split}"):
            if name.suffix.lower() == ".jpg":
                (target / name.name).write_bytes(blob)
                count += 1
    target = out_dir / "t91"
    target.mkdir(parents=True, exist_ok=True)
    for name, blob in archive_members(dcscn_git, "data/yang91"):
        if name.suffix.lower() == ".bmp":
            Image.open(io.BytesIO(blob)).convert("RGB").save(target / f"{name.stem}.png", optimize=True)
            count += 1
    print(f"{count} images in {out_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
