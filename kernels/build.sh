#!/usr/bin/env bash
# build.sh (make kernels): kernels/*.cu -> kernels/ptx/<arch>/<name>.ptx for
# each target architecture, plus kernels/ptxas.txt, the assembler's register,
# spill and shared-memory report for every kernel.
#
# Each PTX file starts with one comment line naming the source files it was
# built from (the .cu and every local header it includes) and the sha256 of
# their contents concatenated in that order. kernels_test.go recomputes it, so
# a kernel edited without regenerating the PTX fails the tests.
#
# The PTX is committed and embedded in the binary (go:embed); nothing here
# runs at go build time, and a machine without nvcc still builds and tests.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
nvcc="${NVCC:-$root/.toolchain/cuda/usr/lib/nvidia-cuda-toolkit/bin/nvcc}"
ptxas="${PTXAS:-$root/.toolchain/cuda/usr/bin/ptxas}"
if [ ! -x "$nvcc" ]; then
	bash "$here/install-nvcc.sh"
fi

# sm_80: mma.sync, cp.async, ldmatrix (A100, A10, L4, RTX 30/40; the driver
# JITs it forward to newer GPUs). sm_90a: Hopper (H100, H200), where the
# arch-specific features (wgmma, setmaxnreg) are allowed.
archs=(sm_80 sm_90a)
flags=(-std=c++17 -O3)

# Local headers a source includes, transitively, sorted and unique. emu/
# (the CPU emulator's headers, included only when LLAMAEMBED_EMU is defined)
# never reaches the PTX and is left out.
deps() {
	local f="$1" seen="$2"
	local inc
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$here/$f"); do
		case "$inc" in emu/*) continue ;; esac
		case " $seen " in *" $inc "*) continue ;; esac
		seen="$seen $inc"
		seen="$(deps "$inc" "$seen")"
	done
	echo "$seen"
}

report="$here/ptxas.txt"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
	echo "# ptxas -v for every kernel: registers, spills, stack frame and shared memory per architecture."
	echo "# Written by kernels/build.sh ($("$nvcc" --version | tail -n 2 | head -n 1)); do not edit."
} >"$report"

for cu in "$here"/*.cu; do
	name="$(basename "$cu" .cu)"
	headers="$(deps "$name.cu" "" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')"
	files="$name.cu ${headers% }"
	files="${files% }"
	sum="$(cd "$here" && cat $files | sha256sum | cut -d' ' -f1)"
	for arch in "${archs[@]}"; do
		out="$here/ptx/$arch/$name.ptx"
		mkdir -p "$(dirname "$out")"
		"$nvcc" "${flags[@]}" -arch="$arch" -ptx -o "$tmp/$name.ptx" "$cu"
		{
			echo "// llamaembed kernels: sources $files sha256 $sum"
			cat "$tmp/$name.ptx"
		} >"$out"
		{
			echo
			echo "## $name.cu $arch"
			"$ptxas" -v -O3 -arch="$arch" -o "$tmp/$name.cubin" "$out" 2>&1 |
				sed -e 's/^ptxas info *: //' -e "s#$tmp/##g"
		} >>"$report"
		echo "kernels: $out"
	done
done

# The one-line summary per kernel that reviews read first.
{
	echo
	echo "## summary (arch kernel registers spill-stores spill-loads stack smem)"
	awk '
		/^## .* sm_/ { arch = $3 }
		/Compiling entry function/ { gsub(/[\047]/, "", $4); fn = $4 }
		/bytes stack frame/ { stack = $1; st = $5; ld = $9 }
		/Used [0-9]+ registers/ {
			regs = $2; smem = 0
			if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
			printf "%-7s %-26s %4d regs  %4d st %4d ld  %4d stack  %6d smem\n", arch, fn, regs, st, ld, stack, smem
		}
	' "$report"
} >"$tmp/summary"
cat "$tmp/summary" >>"$report"
cat "$tmp/summary"
