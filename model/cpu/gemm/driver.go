package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The blocked driver shared by every kernel. C[m, n] = A[m, k] · B[k, n]
// with B given by a bSource (a weight read as its transpose, or float32
// operands). A is packed once into panels of mr rows laid out [panel][k][mr],
// so a k-block of a panel is contiguous and stays in L1 while the kernel
// streams a block of B (blockK × blockN, widened to float32 and packed into
// panels of nr columns, [panel][k][nr]) from L2. Goroutines take blocks of
// blockN columns of C, so each reads distinct weight rows.

const (
	blockK = 256 // depth of one packed block: a 12×256 A panel is 12 KiB of L1
	blockN = 256 // columns per block: the packed B block is 256 KiB of L2
)

// impl is one microkernel family: micro sets (or, with accumulate, adds to)
// the mr×nr tile of C at c[0] (row stride ldc) the product of an A panel
// (kc×mr floats) and a B panel (kc×nr floats).
type impl struct {
	kind   kernel
	mr, nr int
	micro  func(kc int, a, b, c []float32, ldc int, accumulate bool)
}

// bSource packs blocks of the K×N operand B.
type bSource interface {
	// pack writes columns [j0, j0+cols) over depth [k0, k0+kc) into dst as
	// ceil(cols/nr) panels, dst[s*kc*nr + kk*nr + jj] = B[k0+kk][j0+s*nr+jj];
	// columns at or past cols within the last panel are zero.
	pack(dst []float32, nr, j0, cols, k0, kc int)
}

var (
	aPool    = sync.Pool{New: func() any { return new([]float32) }}
	blockBuf = sync.Pool{New: func() any { return new(workerBuf) }}
)

// workerBuf is one goroutine's packed B block and edge tile.
type workerBuf struct {
	b    []float32
	tile []float32
}

// grow returns (*p)[:n], reallocating when the pooled slice is too short.
func grow(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// gemm computes C = A·B for A [m, k] (row stride lda), B from src, C [m, n]
// (row stride ldc, overwritten). parallel spreads column blocks over
// GOMAXPROCS goroutines; otherwise everything runs on the caller.
func gemm(im *impl, m, n, k int, a []float32, lda int, src bSource, c []float32, ldc int, parallel bool) {
	gemmMulti(im, m, k, a, lda, []cTarget{{src, c, ldc, n}}, parallel)
}

// cTarget is one product of a multi-output call: C [m, n] (row stride ldc)
// = A·B with B from src.
type cTarget struct {
	src bSource
	c   []float32
	ldc int
	n   int
}

// blockRef names block jb of target t: the column blocks of all targets of
// a call form one work list, so goroutines balance across them.
type blockRef struct{ t, jb int }

func blockList(ns []int) []blockRef {
	var refs []blockRef
	for t, n := range ns {
		for jb := 0; jb*blockN < n; jb++ {
			refs = append(refs, blockRef{t, jb})
		}
	}
	return refs
}

// gemmMulti computes every target's C = A·B, packing A once.
func gemmMulti(im *impl, m, k int, a []float32, lda int, targets []cTarget, parallel bool) {
	if k == 0 {
		for _, t := range targets {
			for i := 0; i < m; i++ {
				clear(t.c[i*t.ldc : i*t.ldc+t.n])
			}
		}
		return
	}
	mr, nr := im.mr, im.nr
	panels := (m + mr - 1) / mr
	ap := aPool.Get().(*[]float32)
	apack := grow(ap, panels*mr*k)
	workers := 1
	if parallel {
		workers = runtime.GOMAXPROCS(0)
	}

	// Pack A: panel p holds rows p*mr.. as [k][mr], zero rows past m.
	forEach(panels, workers, 2*mr*k, func(p int) {
		dst := apack[p*mr*k : (p+1)*mr*k]
		for r := 0; r < mr; r++ {
			i := p*mr + r
			if i >= m {
				for kk := 0; kk < k; kk++ {
					dst[kk*mr+r] = 0
				}
				continue
			}
			row := a[i*lda : i*lda+k]
			for kk, v := range row {
				dst[kk*mr+r] = v
			}
		}
	})

	ns := make([]int, len(targets))
	for i, t := range targets {
		ns[i] = t.n
	}
	refs := blockList(ns)
	forEach(len(refs), workers, 2*m*k*blockN, func(ref int) {
		tg, jb := targets[refs[ref].t], refs[ref].jb
		src, c, ldc, n := tg.src, tg.c, tg.ldc, tg.n
		wb := blockBuf.Get().(*workerBuf)
		j0 := jb * blockN
		cols := min(blockN, n-j0)
		nsub := (cols + nr - 1) / nr
		tile := grow(&wb.tile, mr*nr)
		for k0 := 0; k0 < k; k0 += blockK {
			kc := min(blockK, k-k0)
			bpack := grow(&wb.b, nsub*kc*nr)
			src.pack(bpack, nr, j0, cols, k0, kc)
			acc := k0 > 0
			for p := 0; p < panels; p++ {
				apan := apack[p*mr*k+k0*mr : p*mr*k+(k0+kc)*mr]
				i0 := p * mr
				rows := min(mr, m-i0)
				for s := 0; s < nsub; s++ {
					bpan := bpack[s*kc*nr : (s+1)*kc*nr]
					jc := j0 + s*nr
					w := min(nr, n-jc)
					if rows == mr && w == nr {
						im.micro(kc, apan, bpan, c[i0*ldc+jc:(i0+mr-1)*ldc+jc+nr], ldc, acc)
						continue
					}
					im.micro(kc, apan, bpan, tile, nr, false)
					for r := 0; r < rows; r++ {
						dst := c[(i0+r)*ldc+jc : (i0+r)*ldc+jc+w]
						t := tile[r*nr : r*nr+w]
						if acc {
							for x := range dst {
								dst[x] += t[x]
							}
						} else {
							copy(dst, t)
						}
					}
				}
			}
		}
		blockBuf.Put(wb)
	})
	aPool.Put(ap)
}

// forEach calls body(i) for i in [0, n) on up to workers goroutines (the
// caller included), handing out indices one at a time so a slow core does
// not hold up the rest. cost (flops per index) keeps small jobs serial.
func forEach(n, workers, cost int, body func(i int)) {
	const minWork = 1 << 20 // flops worth a goroutine start
	if byWork := n * cost / minWork; byWork < workers {
		workers = max(byWork, 1)
	}
	workers = min(workers, n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			body(i)
		}
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			body(i)
		}
	}
	var wg sync.WaitGroup
	for t := 1; t < workers; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}

