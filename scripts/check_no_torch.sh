#!/usr/bin/env bash
# The install without torch: `pip install .` in a fresh venv, then the README's upscale of the
# sample. torch must not be importable there, and the output must equal, byte for byte, what the
# full install (the active environment, with torch) writes.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q .
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "no-torch check: torch is importable in the venv made without it" >&2
    exit 1
fi
"$work/venv/bin/bsrn" upscale samples/ladybird.png -s 4 -o "$work/no-torch.png"
bsrn upscale samples/ladybird.png -s 4 -o "$work/full.png" -q
cmp "$work/no-torch.png" "$work/full.png"
echo "no-torch check: pip install . without torch upscales the sample, identical to the full install's output"
