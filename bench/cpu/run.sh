#!/usr/bin/env bash
# CPU throughput of llamaembed against batched float32 PyTorch on the same
# fixture model (nemotron-1b width, a few layers), run back to back on this
# machine, with the ratio of tokens/s per shape.
#
#   bash bench/cpu/run.sh                 # 4 layers, shapes 2x128 and 8x128, 3 rounds
#   LAYERS=2 SHAPES="2x128" ROUNDS=1 ITERS=3 bash bench/cpu/run.sh
#
# Environment: WORK (scratch dir, default /tmp/llamaembed-bench-cpu), LAYERS,
# SHAPES (BxL list), ROUNDS (alternating llamaembed/torch runs per shape; the
# best tokens/s of each side is compared), ITERS, THREADS (default: nproc),
# QUIET_WAIT (seconds to wait before each run for the CPUs to be at least
# 85% idle over 2 s, default 60; 0 runs at once), TORCH_ENV (extra
# environment for the torch runs, e.g. "OPENBLAS_CORETYPE=SkylakeX": Debian's
# OpenBLAS 0.3.21 picks its Haswell (AVX2) kernels on this Sapphire Rapids,
# and this asks for its AVX-512 ones instead, the stronger baseline).
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK=${WORK:-/tmp/llamaembed-bench-cpu}
LAYERS=${LAYERS:-4}
SHAPES=${SHAPES:-"2x128 8x128"}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
THREADS=${THREADS:-$(nproc)}
QUIET_WAIT=${QUIET_WAIT:-60}
TORCH_ENV=${TORCH_ENV:-}
PY=/usr/bin/python3 # Debian's interpreter, where python3-torch installs
mkdir -p "$WORK"

# (a) PyTorch (Debian's python3-torch) and OpenBLAS, without which torch's
# generic BLAS resolves to the reference implementation.
if ! "$PY" -c 'import torch' 2>/dev/null || ! dpkg -s libopenblas0 >/dev/null 2>&1; then
	echo "== installing python3-torch and libopenblas0" >&2
	apt-get update
	apt-cache policy python3-torch
	DEBIAN_FRONTEND=noninteractive apt-get install -y python3-torch libopenblas0
fi

# (b) llamaembed
BIN="$WORK/llamaembed"
go build -o "$BIN" ./cmd/llamaembed

# (c) the fixture: nemotron-1b shapes, LAYERS layers, BF16 as the real checkpoint.
MODEL="$WORK/nemotron-1b-L$LAYERS"
if [ ! -f "$MODEL/config.json" ]; then
	"$BIN" mkmodel --preset nemotron-1b --layers "$LAYERS" "$MODEL" >&2
fi

# Both implementations compute the same embeddings: a parity check first, so
# the race below is between equal programs.
printf '{"ids":[128000,9906,1917,11,420,374,264,1296,13]}\n{"ids":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}\n' >"$WORK/ids.jsonl"
"$BIN" embed --model "$MODEL" --device cpu <"$WORK/ids.jsonl" >"$WORK/go.jsonl" 2>/dev/null
"$PY" bench/cpu/torch_bench.py embed "$MODEL" --threads "$THREADS" <"$WORK/ids.jsonl" >"$WORK/torch.jsonl"
"$PY" - "$WORK/go.jsonl" "$WORK/torch.jsonl" <<'PYEOF'
import json, sys
a = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
d = max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))
print(f"parity: max |llamaembed - torch| over {len(a)} embeddings = {d:.2e}", file=sys.stderr)
sys.exit(0 if len(a) == len(b) and d < 1e-4 else 1)
PYEOF

# idle_pct prints the share of CPU time idle over the next 2 s (/proc/stat).
idle_pct() {
	local a b
	read -r -a a < <(head -1 /proc/stat)
	sleep 2
	read -r -a b < <(head -1 /proc/stat)
	local total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
	echo $(((b[4] - a[4]) * 100 / (total > 0 ? total : 1)))
}

# wait_quiet waits up to QUIET_WAIT seconds for the machine to be mostly idle,
# so other processes on a shared machine disturb the timings less; it reports
# the idle share it started under.
wait_quiet() {
	local waited=0 idle
	idle=$(idle_pct)
	while [ "$idle" -lt 85 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
		waited=$((waited + 2))
		idle=$(idle_pct)
	done
	echo "  (start: ${idle}% idle after ${waited}s wait, $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

# (d, e) alternate the two, ROUNDS times per shape.
echo "load before: $(uptime)" >&2
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
for shape in $SHAPES; do
	B=${shape%x*}
	L=${shape#*x}
	for r in $(seq "$ROUNDS"); do
		wait_quiet
		GOMAXPROCS=$THREADS "$BIN" bench --model "$MODEL" --device cpu --batch "$B" --seq "$L" --iters "$ITERS" 2>/dev/null |
			sed 's/^{/{"impl":"llamaembed","round":'"$r"',/' | tee -a "$RESULTS" >&2
		wait_quiet
		env $TORCH_ENV "$PY" bench/cpu/torch_bench.py bench "$MODEL" --batch "$B" --seq "$L" --iters "$ITERS" --threads "$THREADS" |
			sed 's/^{/{"impl":"torch","round":'"$r"',/' | tee -a "$RESULTS" >&2
	done
done
echo "load after: $(uptime)" >&2

# (f) the table: best tokens/s of each side per shape.
"$PY" bench/cpu/table.py "$RESULTS" "$LAYERS"