// weightB reads B = wᵀ from a stored [N, K] weight, widening to float32.
type weightB struct{ w Weight }

func (s weightB) pack(dst []float32, nr, j0, cols, k0, kc int) {
	packPanels(dst, nr, &s.w, nil, 0, j0, cols, k0, kc)
}

// ntB reads B = bᵀ from float32 rows b[j*ldb+kk].
type ntB struct {
	b   []float32
	ldb int
}

func (s ntB) pack(dst []float32, nr, j0, cols, k0, kc int) {
	packPanels(dst, nr, nil, s.b, s.ldb, j0, cols, k0, kc)
}

// packPanels packs the rows [j0, j0+cols) of a row-major matrix (a weight, or
// float32 rows when w is nil) as panels of nr columns, zero-filling the last.
func packPanels(dst []float32, nr int, w *Weight, f []float32, ld, j0, cols, k0, kc int) {
	for s0 := 0; s0 < cols; s0 += nr {
		panel := dst[s0*kc : s0*kc+kc*nr]
		rows := min(nr, cols-s0)
		packRows(panel, nr, w, f, ld, j0+s0, rows, k0, kc)
		for kk := 0; rows < nr && kk < kc; kk++ {
			clear(panel[kk*nr+rows : kk*nr+nr])
		}
	}
}

// nnB reads B directly from float32 rows b[kk*ldb+j].
type nnB struct {
	b   []float32
	ldb int
}

func (s nnB) pack(dst []float32, nr, j0, cols, k0, kc int) {
	for s0 := 0; s0 < cols; s0 += nr {
		panel := dst[s0*kc : s0*kc+kc*nr]
		w := min(nr, cols-s0)
		for kk := 0; kk < kc; kk++ {
			row := s.b[(k0+kk)*s.ldb+j0+s0:]
			d := panel[kk*nr : kk*nr+nr]
			copy(d[:w], row[:w])
			clear(d[w:])
		}
	}
}
