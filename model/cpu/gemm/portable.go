package gemm

import (
	"runtime"
	"sync"
)

// The portable path: weight rows are widened a block at a time into a pooled
// buffer and each output is a 4-way unrolled dot product. It is the reference
// the tuned kernels are tested against and the path on machines without them.

const portableRows = 16 // weight rows widened per block

var rowPool = sync.Pool{New: func() any { return new([]float32) }}

func linearPortable(out, x []float32, w Weight, m int) {
	blocks := (w.N + portableRows - 1) / portableRows
	parallelFor(blocks, 2*m*w.K*portableRows, func(b0, b1 int) {
		bufp := rowPool.Get().(*[]float32)
		need := portableRows * w.K
		if cap(*bufp) < need {
			*bufp = make([]float32, need)
		}
		buf := (*bufp)[:need]
		for b := b0; b < b1; b++ {
			j0 := b * portableRows
			j1 := min(j0+portableRows, w.N)
			for j := j0; j < j1; j++ {
				decodeRow(buf[(j-j0)*w.K:(j-j0+1)*w.K], w, j, 0)
			}
			for i := 0; i < m; i++ {
				xi := x[i*w.K : (i+1)*w.K]
				oi := out[i*w.N : (i+1)*w.N]
				for j := j0; j < j1; j++ {
					oi[j] = dot(xi, buf[(j-j0)*w.K:(j-j0+1)*w.K])
				}
			}
		}
		rowPool.Put(bufp)
	})
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func sgemmNTPortable(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		ai := a[i*lda : i*lda+k]
		for j := 0; j < n; j++ {
			c[i*ldc+j] = dot(ai, b[j*ldb:j*ldb+k])
		}
	}
}

func sgemmNNPortable(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		clear(ci)
		for p := 0; p < k; p++ {
			s := a[i*lda+p]
			bp := b[p*ldb : p*ldb+n]
			for j := range ci {
				ci[j] += s * bp[j]
			}
		}
	}
}

// parallelFor runs body over [0, n) split into contiguous chunks, one per
// worker, on up to GOMAXPROCS goroutines. costPerItem (flops) keeps small
// problems on the calling goroutine, where a goroutine start would cost more
// than it saves.
func parallelFor(n, costPerItem int, body func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	const minWork = 1 << 18 // flops per goroutine worth starting
	if byWork := n * costPerItem / minWork; byWork < workers {
		workers = max(byWork, 1)
	}
	workers = min(workers, n)
	if workers <= 1 {
		body(0, n)
		return
	}
	var wg sync.WaitGroup
	for t := 0; t < workers; t++ {
		lo, hi := t*n/workers, (t+1)*n/workers
		if t == workers-1 {
			body(lo, hi)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	wg.Wait()
}
