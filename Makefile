# llamaembed: one Go binary, no Python, our own kernels.
GO      ?= go
BIN     ?= bin/llamaembed
DEMO    ?= testdata/tmp/demo-model

.PHONY: build test run demo bench kernels fmt vet clean

build:
	$(GO) build -o $(BIN) ./cmd/llamaembed

# The README's test command; .ci/run calls it. No GPU, no network beyond the
# registries, no Hugging Face.
test: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) test -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

# A fixture model (Hugging Face is unreachable here), then the server on it.
$(DEMO)/config.json: build
	$(BIN) mkmodel --preset tiny --tokenizer testdata/tokenizer/tokenizer.json $(DEMO)

demo: $(DEMO)/config.json
	printf '%s\n' '{"text":"query: how do I reset my password?"}' '{"text":"passage: open Settings"}' \
	  | $(BIN) embed --model $(DEMO) --dimensions 8

run: $(DEMO)/config.json
	$(BIN) serve --model $(DEMO) --port $${PORT:-8000}

# Benchmarks are run on purpose, never as timed tests.
bench: build
	bash bench/run.sh

# PTX for sm_80 and sm_90a from kernels/*.cu (nvcc 12.4+; kernels/install-nvcc.sh
# fetches it from Debian's packages). The PTX is committed.
kernels:
	bash kernels/build.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin testdata/tmp
