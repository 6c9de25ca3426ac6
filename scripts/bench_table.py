"""Markdown tables from `bsrn bench --json --layers` output (figures truncated, never rounded up).

Usage: bsrn bench -s 4 --threads 1 --threads 2 --rounds 5 --layers --json > B.json
       python scripts/bench_table.py B.json
"""

import json
import math
import sys


def floor(value: float, digits: int = 0) -> str:
    return f"{math.floor(value * 10 ** digits) / 10 ** digits:.{digits}f}"


def main(path: str) -> None:
    record = json.load(open(path))
    runs = record["runs"]
    print("| threads | packed (ms) | PyTorch float (ms) | speed-up | packed MP/s out | float MP/s out "
          "| one LB block packed / float (ms) | block speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        print(f"| {run['threads']} | {floor(run['packed_ms'])} | {floor(run['torch_ms'])} | "
              f"{floor(run['speedup'], 2)}x | {floor(run['packed_mpix_per_s'], 2)} | "
              f"{floor(run['torch_mpix_per_s'], 2)} | {floor(run['block_packed_ms'], 1)} / "
              f"{floor(run['block_torch_ms'], 1)} | {floor(run['block_speedup'], 2)}x |")
    if runs and runs[0]["packed_layers_ms"]:
        print("\n| part of the packed pass | " + " | ".join(f"{r['threads']} thread(s) (ms)" for r in runs) + " |")
        print("| --- | " + " | ".join("---" for _ in runs) + " |")
        for part in runs[0]["packed_layers_ms"]:
            print(f"| {part} | " + " | ".join(floor(r["packed_layers_ms"][part]) for r in runs) + " |")
    print(f"\nPeak RSS of the process: {floor(record['peak_rss_mib'])} MiB; {record['cpu']}, torch "
          f"{record['torch']}, kernel path {record['kernel_path']}, medians of {record['rounds']} rounds.")


if __name__ == "__main__":
    main(sys.argv[1])
