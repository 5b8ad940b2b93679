#!/usr/bin/env bash
# Load test of `llamaembed serve` on the tiny fixture model: builds the
# binary and the load generator, writes the fixture, starts the server on
# 127.0.0.1, and reports requests/s, p50/p99 latency and the batch-size
# histogram at 1, 16 and 64 concurrent clients.
#
#   bash bench/load/run.sh                 # 10 s per level
#   DURATION=5s CLIENTS=1,16,64,128 PRESET=tiny bash bench/load/run.sh
#
# The server and the load generator share the machine: on a small machine
# the generator's own CPU use lowers the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-1,16,64}
PRESET=${PRESET:-tiny}
PORT=${PORT:-18765}
INPUTS=${INPUTS:-1}
DEVICE=${DEVICE:-auto}
MODEL_DIR=${MODEL_DIR:-testdata/tmp/load-$PRESET}

mkdir -p bin
go build -o bin/llamaembed ./cmd/llamaembed
go build -o bin/loadgen ./bench/load
if [ ! -f "$MODEL_DIR/config.json" ]; then
  bin/llamaembed mkmodel --preset "$PRESET" --tokenizer testdata/tokenizer/tokenizer.json "$MODEL_DIR"
fi

LOG=$(mktemp)
LOG_LEVEL=warn bin/llamaembed serve --model "$MODEL_DIR" --host 127.0.0.1 --port "$PORT" --device "$DEVICE" \
  --served-model-name "load-$PRESET" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -f "$LOG"' EXIT

for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$PORT/v1/health/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then cat "$LOG"; echo "server exited" >&2; exit 1; fi
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/v1/health/ready" >/dev/null || { cat "$LOG"; echo "server not ready" >&2; exit 1; }

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
bin/loadgen --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" --duration "$DURATION" --inputs "$INPUTS"
