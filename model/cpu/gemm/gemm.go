// Package gemm is the float32 matrix multiply under the CPU backend: the
// projections of every layer (Linear, weights stored [N, K] as in a Hugging
// Face checkpoint, read directly from BF16, F16 or F32 bytes) and the small
// products of attention (SgemmNT, SgemmNN).
//
// Kernels, chosen once at start-up by CPU feature (Kernel names the one in
// use; LLAMAEMBED_GEMM=avx512 turns the tile unit off):
//   - amx: Linear with BF16 weights on the AMX tile unit. The float32
//     activations are split exactly into three bf16 parts (x = hi+mid+lo),
//     so each product with a bf16 weight is exact and only the float32
//     accumulation rounds, as in a float32 GEMM. Everything else as avx512.
//   - avx512: a 12×32 register-blocked FMA microkernel (24 zmm accumulators).
//   - avx2: a 6×16 FMA microkernel (12 ymm accumulators).
//   - portable: a 4×4 Go microkernel, for other CPUs and architectures.
//
// All share one blocked driver: activations packed into row panels once per
// call, weights widened to float32 and packed into column panels one
// L2-sized block at a time per goroutine (a BF16 checkpoint is never expanded
// whole), goroutines over blocks of output columns so each reads distinct
// weight rows.
//
// Sizes are checked on entry: a mismatch between the stated shapes and the
// slices is a programmer error in the caller and panics with a message that
// names the operand, rather than computing something silently wrong.
package gemm

import (
	"fmt"
	"math"

	"llamaembed/weights"
)

// Weight is a matrix stored [N, K] (out, in), row-major, little-endian, in
// BF16, F16 or F32. Data aliases memory-mapped bytes and is never written.
type Weight struct {
	DType weights.DType
	Data  []byte
	N, K  int

	packed *amxPacked // set by Pack
}

// Pack returns w with a copy of its values laid out once in the order the
// active kernel reads them, so Linear skips rearranging them on every call
// (about a tenth of a forward pass at 256 tokens). It applies to BF16
// weights on the amx kernel and returns w unchanged otherwise. The copy
// takes as much memory as w's bytes (N×K×2): call it at load time, for the
// projections, where memory allows; w.Data is still read for nothing else
// by Linear and may be dropped from memory by the caller. It panics if
// w.Check() fails.
func Pack(w Weight) Weight {
	if err := w.Check(); err != nil {
		panic(err.Error())
	}
	if active.kind != kernelAMX || w.DType != weights.BF16 || w.packed != nil {
		return w
	}
	return packAMX(w)
}

// Packed reports whether Pack laid w out for the active kernel.
func (w Weight) Packed() bool { return w.packed != nil }

// Check reports whether the weight's bytes match its dtype and shape.
func (w Weight) Check() error {
	switch w.DType {
	case weights.BF16, weights.F16, weights.F32:
	default:
		return fmt.Errorf("gemm: weight dtype %v not supported", w.DType)
	}
	if w.N <= 0 || w.K <= 0 {
		return fmt.Errorf("gemm: weight shape [%d, %d] not positive", w.N, w.K)
	}
	if want := w.N * w.K * w.DType.Size(); len(w.Data) != want {
		return fmt.Errorf("gemm: weight [%d, %d] %v needs %d bytes, has %d", w.N, w.K, w.DType, want, len(w.Data))
	}
	return nil
}

// Linear computes out[i][j] = sum_k x[i][k] * w[j][k] for i < m, j < w.N: out
// = x · wᵀ. x is [m, w.K] and out is [m, w.N], both float32 row-major; out is
// overwritten and must not overlap x. The work is spread over GOMAXPROCS
// goroutines.
//
// Preconditions (panics otherwise): w.Check() == nil, m >= 0,
// len(x) >= m*w.K, len(out) >= m*w.N.
func Linear(out, x []float32, w Weight, m int) {
	LinearMulti([][]float32{out}, x, []Weight{w}, m)
}

