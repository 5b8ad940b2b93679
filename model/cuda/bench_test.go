package cuda

// GPU benchmarks, timed with device events (not host clocks) after a
// warm-up: go test -run XXX -bench GPU ./model/cuda on a GPU machine. They
// skip without one. Report TFLOP/s for the GEMMs (2*M*N*K flops) and
// tokens/s for the forward pass.

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"llamaembed/model"
	"llamaembed/model/cuda/driver"
	"llamaembed/weights/fixture"
)

// timeGPU runs fn n times between two events and returns milliseconds per run.
func timeGPU(b *testing.B, s driver.Stream, n int, fn func() error) float64 {
	start, err := driver.EventCreate()
	if err != nil {
		b.Fatal(err)
	}
	defer start.Destroy()
	end, err := driver.EventCreate()
	if err != nil {
		b.Fatal(err)
	}
	defer end.Destroy()
	for range 3 { // warm-up
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	if err := start.Record(s); err != nil {
		b.Fatal(err)
	}
	for range n {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	if err := end.Record(s); err != nil {
		b.Fatal(err)
	}
	if err := end.Synchronize(); err != nil {
		b.Fatal(err)
	}
	ms, err := driver.ElapsedMs(start, end)
	if err != nil {
		b.Fatal(err)
	}
	return float64(ms) / float64(n)
}

func BenchmarkGPUGemm(b *testing.B) {
	g := needGPU(b)
	// The 1b model's projections at 8192 tokens: qkv, o, gate/up, down.
	for _, sz := range [][3]int{{8192, 3072, 2048}, {8192, 2048, 2048}, {8192, 16384, 2048}, {8192, 2048, 8192}} {
		m, nn, k := sz[0], sz[1], sz[2]
		x := g.random(m*k, 1)
		w := g.random(nn*k, 0.02)
		xp, wp, y := g.bf16(x), g.bf16(w), g.poisonBF16(m*nn)
		variants := []bool{false}
		if g.ks.gemmWgmma != 0 {
			variants = append(variants, true)
		}
		for _, wg := range variants {
			name := "mma.sync/" + dims3(m, nn, k)
			if wg {
				name = "wgmma/" + dims3(m, nn, k)
			}
			b.Run(name, func(b *testing.B) {
				ms := timeGPU(b, g.s, 20, func() error { return g.ks.launchGemmWith(wg, g.s, xp, wp, 0, y, m, nn, k) })
				b.ReportMetric(ms, "ms/gemm")
				b.ReportMetric(2*float64(m)*float64(nn)*float64(k)/(ms*1e-3)/1e12, "TFLOP/s")
			})
			if nn == 16384 { // the gate/up shape: also with the SwiGLU epilogue
				b.Run("swiglu/"+name, func(b *testing.B) {
					ms := timeGPU(b, g.s, 20, func() error { return g.ks.launchGemmSwiGLUWith(wg, g.s, xp, wp, y, m, nn, k) })
					b.ReportMetric(ms, "ms/gemm")
					b.ReportMetric(2*float64(m)*float64(nn)*float64(k)/(ms*1e-3)/1e12, "TFLOP/s")
				})
			}
		}
	}
}

func BenchmarkGPUForward(b *testing.B) {
	n, err := Available()
	if err != nil || n == 0 {
		b.Skipf("no CUDA driver/device: %v", err)
	}
	// LLAMAEMBED_BENCH_PRESET=nemotron-1b (or nemotron-8b) benchmarks a
	// full-size fixture (written to a temp dir first); default: tiny.
	preset := os.Getenv("LLAMAEMBED_BENCH_PRESET")
	w := tinyModel(b, func(o *fixture.Options) {
		if preset != "" {
			p, err := fixture.Preset(preset)
			if err != nil {
				b.Fatal(err)
			}
			*o = p
		}
	})
	be, err := New(w, "cuda", model.Options{MaxBatchTokens: 8192})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var seqs [][]int32
	total := 0
	for total+512 <= 8192 {
		s := make([]int32, 512)
		for i := range s {
			s[i] = int32(r.IntN(w.Config.VocabSize))
		}
		seqs = append(seqs, s)
		total += 512
	}
	batch := model.Pack(seqs)
	b.ResetTimer()
	for range b.N {
		if _, err := be.Forward(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
