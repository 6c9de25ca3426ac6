#!/usr/bin/env bash
# Builds this platform's wheel (pip wheel . -> dist/), installs it in a fresh venv with no C
# compiler reachable (PATH holds only the venv and a few shell tools; every dependency as a
# binary wheel, --only-binary=:all:) and upscales the sample there from outside the checkout.
# The output must equal, byte for byte, what the active environment's bsrn writes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f dist/bsrn-*.whl
pip wheel . -w dist/ --no-deps -q
wheel=$(ls dist/bsrn-*.whl)
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"
python3 -m venv "$work/venv"
mkdir "$work/bin"
for tool in env ls cat; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done
nocc="$work/venv/bin:$work/bin"
# the shell by its absolute path ($BASH): the bare PATH has no bash, and a lookup that cannot
# start would report every compiler missing; the same lookup must find gcc on the normal PATH
env PATH="$PATH" "$BASH" -c "command -v gcc" >/dev/null || { echo "wheel check: the compiler lookup finds no gcc even on the normal PATH" >&2; exit 1; }
for compiler in cc gcc clang c++ g++ x86_64-linux-gnu-gcc; do
    if env PATH="$nocc" "$BASH" -c "command -v $compiler" >/dev/null; then
        echo "wheel check: $compiler is reachable on the bare PATH" >&2
        exit 1
    fi
done
echo "no compiler reachable (cc, gcc, clang, c++, g++)"
env PATH="$nocc" pip install -q --only-binary=:all: "$wheel"
cd "$work"
env PATH="$nocc" python -c "import torch" 2>/dev/null && { echo "wheel check: torch got installed" >&2; exit 1; }
env PATH="$nocc" python -c "from bsrn_cli import _packed as p; print('installed wheel: kernel paths', p.available_paths(), 'default', p.path())"
env PATH="$nocc" bsrn upscale "$repo/samples/ladybird.png" -s 4 -o "$work/wheel.png"
cd "$repo"
bsrn upscale samples/ladybird.png -s 4 -o "$work/dev.png" -q
cmp "$work/wheel.png" "$work/dev.png"
echo "wheel check: the wheel installed without a compiler upscales the sample, identical to this environment's output ($(sha256sum "$work/wheel.png" | cut -c1-16))"
