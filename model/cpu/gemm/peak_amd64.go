package gemm

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/cpu"
)

func clockChain(n int)

func fmaThroughput(n int)

// Peak describes this machine's float32 FMA ceiling, for reporting a GEMM's
// efficiency.
type Peak struct {
	GHz            float64 // clock measured under 512-bit integer adds (8n dependent adds take 8n cycles)
	Cores          int     // GOMAXPROCS
	FlopsPerCycle  int     // per core: 2 FMA ports × 16 lanes × 2 flops for AVX-512
	GFLOPS         float64 // Cores × FlopsPerCycle × GHz
	MeasuredGFLOPS float64 // register-only FMA loop on every core at once
}

// MeasurePeak times a dependent add chain to get the clock and a register
// FMA loop for the achievable rate. It takes about half a second, and is
// only meaningful with AVX-512 (it returns the zero Peak without).
func MeasurePeak() Peak {
	if !cpu.X86.HasAVX512F {
		return Peak{}
	}
	const n = 20_000_000
	clockChain(n / 10) // warm up and leave any low-power state
	best := time.Duration(1 << 62)
	for range 3 {
		t := time.Now()
		clockChain(n)
		best = min(best, time.Since(t))
	}
	p := Peak{GHz: 8 * n / best.Seconds() / 1e9, Cores: runtime.GOMAXPROCS(0), FlopsPerCycle: 2 * 16 * 2}
	p.GFLOPS = float64(p.Cores*p.FlopsPerCycle) * p.GHz

	const iters = 10_000_000
	var wg sync.WaitGroup
	t := time.Now()
	for range p.Cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmaThroughput(iters)
		}()
	}
	wg.Wait()
	p.MeasuredGFLOPS = float64(p.Cores*iters*24*16*2) / time.Since(t).Seconds() / 1e9
	return p
}
