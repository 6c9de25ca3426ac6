#!/usr/bin/env bash
# The whole borrowed-GPU session in one command (the machine has no network): install the
# project from this tree (platformdirs travels as a wheel in .whl/, everything else is in the
# machine's image), then train with the gpu-x* presets and copy results to OUT.
#   OUT=/some/folder scripts/gpu_session.sh --budgets 4=480 --init-x4 weights/bsrn-fast-x4.safetensors
# Prepare on the CPU first: pip download platformdirs --no-deps -d .whl; data/train from
# scripts/prepare_training_data.py; data/val/{Set5,Set14} copied from data/Set5 and data/Set14;
# for the real-photo stages (--budgets ...,real4=SECONDS,real2=SECONDS) also data/val/{Set5,Set14}-jpeg
# made by `bsrn degrade data/Set5 -o data/val/Set5-jpeg -s 4` (and Set14), and for real2
# data/val/{Set5,Set14}-jpeg-x2 made the same way with `-s 2`.
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
mkdir -p "$OUT"
started=$(date +%s)
# An install failure is reported, not fatal: gpu_train.py also runs from the source tree.
{ python3 -m pip install -q --no-index --no-deps --find-links .whl platformdirs &&
  python3 -m pip install -q --no-index --no-deps --no-build-isolation . &&
  (cd /tmp && python3 -c "import bsrn_cli._packed, torch; print('installed; torch', torch.__version__, 'cuda', torch.cuda.is_available())")
} > "$OUT/install.txt" 2>&1 || echo "install failed (see install.txt); running from the source tree" >> "$OUT/install.txt"
echo "install took $(( $(date +%s) - started )) s" >> "$OUT/install.txt"
cat "$OUT/install.txt"
exec python3 scripts/gpu_train.py --out "$OUT" --val data/val --data data/train "$@"
