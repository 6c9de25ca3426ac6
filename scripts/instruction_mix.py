"""Share of a function's samples per instruction mnemonic, from `perf annotate --stdio` output.

Where a fused pass spends its time (popcount work, float work, loads and stores), e.g. for the
AVX2 pass of the shipped model:

    perf record -e cpu-clock -F 2000 -o /tmp/perf.data python scripts/packed_parts.py --kernels avx2 --passes 5
    perf annotate -i /tmp/perf.data --stdio -s stage_row_avx2_shipped_6 > /tmp/annotate.txt
    python scripts/instruction_mix.py /tmp/annotate.txt

Prints the mnemonics by share, then the shares of a few groups (see GROUPS).
"""

from __future__ import annotations

import argparse
import collections
import re

LINE = re.compile(r"\s*([0-9.]+)\s*:\s*[0-9a-f]+:\s+(\S+)")
GROUPS = {
    "bit counting (xor, popcount or nibble lookup, sums)": ("vpxor", "vpxord", "vpand", "vpaddb", "vpsrlw", "vpshufb",
                                                            "vpsadbw", "vpor", "vpopcntq", "vpaddq", "vpermt2d"),
    "vector loads and stores": ("vmovdqa", "vmovdqu", "vmovaps", "vmovups", "vmovss", "vbroadcastss", "vpbroadcastq",
                                "vmovdqa32", "vmovdqa64", "vmovdqu32", "vmovdqu64"),
    "float arithmetic": ("vmulps", "vaddps", "vsubps", "vcmplt_oqps", "vblendvps", "vcvtdq2ps", "vfmadd231ps"),
    "scalar integer": ("mov", "shl", "add", "or", "cmp", "cmpq", "sub", "lea", "movslq"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("annotate", help="output of perf annotate --stdio for one symbol")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    shares: collections.Counter[str] = collections.Counter()
    with open(args.annotate, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = LINE.match(line)
            if match:
                shares[match.group(2)] += float(match.group(1))
    total = sum(shares.values())
    if not total:
        raise SystemExit(f"{args.annotate}: no annotated instructions (is it perf annotate --stdio output?)")
    for name, share in shares.most_common(args.top):
        print(f"{name:16s} {100 * share / total:6.2f}%")
    print()
    for group, names in GROUPS.items():
        print(f"{group:52s} {100 * sum(shares[n] for n in names) / total:6.2f}%")


if __name__ == "__main__":
    main()
