//go:build !amd64

package cpu

const hasExpAVX512 = false

// expSlice sets dst[i] = expf(src[i]); dst and src may be the same slice.
func expSlice(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = expf(src[i])
	}
}
