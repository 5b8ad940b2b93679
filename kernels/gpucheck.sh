#!/usr/bin/env bash
# gpucheck.sh: the GPU session's one command. Build the test binaries on a
# machine with Go, carry them to the GPU machine, run them there:
#
#   bash kernels/gpucheck.sh build        # here: bin/gpucheck/{driver,cuda}.test
#   bash kernels/gpucheck.sh run          # on the GPU machine (no Go needed)
#
# run: device query, the driver tests, every kernel against its CPU reference
# (fresh random inputs, NaN-poisoned outputs), forward passes against the CPU
# backend and tiny-llama-a, the wgmma startup check, then GEMM TFLOP/s and
# forward tokens/s. Logs go to $OUT (or bin/gpucheck/out); the summary last.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/bin/gpucheck"

case "${1:-}" in
build)
	mkdir -p "$bin"
	cd "$root" || exit 1
	go test -c -o "$bin/driver.test" ./model/cuda/driver &&
		go test -c -o "$bin/cuda.test" ./model/cuda &&
		echo "gpucheck: built $bin/driver.test $bin/cuda.test"
	;;
run)
	out="${OUT:-$bin/out}"
	mkdir -p "$out"
	nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >"$out/nvidia-smi.txt"
	# The tests read testdata/ and kernels/ relative to their package dirs.
	(cd "$root/model/cuda/driver" && "$bin/driver.test" -test.v -test.count=1 >"$out/driver.log" 2>&1)
	drc=$?
	(cd "$root/model/cuda" && "$bin/cuda.test" -test.v -test.count=1 -test.run 'GPU' >"$out/cuda.log" 2>&1)
	crc=$?
	(cd "$root/model/cuda" && "$bin/cuda.test" -test.run XXX -test.bench 'GPU' -test.benchtime 20x >"$out/bench.log" 2>&1)
	brc=$?
	(cd "$root/model/cuda" && LLAMAEMBED_BENCH_PRESET=nemotron-1b "$bin/cuda.test" -test.run XXX \
		-test.bench 'GPUForward' -test.benchtime 10x >"$out/bench-1b.log" 2>&1)
	b1rc=$?
	echo "== GPU"
	head -15 "$out/nvidia-smi.txt"
	echo "== failures and skips"
	grep -hE -- '--- (FAIL|SKIP)|panic:' "$out/driver.log" "$out/cuda.log" | head -40
	echo "== accuracy"
	grep -hE 'relative error|cosine' "$out/cuda.log" | sed 's/^ *//' | head -60
	echo "== benchmarks"
	grep -hE 'Benchmark' "$out/bench.log" "$out/bench-1b.log"
	echo "== exit codes: driver $drc, kernels $crc, bench $brc, bench-1b $b1rc"
	[ $drc -eq 0 ] && [ $crc -eq 0 ]
	;;
*)
	echo "usage: bash kernels/gpucheck.sh build|run" >&2
	exit 2
	;;
esac
