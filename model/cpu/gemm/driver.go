package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The blocked driver shared by every kernel. C[m, n] = A[m, k] · B[k, n]
// with B from a bSource (a weight read as its transpose, or float32
// operands). A is packed once into panels of mr rows laid out [panel][k][mr],
// so a k-block of a panel is contiguous and stays in L1 while the kernel
// streams a block of B (blockK × blockN, widened to float32 and packed into
// panels of nr columns, [panel][k][nr]) from L2. Goroutines take blocks of
// blockN columns of C, so each reads distinct weight rows. The serial path
// (attention's products) allocates nothing once the pools are warm.

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

// bKind says how a bSource stores B.
type bKind int

const (
	bWeight bKind = iota // B = wᵀ, w a stored [N, K] weight
	bRowsNT              // B = fᵀ, f float32 rows f[j*ld+kk]
	bRowsNN              // B = f, f float32 rows f[kk*ld+j]
)

// bSource is the K×N operand B of a product.
type bSource struct {
	kind bKind
	w    Weight
	f    []float32
	ld   int
}

// pack writes columns [j0, j0+cols) over depth [k0, k0+kc) into dst as
// ceil(cols/nr) panels, dst[s*kc*nr + kk*nr + jj] = B[k0+kk][j0+s*nr+jj];
// columns at or past cols within the last panel are zero.
func (s *bSource) pack(dst []float32, nr, j0, cols, k0, kc int) {
	switch s.kind {
	case bWeight:
		packPanels(dst, nr, &s.w, nil, 0, j0, cols, k0, kc)
	case bRowsNT:
		packPanels(dst, nr, nil, s.f, s.ld, j0, cols, k0, kc)
	case bRowsNN:
		packNN(dst, nr, s.f, s.ld, j0, cols, k0, kc)
	}
}

// cTarget is one product of a call: C [m, n] (row stride ldc) = A·B.
type cTarget struct {
	src bSource
	c   []float32
	ldc int
	n   int
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

// packedA is A packed into panels for one call.
type packedA struct {
	im        *impl
	m, k      int
	panels    int
	data      []float32
	poolSlice *[]float32
}

func newPackedA(im *impl, m, k int) packedA {
	panels := (m + im.mr - 1) / im.mr
	ap := aPool.Get().(*[]float32)
	return packedA{im: im, m: m, k: k, panels: panels, data: grow(ap, panels*im.mr*k), poolSlice: ap}
}

func (pa *packedA) release() { aPool.Put(pa.poolSlice) }

// packPanel packs panel p: rows p*mr.. of a (row stride lda) as [k][mr],
// zero rows past m.
func (pa *packedA) packPanel(a []float32, lda, p int) {
	mr, k := pa.im.mr, pa.k
	dst := pa.data[p*mr*k : (p+1)*mr*k]
	for r := 0; r < mr; r++ {
		i := p*mr + r
		if i >= pa.m {
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
}

// block computes column block jb of tg's C with the packed A.
func (pa *packedA) block(tg *cTarget, jb int, wb *workerBuf) {
	im, m, k := pa.im, pa.m, pa.k
	mr, nr := im.mr, im.nr
	c, ldc, n := tg.c, tg.ldc, tg.n
	j0 := jb * blockN
	cols := min(blockN, n-j0)
	nsub := (cols + nr - 1) / nr
	tile := grow(&wb.tile, mr*nr)
	for k0 := 0; k0 < k; k0 += blockK {
		kc := min(blockK, k-k0)
		bpack := grow(&wb.b, nsub*kc*nr)
		tg.src.pack(bpack, nr, j0, cols, k0, kc)
		acc := k0 > 0
		for p := 0; p < pa.panels; p++ {
			apan := pa.data[p*mr*k+k0*mr : p*mr*k+(k0+kc)*mr]
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
				// Edge tiles: the same kernel sum, added to C in Go in the
				// order the kernel adds (C + sum), so rows do not depend on
				// how many share a call.
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
}

// clearC zeroes C (the product over k = 0).
func clearC(tg *cTarget, m int) {
	for i := 0; i < m; i++ {
		clear(tg.c[i*tg.ldc : i*tg.ldc+tg.n])
	}
}

// gemmSerial computes one target's C = A·B for A [m, k] (row stride lda)
// on the calling goroutine.
func gemmSerial(im *impl, m, k int, a []float32, lda int, tg *cTarget) {
	if k == 0 {
		clearC(tg, m)
		return
	}
	pa := newPackedA(im, m, k)
	for p := 0; p < pa.panels; p++ {
		pa.packPanel(a, lda, p)
	}
	wb := blockBuf.Get().(*workerBuf)
	for jb := 0; jb*blockN < tg.n; jb++ {
		pa.block(tg, jb, wb)
	}
	blockBuf.Put(wb)
	pa.release()
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

// gemmMulti computes every target's C = A·B, packing A once, with column
// blocks spread over GOMAXPROCS goroutines.
func gemmMulti(im *impl, m, k int, a []float32, lda int, targets []cTarget) {
	if k == 0 {
		for i := range targets {
			clearC(&targets[i], m)
		}
		return
	}
	workers := runtime.GOMAXPROCS(0)
	pa := newPackedA(im, m, k)
	forEach(pa.panels, workers, 2*im.mr*k, func(p int) { pa.packPanel(a, lda, p) })
	ns := make([]int, len(targets))
	for i, t := range targets {
		ns[i] = t.n
	}
	refs := blockList(ns)
	forEach(len(refs), workers, 2*m*k*blockN, func(ref int) {
		wb := blockBuf.Get().(*workerBuf)
		pa.block(&targets[refs[ref].t], refs[ref].jb, wb)
		blockBuf.Put(wb)
	})
	pa.release()
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

// packNN packs B stored directly as float32 rows b[kk*ld+j].
func packNN(dst []float32, nr int, b []float32, ld, j0, cols, k0, kc int) {
	for s0 := 0; s0 < cols; s0 += nr {
		panel := dst[s0*kc : s0*kc+kc*nr]
		w := min(nr, cols-s0)
		for kk := 0; kk < kc; kk++ {
			row := b[(k0+kk)*ld+j0+s0:]
			d := panel[kk*nr : kk*nr+nr]
			copy(d[:w], row[:w])
			clear(d[w:])
		}
	}
}
