package cpu

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"llamaembed/model"
	"llamaembed/weights"
)

// BenchmarkForward runs the model in $LLAMAEMBED_BENCH_MODEL (for example a
// `llamaembed mkmodel --preset nemotron-1b` directory) on batches of
// sequences; it is skipped when the variable is unset.
//
//	LLAMAEMBED_BENCH_MODEL=/tmp/n1b go test -run '^$' -bench Forward ./model/cpu/
func BenchmarkForward(b *testing.B) {
	dir := os.Getenv("LLAMAEMBED_BENCH_MODEL")
	if dir == "" {
		b.Skip("LLAMAEMBED_BENCH_MODEL is not set")
	}
	start := time.Now()
	w, err := weights.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	be, err := New(w, "cpu", model.Options{MaxBatchTokens: 8192, MaxSeqLen: 8192})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("load (weights.Open + New): %v", time.Since(start))
	vocab := w.Config.VocabSize
	for _, shape := range []struct{ seqs, tokens int }{{1, 10}, {1, 128}, {8, 64}, {1, 512}} {
		b.Run(fmt.Sprintf("%dx%d", shape.seqs, shape.tokens), func(b *testing.B) {
			seqs := make([][]int32, shape.seqs)
			for i := range seqs {
				seqs[i] = make([]int32, shape.tokens)
				for j := range seqs[i] {
					seqs[i][j] = int32((i*7919 + j*104729) % vocab)
				}
			}
			batch := model.Pack(seqs)
			for b.Loop() {
				if _, err := be.Forward(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(shape.seqs*shape.tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
