package gemm

import (
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"llamaembed/weights"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestProbePack(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []weights.DType{weights.BF16, weights.F32} {
		w, _ := makeWeight(rng, dt, 2048, 2048)
		dst := make([]float32, blockK*blockN)
		for r := 0; r < 6; r++ {
			probeNoTrans = r%2 == 1
			c0 := threadCPU()
			for it := 0; it < 10; it++ {
				for j0 := 0; j0 < w.N; j0 += blockN {
					for k0 := 0; k0 < w.K; k0 += blockK {
						weightB{w}.pack(dst, 32, j0, blockN, k0, blockK)
					}
				}
			}
			t.Logf("notrans=%v %v %.3f ns/elem (cpu time)", probeNoTrans, dt, float64(threadCPU()-c0)/10/float64(w.N*w.K))
		}
	}
}
