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

func linearMulti(outs [][]float32, x []float32, ws []Weight, m int) {
	allBF16 := true
	for _, w := range ws {
		allBF16 = allBF16 && w.DType == weights.BF16
	}
	if active.kind == kernelAMX && allBF16 {
		linearAMX(outs, x, ws, m, runtime.GOMAXPROCS(0))
		return
	}
	targets := make([]cTarget, len(ws))
	for i, w := range ws {
		targets[i] = cTarget{bSource{kind: bWeight, w: w}, outs[i], w.N, w.N}
	}
	gemmMulti(active, m, ws[0].K, x, ws[0].K, targets)
}

func sgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	tg := cTarget{bSource{kind: bRowsNT, f: b, ld: ldb}, c, ldc, n}
	gemmSerial(active, m, k, a, lda, &tg)
}

func sgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	tg := cTarget{bSource{kind: bRowsNN, f: b, ld: ldb}, c, ldc, n}
	gemmSerial(active, m, k, a, lda, &tg)
}
