package cpu

import (
	"context"
	"slices"
	"strings"
	"testing"

	"llamaembed/model"
	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

// mediumBackend is a one-layer model wide enough that the GEMM kernels use
// several row and column tiles and threads, unlike tiny-llama-a.
func mediumBackend(t *testing.T) (*Backend, *weights.Model) {
	t.Helper()
	dir := t.TempDir()
	opts := fixture.Tiny()
	opts.Hidden, opts.Layers, opts.Heads, opts.KVHeads, opts.HeadDim, opts.Inter, opts.Vocab = 256, 1, 8, 2, 32, 704, 2048
	if err := fixture.Write(dir, opts); err != nil {
		t.Fatal(err)
	}
	w, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	b, err := New(w, "cpu", model.Options{MaxBatchTokens: 4096, MaxSeqLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Backend), w
}

func seqOf(n, seed int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32((seed*7919 + i*104729) % 2048)
	}
	return s
}

// Forward's result for a sequence is bitwise the same alone, packed with
// others in any order, and after the workspace has grown and shrunk.
func TestForwardBatchInvariance(t *testing.T) {
	b, _ := mediumBackend(t)
	ctx := context.Background()
	lengths := []int{1, 3, 17, 64, 65, 200, 333}
	var seqs [][]int32
	for i, n := range lengths {
		seqs = append(seqs, seqOf(n, i))
	}
	alone := make([][]float32, len(seqs))
	for i, s := range seqs {
		out, err := b.Forward(ctx, model.Pack([][]int32{s}))
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = out[0]
	}
	for _, order := range [][]int{
		{0, 1, 2, 3, 4, 5, 6},
		{6, 5, 4, 3, 2, 1, 0},
		{3, 0, 6, 0, 2, 5, 5, 1, 4},
		{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
	} {
		batch := make([][]int32, len(order))
		for k, i := range order {
			batch[k] = seqs[i]
		}
		out, err := b.Forward(ctx, model.Pack(batch))
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range order {
			if !slices.Equal(out[k], alone[i]) {
				t.Errorf("order %v: sequence %d (length %d) at position %d differs from it alone", order, i, lengths[i], k)
			}
		}
	}
	// After big batches, a small one still gives the same answer.
	out, err := b.Forward(ctx, model.Pack([][]int32{seqs[1]}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0], alone[1]) {
		t.Error("a batch after larger ones differs")
	}
}

// Once the workspace has grown, a call reuses its activation buffers. (The
// allocation counts are logged, not checked: most are gemm's, per call.)
func TestForwardReusesWorkspace(t *testing.T) {
	b, _ := mediumBackend(t)
	big := model.Pack([][]int32{seqOf(400, 1), seqOf(200, 2)})
	small := model.Pack([][]int32{seqOf(100, 1), seqOf(50, 2)})
	if _, err := b.Forward(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	buffers := func() []*float32 {
		ws := &b.ws
		return []*float32{&ws.x[0], &ws.xn[0], &ws.tmp[0], &ws.q[0], &ws.attn[0], &ws.k[0], &ws.v[0], &ws.gate[0], &ws.up[0], &ws.scores[0][0]}
	}
	before := buffers()
	allocs := func(batch model.Batch) float64 {
		return testing.AllocsPerRun(5, func() {
			if _, err := b.Forward(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		})
	}
	nBig, nSmall := allocs(big), allocs(small)
	if !slices.Equal(before, buffers()) {
		t.Error("Forward replaced workspace buffers that were big enough")
	}
	t.Logf("allocations per Forward: %.0f for 600 tokens, %.0f for 150", nBig, nSmall)
}

func TestForwardErrors(t *testing.T) {
	b, _ := mediumBackend(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name  string
		ctx   context.Context
		batch model.Batch
		want  string
	}{
		{"cu does not span", context.Background(), model.Batch{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 1}}, "do not span"},
		{"no cu", context.Background(), model.Batch{Tokens: []int32{1}}, "do not span"},
		{"empty sequence", context.Background(), model.Batch{Tokens: []int32{1}, CuSeqlens: []int32{0, 0, 1}}, "sequence 0 is empty"},
		{"token out of range", context.Background(), model.Pack([][]int32{{1, 2048}}), "token 1: id 2048 out of range [0, 2048)"},
		{"too long", context.Background(), model.Pack([][]int32{make([]int32, 4097)}), "4097 tokens, more than max seq len 4096"},
		{"cancelled", cancelled, model.Pack([][]int32{{1}}), "context canceled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := b.Forward(c.ctx, c.batch)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if out != nil {
				t.Error("output with an error")
			}
		})
	}
	if _, err := New(nil, "cuda", model.Options{}); err == nil || !strings.Contains(err.Error(), `want "cpu"`) {
		t.Errorf("New on cuda: %v", err)
	}
}