// LinearMulti computes outs[i] = x · ws[i]ᵀ for weights that share K (the
// q, k and v projections of one input, or gate and up), packing x once for
// all of them and spreading every weight's columns over one pool of
// goroutines. Each out is as in Linear; the results are bit-identical to
// separate Linear calls.
//
// Preconditions (panics otherwise): len(outs) == len(ws) > 0, every
// ws[i].Check() == nil with the same K, m >= 0, len(x) >= m*K,
// len(outs[i]) >= m*ws[i].N, and no out overlaps x or another out.
func LinearMulti(outs [][]float32, x []float32, ws []Weight, m int) {
	if len(ws) == 0 || len(outs) != len(ws) {
		panic(fmt.Sprintf("gemm.LinearMulti: %d outputs for %d weights", len(outs), len(ws)))
	}
	if m < 0 {
		panic(fmt.Sprintf("gemm.Linear: m = %d", m))
	}
	k := ws[0].K
	for i, w := range ws {
		if err := w.Check(); err != nil {
			panic(fmt.Sprintf("gemm.Linear: weight %d: %v", i, err))
		}
		if w.K != k {
			panic(fmt.Sprintf("gemm.LinearMulti: weight %d has K = %d, weight 0 has %d", i, w.K, k))
		}
		if len(outs[i]) < m*w.N {
			panic(fmt.Sprintf("gemm.Linear: out %d has %d floats, [%d, %d] needs %d", i, len(outs[i]), m, w.N, m*w.N))
		}
	}
	if len(x) < m*k {
		panic(fmt.Sprintf("gemm.Linear: x has %d floats, [%d, %d] needs %d", len(x), m, k, m*k))
	}
	if m == 0 {
		return
	}
	linearMulti(outs, x, ws, m)
}

// SgemmNT computes C = A · Bᵀ: c[i*ldc+j] = sum_p a[i*lda+p] * b[j*ldb+p] for
// i < m, j < n, p < k. C is overwritten (entries outside the m×n block are
// left alone). It runs on the calling goroutine: attention calls it once per
// head from goroutines of its own.
//
// Preconditions (panics otherwise): m, n, k >= 0, lda >= k, ldb >= k,
// ldc >= n, and each slice long enough for its last row.
func SgemmNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkStrided("SgemmNT", "a", a, m, k, lda)
	checkStrided("SgemmNT", "b", b, n, k, ldb)
	checkStrided("SgemmNT", "c", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	sgemmNT(m, n, k, a, lda, b, ldb, c, ldc)
}

// SgemmNN computes C = A · B: c[i*ldc+j] = sum_p a[i*lda+p] * b[p*ldb+j] for
// i < m, j < n, p < k (attention's P·V with V stored [tokens, head_dim]). C is
// overwritten. It runs on the calling goroutine.
//
// Preconditions (panics otherwise): m, n, k >= 0, lda >= k, ldb >= n,
// ldc >= n, and each slice long enough for its last row.
func SgemmNN(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	checkStrided("SgemmNN", "a", a, m, k, lda)
	checkStrided("SgemmNN", "b", b, k, n, ldb)
	checkStrided("SgemmNN", "c", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	sgemmNN(m, n, k, a, lda, b, ldb, c, ldc)
}

func checkStrided(fn, name string, s []float32, rows, cols, ld int) {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("gemm.%s: %s shape [%d, %d] negative", fn, name, rows, cols))
	}
	if ld < cols || ld < 1 {
		panic(fmt.Sprintf("gemm.%s: ld%s = %d < %d columns", fn, name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("gemm.%s: %s has %d floats, [%d, %d] with stride %d needs %d", fn, name, len(s), rows, cols, ld, need))
	}
}

// bf16ToFloat32 widens one bfloat16 (the top half of a float32).
func bf16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f16ToFloat32 widens one IEEE half, subnormals, infinities and NaN included.
func f16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: normalise into a float32.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}
