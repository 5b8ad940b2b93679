package cpu

import (
	"math"
	"runtime"
	"sync"
)

// parallelFor runs body over [0, n) split into contiguous chunks, one per
// worker. Each index is handled by exactly one call, so a result written per
// index never depends on how the range was split.
func parallelFor(n int, body func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { body(lo, hi) })
	}
	wg.Wait()
}

// rmsNorm writes out[r] = weight * x[r] / sqrt(mean(x[r]^2) + eps) for each
// row of width len(weight). The mean of squares is summed in float64; the
// scaling is float32, as in transformers' LlamaRMSNorm.
func rmsNorm(out, x, weight []float32, eps float64) {
	width := len(weight)
	rows := len(x) / width
	parallelFor(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rmsNormRow(out[r*width:(r+1)*width], x[r*width:(r+1)*width], weight, eps)
		}
	})
}

func rmsNormRow(out, x, weight []float32, eps float64) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	scale := float32(1 / math.Sqrt(ss/float64(len(x))+eps))
	for i, v := range x {
		out[i] = weight[i] * (v * scale)
	}
}

// swiGLU writes gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g).
func swiGLU(gate, up []float32) {
	const chunk = 4096
	parallelFor((len(gate)+chunk-1)/chunk, func(lo, hi int) {
		// e^-g for a block at a time goes through expSlice (vectorised);
		// the block lives on the stack.
		var e [256]float32
		for b := lo * chunk; b < min(hi*chunk, len(gate)); b += len(e) {
			g := gate[b:min(b+len(e), hi*chunk, len(gate))]
			eb := e[:len(g)]
			for i, v := range g {
				eb[i] = -v
			}
			expSlice(eb, eb)
			u := up[b : b+len(g)]
			for i, v := range g {
				g[i] = float32(float64(v)/(1+float64(eb[i]))) * u[i]
			}
		}
	})
}

// addInto adds src into dst element-wise (the residual connections).
func addInto(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

// softmaxRow replaces row by its softmax, subtracting the maximum first so
// exp never overflows. Sums are taken in float64.
func softmaxRow(row []float32) {
	m := row[0]
	for _, v := range row[1:] {
		if v > m {
			m = v
		}
	}
	for i, v := range row {
		row[i] = v - m
	}
	expSlice(row, row)
	var sum float64
	for _, e := range row {
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range row {
		row[i] *= inv
	}
}
