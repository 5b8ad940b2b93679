package gemm

import "golang.org/x/sys/cpu"

//go:noescape
func packBF16x16(dst *float32, src *byte, rowBytes, n, nr int)

//go:noescape
func packF16x16(dst *float32, src *byte, rowBytes, n, nr int)

//go:noescape
func packF32x16(dst *float32, src *byte, rowBytes, n, nr int)

// useGatherPack selects the AVX-512 gathers for transposing packs (AVX512BW
// for VPMOVDW); tests turn it off to cover the Go loops.
var useGatherPack = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

//go:noescape
func transBF16x16(dst *float32, src *byte, rowBytes, n, nr int)

//go:noescape
func transF16x16(dst *float32, src *byte, rowBytes, n, nr int)

//go:noescape
func transF32x16(dst *float32, src *byte, rowBytes, n, nr int)
