package gemm

import (
	"encoding/binary"
	"math"

	"llamaembed/weights"
)

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
