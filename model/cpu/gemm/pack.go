package gemm

import (
	"encoding/binary"
	"math"
	"unsafe"

	"llamaembed/weights"
)

// packRows writes rows [j0, j0+rows) of a row-major matrix, elements
// [k0, k0+kc), transposed into dst: dst[kk*nr+jj] = row j0+jj, element k0+kk.
// The matrix is a stored weight (w) or float32 rows (f, stride ld) when w is
// nil. Groups of 16 rows go through the vector gather when the CPU has one.
func packRows(dst []float32, nr int, w *Weight, f []float32, ld, j0, rows, k0, kc int) {
	jj := 0
	if useGatherPack && kc >= 2 {
		for ; jj+16 <= rows; jj += 16 {
			packGroup16(dst[jj:], nr, w, f, ld, j0+jj, k0, kc)
		}
	}
	for ; jj < rows; jj++ {
		if w != nil {
			packWeightColumnGo(dst[jj:], nr, *w, j0+jj, k0, kc)
			continue
		}
		row := f[(j0+jj)*ld+k0 : (j0+jj)*ld+k0+kc]
		for kk, v := range row {
			dst[jj+kk*nr] = v
		}
	}
}

var probeNoTrans = false

// maxGatherRowBytes keeps 15 row strides inside the gather's int32 offsets.
var experimentX8 = true

const maxGatherRowBytes = math.MaxInt32 / 16

// packGroup16 packs 16 rows with assembly: a register transpose of 16
// lines at a time (32 two-byte or 16 four-byte elements per row), then dword
// gathers for the rest of kc, then Go for an odd last two-byte element,
// whose dword would read past kc.
func packGroup16(dst []float32, nr int, w *Weight, f []float32, ld, j, k0, kc int) {
	_ = dst[(kc-1)*nr+15] // the extent the assembly writes
	if w == nil {
		_ = f[(j+15)*ld+k0+kc-1]
		if ld*4 > maxGatherRowBytes {
			packRowsGo(dst, nr, f, ld, j, 16, k0, kc)
			return
		}
		src := (*byte)(unsafe.Pointer(&f[j*ld+k0]))
		packF32Group(dst, nr, src, ld*4, kc)
		return
	}
	size := w.DType.Size()
	rowBytes := w.K * size
	_ = w.Data[((j+15)*w.K+k0+kc)*size-1]
	if rowBytes > maxGatherRowBytes {
		for jj := 0; jj < 16; jj++ {
			packWeightColumnGo(dst[jj:], nr, *w, j+jj, k0, kc)
		}
		return
	}
	src := &w.Data[(j*w.K+k0)*size]
	if w.DType == weights.F32 {
		packF32Group(dst, nr, src, rowBytes, kc)
		return
	}
	trans, gather := transBF16x16, packBF16x16
	if w.DType == weights.F16 {
		trans, gather = transF16x16, packF16x16
	}
	lines := kc / 32
	if probeNoTrans {
		lines = 0
	}
	trans(&dst[0], src, rowBytes, lines, nr)
	if done := lines * 32; done+1 < kc {
		gather(&dst[done*nr], &w.Data[(j*w.K+k0+done)*size], rowBytes, (kc-done)/2, nr)
	}
	if kc%2 == 1 {
		for jj := 0; jj < 16; jj++ {
			packWeightColumnGo(dst[(kc-1)*nr+jj:], nr, *w, j+jj, k0+kc-1, 1)
		}
	}
}

// packF32Group packs 16 float32 rows starting at src (bounds checked by the caller).
func packF32Group(dst []float32, nr int, src *byte, rowBytes, kc int) {
	lines := kc / 16
	transF32x16(&dst[0], src, rowBytes, lines, nr)
	if done := lines * 16; done < kc {
		packF32x16(&dst[done*nr], (*byte)(unsafe.Add(unsafe.Pointer(src), done*4)), rowBytes, kc-done, nr)
	}
}

func packRowsGo(dst []float32, nr int, f []float32, ld, j0, rows, k0, kc int) {
	for jj := 0; jj < rows; jj++ {
		row := f[(j0+jj)*ld+k0 : (j0+jj)*ld+k0+kc]
		for kk, v := range row {
			dst[jj+kk*nr] = v
		}
	}
}

// packWeightColumnGo writes elements [k0, k0+kc) of weight row j, widened to
// float32, to dst[0], dst[stride], dst[2*stride], ...
func packWeightColumnGo(dst []float32, stride int, w Weight, j, k0, kc int) {
	switch w.DType {
	case weights.BF16:
		src := w.Data[(j*w.K+k0)*2 : (j*w.K+k0+kc)*2]
		for kk := 0; kk < kc; kk++ {
			dst[kk*stride] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*kk:])) << 16)
		}
	case weights.F16:
		src := w.Data[(j*w.K+k0)*2 : (j*w.K+k0+kc)*2]
		for kk := 0; kk < kc; kk++ {
			dst[kk*stride] = f16ToFloat32(binary.LittleEndian.Uint16(src[2*kk:]))
		}
	case weights.F32:
		src := w.Data[(j*w.K+k0)*4 : (j*w.K+k0+kc)*4]
		for kk := 0; kk < kc; kk++ {
			dst[kk*stride] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*kk:]))
		}
	}
}
