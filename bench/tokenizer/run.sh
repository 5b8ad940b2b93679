#!/usr/bin/env bash
# Tokenizer benchmark: `llamaembed tokenize` against Hugging Face tokenizers'
# encodeBatch (Rust, via @anush008/tokenizers) over the parity corpus, end to
# end (read JSONL, write ids), back to back, best of ROUNDS each. Checks that
# both outputs are identical and prints the ratio.
#
#   bash bench/tokenizer/run.sh [ROUNDS]
#
# Needs node and npm (installs into bench/tokenizer/node_modules on first run).
# The machine should be quiet: the load average is printed with the figures.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${1:-3}"
tok="$root/testdata/tokenizer/tokenizer.json"
work="$here/out/bench"
mkdir -p "$work"

if [ ! -d "$here/node_modules/@anush008/tokenizers" ]; then
  (cd "$here" && npm install --no-audit --no-fund >/dev/null)
fi
(cd "$root" && go build -o "$work/llamaembed" ./cmd/llamaembed)
gunzip -c "$root/testdata/tokenizer/corpus.jsonl.gz" > "$work/corpus.jsonl"
lines=$(wc -l < "$work/corpus.jsonl")
bytes=$(wc -c < "$work/corpus.jsonl")

# best_of LABEL CMD... : runs CMD rounds times (stdin the corpus, stdout
# out.LABEL.jsonl) and prints the best wall time in seconds.
best_of() {
  local label=$1 best="" t0 t1 dt
  shift
  for _ in $(seq "$rounds"); do
    t0=$(date +%s.%N)
    "$@" < "$work/corpus.jsonl" > "$work/out.$label.jsonl"
    t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$dt < $best" | bc -l)" = 1 ]; then best=$dt; fi
  done
  echo "$best"
}

echo "corpus: $lines passages, $bytes bytes; $(nproc) cores; load before:$(uptime | sed 's/.*load average://')"
go_s=$(best_of go "$work/llamaembed" tokenize --tokenizer "$tok")
hf_s=$(best_of hf node "$here/hf-tokenize.js" "$tok")
if ! cmp -s "$work/out.go.jsonl" "$work/out.hf.jsonl"; then
  echo "outputs differ: $work/out.go.jsonl vs $work/out.hf.jsonl" >&2
  exit 1
fi
# Every line has one '[' and one ',' between ids: ids = commas + lines.
tokens=$(tr -cd ',[' < "$work/out.hf.jsonl" | wc -c)
printf 'llamaembed tokenize : %6.3f s  %7.2f MB/s  %9.0f tokens/s\n' "$go_s" "$(echo "$bytes/$go_s/1000000" | bc -l)" "$(echo "$tokens/$go_s" | bc -l)"
printf 'HF encodeBatch (node): %6.3f s  %7.2f MB/s  %9.0f tokens/s\n' "$hf_s" "$(echo "$bytes/$hf_s/1000000" | bc -l)" "$(echo "$tokens/$hf_s" | bc -l)"
printf 'speedup: %.2fx   (identical output, %d tokens; load after:%s)\n' "$(echo "$hf_s/$go_s" | bc -l)" "$tokens" "$(uptime | sed 's/.*load average://')"
