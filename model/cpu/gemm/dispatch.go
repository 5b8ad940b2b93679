package gemm

// kernel names the microkernel family in use.
type kernel int

const (
	kernelPortable kernel = iota
	kernelAVX2
	kernelAVX512
)

func (k kernel) String() string {
	switch k {
	case kernelAVX2:
		return "avx2"
	case kernelAVX512:
		return "avx512"
	}
	return "portable"
}

// active is the kernel Linear and the Sgemm functions use; tests switch it to
// cover every variant on one machine.
var active = bestKernel()

// Kernel names the kernel in use ("avx512", "avx2" or "portable"), for logs.
func Kernel() string { return active.String() }

func linear(out, x []float32, w Weight, m int) {
	linearPortable(out, x, w, m)
}

func sgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	sgemmNTPortable(m, n, k, a, lda, b, ldb, c, ldc)
}

func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	sgemmNNPortable(m, n, k, a, lda, b, ldb, c, ldc)
}

func bestKernel() kernel { return kernelPortable }

func availableKernels() []kernel { return []kernel{kernelPortable} }
