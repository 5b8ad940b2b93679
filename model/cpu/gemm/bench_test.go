package gemm

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"llamaembed/weights"
)

var (
	peakOnce sync.Once
	peak     Peak
)

// BenchmarkLinear runs the projections of nemotron-1b (fused qkv, o, fused
// gate/up, down) at 256 and 1024 tokens with each fast kernel and reports
// GFLOP/s and the share of the machine's float32 FMA peak (see MeasurePeak
// for how the clock is measured). The amx kernel can pass 100%: its peak is
// the tile unit's, not the FMA ports'.
//
//	go test -run '^$' -bench Linear -benchtime 3x ./model/cpu/gemm
func BenchmarkLinear(b *testing.B) {
	peakOnce.Do(func() {
		peak = MeasurePeak()
		fmt.Printf("peak: %.2f GHz x %d cores x %d flops/cycle = %.0f GFLOP/s; register-only FMA loop measured %.0f GFLOP/s; kernel %s\n",
			peak.GHz, peak.Cores, peak.FlopsPerCycle, peak.GFLOPS, peak.MeasuredGFLOPS, Kernel())
	})
	shapes := []struct {
		name string
		n, k int
	}{
		{"qkv", 3072, 2048}, {"o", 2048, 2048}, {"gateup", 16384, 2048}, {"down", 2048, 8192},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	saved := active
	defer func() { active = saved }()
	for _, dt := range []weights.DType{weights.BF16, weights.F32} {
		for _, sh := range shapes {
			w, _ := makeWeight(rng, dt, sh.n, sh.k)
			for _, m := range []int{256, 1024} {
				x := randSlice(rng, m*sh.k)
				out := make([]float32, m*sh.n)
				for _, im := range available() {
					if im.kind == kernelPortable || im.kind == kernelAVX2 || (im.kind == kernelAMX && dt != weights.BF16) {
						continue // too slow to matter here, or the same code as avx512
					}
					active = im
					b.Run(fmt.Sprintf("%v/%s/%s/M=%d/N=%d/K=%d", dt, im.kind, sh.name, m, sh.n, sh.k), func(b *testing.B) {
						for b.Loop() {
							Linear(out, x, w, m)
						}
						gflops := 2 * float64(m) * float64(sh.n) * float64(sh.k) * float64(b.N) / b.Elapsed().Seconds() / 1e9
						b.ReportMetric(gflops, "GFLOP/s")
						if peak.GFLOPS > 0 {
							b.ReportMetric(100*gflops/peak.GFLOPS, "%fmapeak")
						}
					})
				}
			}
		}
	}
}

// BenchmarkPackWeight widens and transposes a 2048×2048 weight into packed
// panels, the per-call overhead Linear adds on top of the kernel.
func BenchmarkPackWeight(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []weights.DType{weights.BF16, weights.F32} {
		w, _ := makeWeight(rng, dt, 2048, 2048)
		for _, gather := range []bool{false, true} {
			if gather && !useGatherPack {
				continue
			}
			b.Run(fmt.Sprintf("%v/gather=%v", dt, gather), func(b *testing.B) {
				saved := useGatherPack
				useGatherPack = gather
				defer func() { useGatherPack = saved }()
				dst := make([]float32, blockK*blockN)
				for b.Loop() {
					for j0 := 0; j0 < w.N; j0 += blockN {
						for k0 := 0; k0 < w.K; k0 += blockK {
							src := bSource{kind: bWeight, w: w}
							src.pack(dst, 32, j0, blockN, k0, blockK)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(w.N*w.K), "ns/elem")
			})
		}
	}
}
