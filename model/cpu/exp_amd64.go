package cpu

import "golang.org/x/sys/cpu"

//go:noescape
func expAVX512(dst, src *float32, n int)

var hasExpAVX512 = cpu.X86.HasAVX512F

// expSlice sets dst[i] = expf(src[i]); dst and src may be the same slice.
func expSlice(dst, src []float32) {
	src = src[:len(dst)]
	n := 0
	if hasExpAVX512 {
		n = len(dst) &^ 7
		if n > 0 {
			expAVX512(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(dst); i++ {
		dst[i] = expf(src[i])
	}
}
