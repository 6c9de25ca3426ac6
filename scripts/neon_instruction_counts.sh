#!/usr/bin/env bash
# AArch64 instructions executed per pixel by the neon and portable paths, counted under
# qemu-aarch64 (no AArch64 machine needed; docs/performance.md). qemu logs every translated block
# with its instructions (-d in_asm) and every block it executes (-d exec,nochain); the sum over
# executed blocks is the instruction count of the whole run. Each workload runs twice with the
# same setup, with and without the kernel work (or one block more), and the difference is divided
# by the pixels: the setup cancels out. Needs aarch64-linux-gnu-gcc and qemu-aarch64. For
# comparison, where gcc and qemu-x86_64 are at hand, the x86-64 portable, popcnt and avx2 paths
# are counted the same way (qemu -cpu max emulates AVX2, not AVX-512).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CC=${CC:-aarch64-linux-gnu-gcc}
"$CC" -static -O3 -std=c99 -ffp-contract=off -Ikernels scripts/kernel_count_driver.c kernels/bitconv.c \
    kernels/floatconv.c -lm -o "$work/driver-aarch64"
H=16 W=16
QEMU=(qemu-aarch64) DRIVER=$work/driver-aarch64
count() { # instructions executed by one run of the driver
    "${QEMU[@]}" -d in_asm,exec,nochain -D "$work/log" "$DRIVER" "$@" >/dev/null
    python3 - "$work/log" <<'PY'
import re, sys
sizes, total, current = {}, 0, None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("IN:"):
        current = None
    elif re.match(r"^0x[0-9a-f]+:\s", line):
        pc = int(line.split(":")[0], 16)
        if current is None:
            current = pc
            sizes[current] = 0
        sizes[current] += 1
    elif line.startswith("Trace "):
        pc = int(re.search(r"\[[0-9a-f]+/([0-9a-f]+)/", line).group(1), 16)
        total += sizes[pc]
print(total)
PY
}
pixels=$((H * W))
report() {
    for path in "$@"; do
        body0=$(count "$path" body 1 $H $W); body1=$(count "$path" body 2 $H $W)
        c30=$(count "$path" conv3 0 $H $W); c31=$(count "$path" conv3 1 $H $W)
        c10=$(count "$path" conv1 0 $H $W); c11=$(count "$path" conv1 1 $H $W)
        python3 -c "
p = $pixels
print(f'$path: one LB block (fused pass) {($body1 - $body0) / p:.0f} instructions per pixel, '
      f'{($body1 - $body0):d} per block on the {p}-pixel map; '
      f'binary 3x3 48->48 alone {($c31 - $c30) / p:.0f} per pixel; 1x1 48->48 alone {($c11 - $c10) / p:.0f} per pixel')"
    done
}
echo "AArch64, $("$CC" --version | head -1), -O3; map ${H}x${W}, 48 channels, shipped configuration, 1 thread"
report portable neon
if command -v gcc >/dev/null && command -v qemu-x86_64 >/dev/null && [ "$(uname -m)" = x86_64 ]; then
    gcc -static -O3 -std=c99 -ffp-contract=off -Ikernels scripts/kernel_count_driver.c kernels/bitconv.c \
        kernels/floatconv.c -lm -o "$work/driver-x86"
    QEMU=(qemu-x86_64 -cpu max) DRIVER=$work/driver-x86
    echo "x86-64 for comparison, $(gcc --version | head -1), -O3, the same workloads"
    report portable popcnt avx2
fi
