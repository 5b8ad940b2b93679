// Package model is the Llama bidirectional encoder: token ids in, pooled and
// normalised embeddings out. The layer math runs in a Backend (model/cpu,
// model/cuda); this package owns what is common to every device: packing a
// batch, Matryoshka truncation, L2 normalisation and the choice of device.
package model

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"llamaembed/weights"
)

// Batch is a set of sequences packed back to back with no padding.
// Sequence i holds Tokens[CuSeqlens[i]:CuSeqlens[i+1]] and uses positions
// 0..n-1, so its result never depends on the other sequences in the batch.
type Batch struct {
	Tokens    []int32
	CuSeqlens []int32 // len = sequences+1, CuSeqlens[0] = 0
}

// Len is the number of sequences in the batch.
func (b Batch) Len() int { return len(b.CuSeqlens) - 1 }

// Pack builds a Batch from separate sequences.
func Pack(seqs [][]int32) Batch {
	n := 0
	for _, s := range seqs {
		n += len(s)
	}
	b := Batch{Tokens: make([]int32, 0, n), CuSeqlens: make([]int32, 1, len(seqs)+1)}
	for _, s := range seqs {
		b.Tokens = append(b.Tokens, s...)
		b.CuSeqlens = append(b.CuSeqlens, int32(len(b.Tokens)))
	}
	return b
}

// Backend runs the encoder's layers on one device. It is the whole seam
// between the model and a device: weights go in at construction, a packed
// batch goes in per call, one pooled vector per sequence comes out.
type Backend interface {
	// Forward returns, for each sequence of the batch, the mean over its
	// tokens of the final-norm hidden state ([hidden] floats). A backend may
	// return the vector already scaled (for example L2-normalised): the
	// encoder only truncates and normalises it.
	Forward(ctx context.Context, b Batch) ([][]float32, error)
	// Device names where the layers run, for logs ("cpu", "cuda:0 NVIDIA H100").
	Device() string
	Close() error
}

// Options configure a backend.
type Options struct {
	// MaxBatchTokens bounds the tokens of one Forward call; device backends
	// size their workspace from it. 0 means the backend's default.
	MaxBatchTokens int
	// MaxSeqLen bounds one sequence's length. 0 means the backend's default.
	MaxSeqLen int
}

// BackendFactory builds a backend for a device ("cpu", "cuda", "cuda:1")
// over loaded weights. It returns ErrNoDevice when the device is absent.
type BackendFactory func(w *weights.Model, device string, opts Options) (Backend, error)

// ErrNoDevice means the requested kind of device is not on this machine.
var ErrNoDevice = fmt.Errorf("device not available")

var (
	factoriesMu sync.Mutex
	factories   = map[string]BackendFactory{}
)

// RegisterBackend makes a device kind ("cpu", "cuda") available to NewEncoder.
// Backends call it from init, so the binary has the devices it imports.
func RegisterBackend(kind string, f BackendFactory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories[kind] = f
}

// Backends lists the registered device kinds.
func Backends() []string {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	var ks []string
	for k := range factories {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func factory(kind string) (BackendFactory, bool) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	f, ok := factories[kind]
	return f, ok
}
