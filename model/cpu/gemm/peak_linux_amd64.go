package gemm

import (
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Peak describes this machine's float32 FMA ceiling, for reporting a GEMM's
// efficiency.
type Peak struct {
	GHz            float64 // clock: 8n dependent IMULs take 24n cycles
	Cores          int     // GOMAXPROCS
	FlopsPerCycle  int     // per core: 2 FMA ports × 16 lanes × 2 flops for AVX-512
	GFLOPS         float64 // Cores × FlopsPerCycle × GHz
	MeasuredGFLOPS float64 // register-only FMA loop on every core at once, in CPU time
}

// MeasurePeak times a dependent multiply chain to get the clock and a
// register FMA loop on every core for the achievable rate. Both are timed in
// the thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), best of ten short
// runs, so other processes sharing the cores stretch neither. It takes about
// half a second, and is only meaningful with AVX-512 (it returns the zero
// Peak without).
func MeasurePeak() Peak {
	if !cpu.X86.HasAVX512F {
		return Peak{}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 2_000_000 // 48M cycles, about 20 ms
	clockChain(n)       // warm up and leave any low-power state
	best := time.Duration(1 << 62)
	for range 10 {
		t := threadCPUTime()
		clockChain(n)
		best = min(best, threadCPUTime()-t)
	}
	p := Peak{GHz: 24 * n / best.Seconds() / 1e9, Cores: runtime.GOMAXPROCS(0), FlopsPerCycle: 2 * 16 * 2}
	p.GFLOPS = float64(p.Cores*p.FlopsPerCycle) * p.GHz

	const iters = 2_000_000
	perCore := make([]time.Duration, p.Cores)
	var wg sync.WaitGroup
	for c := range p.Cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			best := time.Duration(1 << 62)
			for range 10 {
				t := threadCPUTime()
				fmaThroughput(iters)
				best = min(best, threadCPUTime()-t)
			}
			perCore[c] = best
		}()
	}
	wg.Wait()
	for _, d := range perCore {
		p.MeasuredGFLOPS += float64(iters*24*16*2) / d.Seconds() / 1e9
	}
	return p
}

// threadCPUTime is the calling thread's CPU time.
func threadCPUTime() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
