// Package cuda is the NVIDIA GPU backend of the encoder: the same Llama
// bidirectional layers as model/cpu, run by our own kernels (package
// llamaembed/kernels) through the driver API (model/cuda/driver), loaded at
// run time so that the binary needs no CUDA at build time and runs unchanged
// on a machine without a GPU.
//
// Weights are uploaded once as bf16, with q/k/v and gate/up fused into
// single matrices. Activations live in a workspace sized at startup from
// the maximum batch tokens; if weights and workspace do not fit in device
// memory the backend fails to start with a message saying so, rather than
// failing mid-request. The residual stream is kept in fp32 on the device;
// every other activation is bf16 with fp32 accumulation.
//
// The host-side logic (shapes, workspace sizing, launch geometry, batch
// packing, RoPE tables) is plain Go, tested without a GPU.
package cuda

import (
	"fmt"

	"llamaembed/weights"
)

// shape is what the kernels need to know of a model.
type shape struct {
	Hidden, Inter, Layers int
	Heads, KVHeads        int
	HeadDim               int
	Vocab                 int
	Eps                   float32
}

// QDim is the width of the q projection; KVDim of k and of v.
func (s shape) QDim() int   { return s.Heads * s.HeadDim }
func (s shape) KVDim() int  { return s.KVHeads * s.HeadDim }
func (s shape) QKVDim() int { return s.QDim() + 2*s.KVDim() }

// attnHeadDims are the head sizes with an attention kernel instance.
var attnHeadDims = []int{16, 64, 128}

func shapeOf(cfg *weights.Config) (shape, error) {
	s := shape{
		Hidden: cfg.HiddenSize, Inter: cfg.IntermediateSize, Layers: cfg.NumHiddenLayers,
		Heads: cfg.NumAttentionHeads, KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim,
		Vocab: cfg.VocabSize, Eps: float32(cfg.RMSNormEps),
	}
	if s.HeadDim == 0 && s.Heads > 0 {
		s.HeadDim = s.Hidden / s.Heads
	}
	switch {
	case s.Hidden <= 0 || s.Inter <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Vocab <= 0:
		return s, fmt.Errorf("config: hidden %d, intermediate %d, layers %d, heads %d, kv heads %d, vocab %d must all be positive",
			s.Hidden, s.Inter, s.Layers, s.Heads, s.KVHeads, s.Vocab)
	case s.Heads%s.KVHeads != 0:
		return s, fmt.Errorf("config: %d attention heads are not a multiple of %d kv heads", s.Heads, s.KVHeads)
	case !hasAttnKernel(s.HeadDim):
		return s, fmt.Errorf("config: head_dim %d has no attention kernel (have %v)", s.HeadDim, attnHeadDims)
	case s.Hidden%8 != 0 || s.Inter%8 != 0 || s.QDim()%8 != 0:
		// The GEMM reads 16-byte rows: every K (hidden, intermediate, q width) a multiple of 8.
		return s, fmt.Errorf("config: hidden %d, intermediate %d and heads*head_dim %d must be multiples of 8 for the GPU GEMM",
			s.Hidden, s.Inter, s.QDim())
	}
	return s, nil
}

func hasAttnKernel(d int) bool {
	for _, h := range attnHeadDims {
		if d == h {
			return true
		}
	}
	return false
}
