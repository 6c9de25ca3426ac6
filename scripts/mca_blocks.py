"""Modelled cycles of the largest basic blocks of one kernel function, by llvm-mca.

Where a machine has no hardware counters (a VM: `perf stat -e cycles` says "not supported"),
LLVM's machine-code analyser still tells, per basic block of the compiled kernel, how many cycles
one pass of it takes on a given core's model when it runs in a loop: an estimate of the
throughput limit of each phase of a fused pass. For example the AVX2 pass of the shipped model
on Zen 3:

    python scripts/mca_blocks.py stage_row_avx2_shipped_6 --mcpu znver3

compiles kernels/bitconv.c to assembly with the build's flags (gcc, -O3 -std=c99
-ffp-contract=off), cuts the function at its labels, and prints for each block of at least
--min instructions: its label, instructions, a few telling mnemonics (vpshufb: nibble lookups of
the bit counts, vcvtdq2ps: counts turned into floats, vmovmskps: sign bits packed) and
llvm-mca's cycles per iteration (--iterations passes of the block back to back; jumps and calls
left out). Needs gcc and llvm-mca (Debian: llvm).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("vpshufb", "vpsadbw", "vpopcntq", "vcvtdq2ps", "vmovmskps", "vfmadd231ps")


def basic_blocks(assembly: str, function: str) -> list[tuple[str, list[str]]]:
    """(label, instructions) of each basic block of ``function`` in GCC's assembly output: cut at
    the labels and after each jump (a block that loops to its own label is one loop's body)."""
    lines = assembly.splitlines()
    try:
        start = lines.index(f"{function}:")
    except ValueError:
        raise SystemExit(f"{function}: not in the assembly of kernels/bitconv.c") from None
    blocks, label, current = [], function, []
    for line in lines[start + 1:]:
        if line.startswith(f"\t.size\t{function},"):
            break
        if re.match(r"^\.?\w+:", line):
            blocks.append((label, current))
            label, current = line[:-1], []
        elif line.startswith("\t") and not line.startswith("\t."):
            current.append(line)
            if line.split()[0].startswith("j"):  # a jump ends a basic block too: the rest is "label+N"
                blocks.append((label, current))
                label, current = f"{label.split('+')[0]}+{len(blocks)}", []
    blocks.append((label, current))
    return blocks


def modelled_cycles(instructions: list[str], mcpu: str, iterations: int) -> float:
    body = [i for i in instructions if not i.split()[0].startswith(("j", "call", "ret"))]
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as handle:
        handle.write("\n".join(body) + "\n")
    report = subprocess.run(["llvm-mca", f"-mcpu={mcpu}", f"-iterations={iterations}", handle.name],
                            capture_output=True, text=True, check=True).stdout
    Path(handle.name).unlink()
    return int(re.search(r"Total Cycles:\s+(\d+)", report).group(1)) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", help="a function of kernels/bitconv.c, e.g. stage_row_avx2_shipped_6")
    parser.add_argument("--mcpu", default="znver3", help="llvm-mca's core model (znver3, skylake, icelake-client...)")
    parser.add_argument("--min", type=int, default=40, help="smallest block reported, in instructions")
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    assembly = subprocess.run(["gcc", "-O3", "-std=c99", "-ffp-contract=off", f"-I{ROOT / 'kernels'}", "-S",
                               str(ROOT / "kernels" / "bitconv.c"), "-o", "-"],
                              capture_output=True, text=True, check=True).stdout
    print(f"{args.function}, llvm-mca -mcpu={args.mcpu}: blocks of >= {args.min} instructions")
    print(f"{'block':<12} {'instr':>6} {'cycles/pass':>12}  mnemonics")
    for label, instructions in basic_blocks(assembly, args.function):
        if len(instructions) < args.min:
            continue
        counts = {m: sum(i.split()[0] == m for i in instructions) for m in MARKERS}
        marks = ", ".join(f"{m} {n}" for m, n in counts.items() if n)
        print(f"{label:<12} {len(instructions):>6} {modelled_cycles(instructions, args.mcpu, args.iterations):>12.1f}  {marks}")


if __name__ == "__main__":
    main()
