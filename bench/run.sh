#!/usr/bin/env bash
# make bench: every benchmark of the project, one after the other. Each prints
# its own table; run one alone with `bash bench/<name>/run.sh`.
#   tokenizer  llamaembed tokenize vs Hugging Face tokenizers (Node) on the parity corpus
#   cpu        llamaembed bench vs float32 PyTorch at nemotron-1b width
#   load       HTTP load at 1, 16, 64 clients on the tiny fixture
# GPU benchmarks (model/cuda) need a machine with a driver: see kernels/NOTES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in ${BENCHES:-tokenizer cpu load}; do
  echo "== bench/$b"
  bash "bench/$b/run.sh"
done
