#!/usr/bin/env bash
# Compiles the kernels (kernels/bitconv.c, kernels/floatconv.c) with every compiler given (default:
# all known) with -Wall -Wextra -Wvla -Werror: a warning fails the check. A compiler that is not
# installed is reported as skipped (exit status 3 when every one asked for was missing).
#   gcc, clang           native x86-64 (also the -DBSRN_EMULATE_AVX512 test build with gcc)
#   mingw                x86_64-w64-mingw32-gcc (Windows, Win32 API, no POSIX threads)
#   aarch64-gcc          aarch64-linux-gnu-gcc (the NEON path)
#   aarch64-clang        clang --target=aarch64-linux-gnu (the compiler of macOS on Apple Silicon)
set -uo pipefail
cd "$(dirname "$0")/.."
FLAGS=(-c -O2 -std=c99 -ffp-contract=off -Wall -Wextra -Wvla -Werror -Ikernels)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(gcc clang mingw aarch64-gcc aarch64-clang)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0 found=0
for name in "${names[@]}"; do
    variants=("")
    case "$name" in
        gcc) cc=(gcc); variants=("" "-DBSRN_EMULATE_AVX512") ;;
        clang) cc=(clang) ;;
        mingw) cc=(x86_64-w64-mingw32-gcc) ;;
        aarch64-gcc) cc=(aarch64-linux-gnu-gcc) ;;
        aarch64-clang) cc=(clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu) ;;
        *) echo "unknown compiler name $name" >&2; exit 2 ;;
    esac
    if ! command -v "${cc[0]}" >/dev/null; then
        echo "$name: skipped (${cc[0]} not found)"
        continue
    fi
    if [ "$name" = aarch64-clang ] && [ ! -f /usr/aarch64-linux-gnu/include/stdint.h ]; then
        echo "$name: skipped (no AArch64 C headers under /usr/aarch64-linux-gnu; apt install libc6-dev-arm64-cross)"
        continue
    fi
    found=$((found + 1))
    this_failed=0
    for variant in "${variants[@]}"; do
        for source in kernels/bitconv.c kernels/floatconv.c; do
            if ! "${cc[@]}" "${FLAGS[@]}" $variant "$source" -o "$work/out.o" >"$work/log" 2>&1; then
                echo "$name${variant:+ $variant}: FAILED on $source:"
                cat "$work/log"
                this_failed=1 failed=1
            fi
        done
    done
    [ $this_failed -eq 0 ] && echo "$name: ok, no warnings ($("${cc[@]}" --version | head -1))"
done
[ $failed -ne 0 ] && exit 1
[ $found -eq 0 ] && exit 3
exit 0
