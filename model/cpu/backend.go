// Package cpu is the float32 CPU backend of the encoder. Projections read the
// checkpoint's weights in place (BF16 stays BF16 in memory) through
// model/cpu/gemm; activations live in gorgonia.org/tensor dense tensors over
// buffers reused from call to call.
//
// Every result for a sequence is computed from that sequence's rows alone,
// with an order of operations that does not depend on the other sequences in
// the batch, so batch composition never changes an embedding.
package cpu

import (
	"fmt"
	"strings"

	"llamaembed/model"
	"llamaembed/model/cpu/gemm"
	"llamaembed/weights"
)

func init() { model.RegisterBackend("cpu", New) }

// layer is one decoder block's weights.
type layer struct {
	attnNorm, mlpNorm []float32 // [hidden], decoded to float32 once
	q, k, v, o        gemm.Weight
	gate, up, down    gemm.Weight
}

// Backend runs the encoder on the CPU. It is not safe for concurrent
// Forward calls (model.Encoder serialises them).
type Backend struct {
	cfg       *weights.Config
	opts      model.Options
	embed     gemm.Weight // [vocab, hidden], rows decoded on gather
	layers    []layer
	finalNorm []float32
	rope      *rope
	ws        workspace
}

// New builds the CPU backend over w. device must be "cpu".
func New(w *weights.Model, device string, opts model.Options) (model.Backend, error) {
	if device != "cpu" {
		return nil, fmt.Errorf("cpu backend: device %q: want \"cpu\"", device)
	}
	cfg := w.Config
	b := &Backend{cfg: cfg, opts: opts, rope: newRope(cfg)}
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	qDim, kvDim := cfg.NumAttentionHeads*cfg.HeadDim, cfg.NumKeyValueHeads*cfg.HeadDim
	var err error
	if b.embed, err = matrix(w, "embed_tokens.weight", cfg.VocabSize, h); err != nil {
		return nil, err
	}
	if b.finalNorm, err = vector(w, "norm.weight", h); err != nil {
		return nil, err
	}
	b.layers = make([]layer, cfg.NumHiddenLayers)
	for i := range b.layers {
		l := &b.layers[i]
		p := fmt.Sprintf("layers.%d.", i)
		for _, m := range []struct {
			dst  *gemm.Weight
			name string
			n, k int
		}{
			{&l.q, "self_attn.q_proj.weight", qDim, h},
			{&l.k, "self_attn.k_proj.weight", kvDim, h},
			{&l.v, "self_attn.v_proj.weight", kvDim, h},
			{&l.o, "self_attn.o_proj.weight", h, qDim},
			{&l.gate, "mlp.gate_proj.weight", inter, h},
			{&l.up, "mlp.up_proj.weight", inter, h},
			{&l.down, "mlp.down_proj.weight", h, inter},
		} {
			if *m.dst, err = matrix(w, p+m.name, m.n, m.k); err != nil {
				return nil, err
			}
		}
		if l.attnNorm, err = vector(w, p+"input_layernorm.weight", h); err != nil {
			return nil, err
		}
		if l.mlpNorm, err = vector(w, p+"post_attention_layernorm.weight", h); err != nil {
			return nil, err
		}
	}
	if opts.MaxSeqLen > 0 {
		b.rope.ensure(opts.MaxSeqLen)
	}
	return b, nil
}

// matrix looks up a [n, k] weight and checks its shape, dtype and size.
func matrix(w *weights.Model, name string, n, k int) (gemm.Weight, error) {
	t := w.Tensor(name)
	if t == nil {
		return gemm.Weight{}, fmt.Errorf("cpu backend: tensor %s is missing", name)
	}
	if len(t.Shape) != 2 || t.Shape[0] != n || t.Shape[1] != k {
		return gemm.Weight{}, fmt.Errorf("cpu backend: tensor %s has shape %v, want [%d %d]", name, t.Shape, n, k)
	}
	g := gemm.Weight{DType: t.DType, Data: t.Data, N: n, K: k}
	if err := g.Check(); err != nil {
		return gemm.Weight{}, fmt.Errorf("cpu backend: tensor %s: %w", name, err)
	}
	return g, nil
}

// vector decodes a [n] weight to float32.
func vector(w *weights.Model, name string, n int) ([]float32, error) {
	t := w.Tensor(name)
	if t == nil {
		return nil, fmt.Errorf("cpu backend: tensor %s is missing", name)
	}
	if len(t.Shape) != 1 || t.Shape[0] != n {
		return nil, fmt.Errorf("cpu backend: tensor %s has shape %v, want [%d]", name, t.Shape, n)
	}
	g := gemm.Weight{DType: t.DType, Data: t.Data, N: 1, K: n}
	if err := g.Check(); err != nil {
		return nil, fmt.Errorf("cpu backend: tensor %s: %w", name, err)
	}
	out := make([]float32, n)
	decodeRow(out, g, 0)
	return out, nil
}

// decodeRow widens row j of w to float32.
func decodeRow(dst []float32, w gemm.Weight, j int) {
	rb := w.K * w.DType.Size()
	weights.ToFloat32(dst[:w.K], w.Data[j*rb:(j+1)*rb], w.DType)
}

// Device is "cpu" with the GEMM kernel in use.
func (b *Backend) Device() string { return "cpu (" + gemm.Kernel() + ")" }

// Close drops the workspace. The weights belong to the caller.
func (b *Backend) Close() error {
	b.ws = workspace{}
	return nil
}

// checkBatch rejects a malformed batch before any work.
func (b *Backend) checkBatch(batch model.Batch) error {
	cu := batch.CuSeqlens
	if len(cu) < 1 || cu[0] != 0 || int(cu[len(cu)-1]) != len(batch.Tokens) {
		return fmt.Errorf("batch: cu_seqlens %v do not span %d tokens", abbreviate(cu), len(batch.Tokens))
	}
	for i := 1; i < len(cu); i++ {
		if cu[i] <= cu[i-1] {
			return fmt.Errorf("batch: sequence %d is empty or cu_seqlens decrease", i-1)
		}
		if n := int(cu[i] - cu[i-1]); b.opts.MaxSeqLen > 0 && n > b.opts.MaxSeqLen {
			return fmt.Errorf("batch: sequence %d has %d tokens, more than max seq len %d", i-1, n, b.opts.MaxSeqLen)
		}
	}
	for i, id := range batch.Tokens {
		if id < 0 || int(id) >= b.cfg.VocabSize {
			return fmt.Errorf("batch: token %d: id %d out of range [0, %d)", i, id, b.cfg.VocabSize)
		}
	}
	return nil
}

func abbreviate(cu []int32) string {
	if len(cu) <= 8 {
		return fmt.Sprint(cu)
	}
	return strings.TrimSuffix(fmt.Sprint(cu[:8]), "]") + " ...]"
}
