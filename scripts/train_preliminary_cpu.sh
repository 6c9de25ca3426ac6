#!/usr/bin/env bash
# The preliminary weights' CPU recipe: x4 for 25 minutes, then x2 and x3 for 17 minutes each,
# started from the x4 body. About an hour in total on a 2-core CPU.
# Usage: scripts/train_preliminary_cpu.sh DATA_DIR VAL_DIR RUNS_DIR
set -euo pipefail
data=${1:-data/train}; val=${2:-data/Set5}; runs=${3:-runs/cpu}
common=(-c fast --batch 8 --patch 32 --lr 5e-4 --steps 100000 --val "$val" --val-every 200 --device cpu --threads 2)
bsrn train "$data" -s 4 "${common[@]}" --time-budget 1500 -o "$runs/x4"
bsrn train "$data" -s 2 "${common[@]}" --time-budget 1020 --init "$runs/x4/best.safetensors" -o "$runs/x2"
bsrn train "$data" -s 3 "${common[@]}" --time-budget 1020 --init "$runs/x4/best.safetensors" -o "$runs/x3"
