package model

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"

	"llamaembed/weights"
	"llamaembed/weights/hub"
)

// Defaults for Options fields left at zero.
const (
	// DefaultMaxBatchTokens bounds one Forward call. It also bounds one
	// sequence, since a sequence is never split across calls.
	DefaultMaxBatchTokens = 8192
)

// Encoder turns token-id sequences into embeddings: it validates the input,
// splits it into backend calls, and truncates and L2-normalises each pooled
// vector. It is safe for concurrent use; the backend sees one call at a time.
type Encoder struct {
	cfg  *weights.Config
	dir  string
	opts Options

	mu      sync.Mutex // serialises backend calls
	backend Backend
	closed  bool

	// weights is closed with the encoder when the encoder opened it (Load).
	ownedWeights interface{ Close() error }
}

// NewEncoder builds an encoder over loaded weights on a device: "auto" (the
// first registered accelerator that is present, else the CPU), "cpu",
// "cuda" or "cuda:N". The weights must stay open while the encoder is used.
func NewEncoder(w *weights.Model, device string, opts Options) (*Encoder, error) {
	if w == nil || w.Config == nil {
		return nil, fmt.Errorf("new encoder: no weights or config")
	}
	cfg := w.Config
	opts, err := resolveOptions(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	b, err := newBackend(w, device, opts)
	if err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	slog.Info("encoder ready", "device", b.Device(), "layers", cfg.NumHiddenLayers, "hidden", cfg.HiddenSize,
		"max_batch_tokens", opts.MaxBatchTokens, "max_seq_len", opts.MaxSeqLen)
	return &Encoder{cfg: cfg, dir: w.Dir, opts: opts, backend: b}, nil
}

// Load resolves spec (a checkpoint directory or a hub id "org/name[@rev]"),
// opens its weights and builds an encoder on device. Close releases both.
func Load(ctx context.Context, spec, device string, opts Options) (*Encoder, error) {
	dir, err := hub.Resolve(ctx, spec, hub.Options{})
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", spec, err)
	}
	w, err := weights.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", spec, err)
	}
	e, err := NewEncoder(w, device, opts)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("load model %s: %w", spec, err)
	}
	e.ownedWeights = w
	return e, nil
}

// resolveOptions fills defaults and makes a sequence fit in one batch: an
// explicit MaxSeqLen raises the default batch size to hold it, and is
// refused beyond the model's max_position_embeddings.
func resolveOptions(cfg *weights.Config, opts Options) (Options, error) {
	if opts.MaxBatchTokens < 0 || opts.MaxSeqLen < 0 {
		return opts, fmt.Errorf("max batch tokens %d and max seq len %d must not be negative", opts.MaxBatchTokens, opts.MaxSeqLen)
	}
	if opts.MaxSeqLen > cfg.MaxPositionEmbeddings {
		return opts, fmt.Errorf("max seq len %d is more than the model's max_position_embeddings %d", opts.MaxSeqLen, cfg.MaxPositionEmbeddings)
	}
	if opts.MaxBatchTokens == 0 {
		opts.MaxBatchTokens = max(DefaultMaxBatchTokens, opts.MaxSeqLen)
	}
	if opts.MaxSeqLen == 0 {
		opts.MaxSeqLen = cfg.MaxPositionEmbeddings
	}
	if opts.MaxSeqLen > opts.MaxBatchTokens {
		// A sequence is never split across backend calls.
		opts.MaxSeqLen = opts.MaxBatchTokens
	}
	return opts, nil
}

