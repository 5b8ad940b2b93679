//go:build !amd64

package gemm

// useGatherPack is false: the transposing packs are Go loops here.
var useGatherPack = false

func packBF16x16(dst *float32, src *byte, rowBytes, n, nr int) { panic("gemm: no gather pack") }
func packF16x16(dst *float32, src *byte, rowBytes, n, nr int)  { panic("gemm: no gather pack") }
func packF32x16(dst *float32, src *byte, rowBytes, n, nr int)  { panic("gemm: no gather pack") }

func transBF16x16(dst *float32, src *byte, rowBytes, n, nr int) { panic("gemm: no gather pack") }
func transF16x16(dst *float32, src *byte, rowBytes, n, nr int)  { panic("gemm: no gather pack") }
func transF32x16(dst *float32, src *byte, rowBytes, n, nr int)  { panic("gemm: no gather pack") }
