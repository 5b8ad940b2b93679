package gemm

import (
	"runtime"

	"llamaembed/weights"
)

// kernel names a microkernel family.
type kernel int

const (
	kernelPortable kernel = iota
	kernelAVX2
	kernelAVX512
	kernelAMX // AVX-512 kernels, with BF16-weight Linear on the AMX tile unit
)

func (k kernel) String() string {
	switch k {
	case kernelAVX2:
		return "avx2"
	case kernelAVX512:
		return "avx512"
	case kernelAMX:
		return "amx"
	}
	return "portable"
}

// active is the implementation Linear and the Sgemm functions use: the best
// this CPU runs. Tests switch it to cover every variant on one machine.
var active = best()

func best() *impl {
	impls := available()
	return impls[len(impls)-1]
}

// Kernel names the microkernel in use ("avx512", "avx2" or "portable").
func Kernel() string { return active.kind.String() }

func linear(out, x []float32, w Weight, m int) {
	if active.kind == kernelAMX && w.DType == weights.BF16 {
		linearAMX(out, x, w, m, runtime.GOMAXPROCS(0))
		return
	}
	gemm(active, m, w.N, w.K, x, w.K, weightB{w}, out, w.N, true)
}

func sgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	gemm(active, m, n, k, a, lda, ntB{b, ldb}, c, ldc, false)
}

func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	gemm(active, m, n, k, a, lda, nnB{b, ldb}, c, ldc, false)
}