// newBackend picks and builds the backend for a device name.
func newBackend(w *weights.Model, device string, opts Options) (Backend, error) {
	kind, _, _ := strings.Cut(device, ":")
	switch kind {
	case "auto", "":
		if device != kind {
			return nil, fmt.Errorf("device %q: auto takes no index", device)
		}
		if f, ok := factory("cuda"); ok {
			b, err := f(w, "cuda", opts)
			if err == nil {
				slog.Info("device auto: using accelerator", "device", b.Device())
				return b, nil
			}
			if !errors.Is(err, ErrNoDevice) {
				return nil, fmt.Errorf("device auto: cuda: %w", err)
			}
			slog.Info("device auto: no cuda device, using cpu", "reason", err)
		} else {
			slog.Info("device auto: no cuda backend in this build, using cpu")
		}
		device, kind = "cpu", "cpu"
	}
	f, ok := factory(kind)
	if !ok {
		return nil, fmt.Errorf("device %q: no %s backend in this build (have %v)", device, kind, Backends())
	}
	b, err := f(w, device, opts)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", device, err)
	}
	return b, nil
}

// Config is the model's configuration.
func (e *Encoder) Config() *weights.Config { return e.cfg }

// Dir is the checkpoint directory the weights came from (a hub snapshot
// when Load was given a hub id): where the tokenizer files are.
func (e *Encoder) Dir() string { return e.dir }

// Options are the limits the encoder runs with, defaults filled in.
func (e *Encoder) Options() Options { return e.opts }

// Device names where the layers run.
func (e *Encoder) Device() string { return e.backend.Device() }

// Close releases the backend, and the weights when Load opened them. Embed
// fails after Close.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := e.backend.Close()
	if e.ownedWeights != nil {
		err = errors.Join(err, e.ownedWeights.Close())
	}
	return err
}

// Embed returns one L2-normalised embedding per sequence, in order. dims
// truncates each embedding to its first dims components before normalising
// (Matryoshka); 0 means the full hidden size. Token ids are used as given.
func (e *Encoder) Embed(ctx context.Context, seqs [][]int32, dims int) ([][]float32, error) {
	hidden := e.cfg.HiddenSize
	if dims == 0 {
		dims = hidden
	}
	if dims < 0 || dims > hidden {
		return nil, fmt.Errorf("dimensions %d out of range [1, %d]", dims, hidden)
	}
	if err := e.validate(seqs); err != nil {
		return nil, err
	}
	out := make([][]float32, 0, len(seqs))
	for start := 0; start < len(seqs); {
		// Greedy grouping in input order; any grouping gives the same results.
		end, tokens := start, 0
		for end < len(seqs) && (end == start || tokens+len(seqs[end]) <= e.opts.MaxBatchTokens) {
			tokens += len(seqs[end])
			end++
		}
		pooled, err := e.forward(ctx, seqs[start:end])
		if err != nil {
			return nil, err
		}
		for i, p := range pooled {
			if len(p) != hidden {
				return nil, fmt.Errorf("backend %s returned %d values for sequence %d, want %d", e.Device(), len(p), start+i, hidden)
			}
			out = append(out, normalize(p[:dims]))
		}
		start = end
	}
	return out, nil
}

func (e *Encoder) validate(seqs [][]int32) error {
	vocab := e.cfg.VocabSize
	for i, s := range seqs {
		if len(s) == 0 {
			return fmt.Errorf("sequence %d is empty", i)
		}
		if len(s) > e.opts.MaxSeqLen {
			return fmt.Errorf("sequence %d has %d tokens, more than the maximum %d", i, len(s), e.opts.MaxSeqLen)
		}
		for j, id := range s {
			if id < 0 || int(id) >= vocab {
				return fmt.Errorf("sequence %d token %d: id %d out of range [0, %d)", i, j, id, vocab)
			}
		}
	}
	return nil
}

func (e *Encoder) forward(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("encoder is closed")
	}
	pooled, err := e.backend.Forward(ctx, Pack(seqs))
	if err != nil {
		return nil, fmt.Errorf("forward on %s: %w", e.backend.Device(), err)
	}
	if len(pooled) != len(seqs) {
		return nil, fmt.Errorf("backend %s returned %d vectors for %d sequences", e.backend.Device(), len(pooled), len(seqs))
	}
	return pooled, nil
}

// normalize returns a new vector: v scaled to unit L2 norm (the sum is taken
// in float64), or v unchanged when it is all zeros.
func normalize(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if ss == 0 {
		copy(out, v)
		return out
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}
