package gemm

import (
	"math"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"
)

// AMX path for BF16 weights. The float32 activations are split exactly into
// three bf16 parts, x = hi + mid + lo (8 + 8 + 8 significand bits, by
// truncation: each remainder is exact in float32 and the last fits bf16),
// so every product with a bf16 weight is exact and the only rounding is the
// float32 accumulation inside TDPBF16PS, as in a float32 GEMM. Three tile
// products per weight tile still run several times faster than 512-bit FMAs.
// Denormal inputs and outputs are flushed to zero by the tile unit.

//go:noescape
func amxTiles(cfg *byte, a *uint16, b *uint32, c *float32, ldc, nchunks, nsub int, accumulate bool)

//go:noescape
func transDW16(dst *uint32, src *byte, rowBytes, n, nr int)

const (
	amxMR     = 32 // rows of a C tile block: two 16-row tiles
	amxNR     = 32 // columns: two 16-column tiles
	amxChunk  = 32 // k per tile product (32 bf16 = 64 bytes)
	amxBlockK = 256
)

// amxConfig is the LDTILECFG block: palette 1, eight tiles of 16 rows × 64
// bytes.
var amxConfig = func() *[64]byte {
	var c [64]byte
	c[0] = 1
	for t := 0; t < 8; t++ {
		c[16+2*t] = 64
		c[48+t] = 16
	}
	return &c
}()

// amxEnabled reports whether the CPU has AMX-BF16 and Linux granted this
// process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA).
// LLAMAEMBED_GEMM=avx512 (or any other value but "amx" or "") turns it off.
var amxEnabled = sync.OnceValue(func() bool {
	if v := os.Getenv("LLAMAEMBED_GEMM"); v != "" && v != "amx" {
		return false
	}
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 || !cpu.X86.HasAVX512F {
		return false
	}
	return requestAMX()
})

var amxImpl = &impl{kind: kernelAMX, mr: 12, nr: 32, micro: microAVX512}

// amxPools hold the split activations and per-goroutine weight blocks.
var (
	amxAPool = sync.Pool{New: func() any { return new([]uint16) }}
	amxBPool = sync.Pool{New: func() any { return new(amxWorker) }}
)

type amxWorker struct {
	b    []uint32
	tile []float32
}

// linearAMX is LinearMulti for BF16 weights (all with the same K) on the
// tile unit: the split activations are packed once for every weight.
func linearAMX(outs [][]float32, x []float32, ws []Weight, m int, workers int) {
	k := ws[0].K
	chunks := (k + amxChunk - 1) / amxChunk
	panels := (m + amxMR - 1) / amxMR
	const chunkElems = 3 * 2 * 16 * amxChunk // bf16 per chunk of a panel
	ap := amxAPool.Get().(*[]uint16)
	if cap(*ap) < panels*chunks*chunkElems {
		*ap = make([]uint16, panels*chunks*chunkElems)
	}
	apack := (*ap)[:panels*chunks*chunkElems]
	forEach(panels, workers, 64*k*amxMR, func(p int) {
		packSplitA(apack[p*chunks*chunkElems:(p+1)*chunks*chunkElems], x, k, p*amxMR, min(amxMR, m-p*amxMR), chunks)
	})

	ns := make([]int, len(ws))
	for i, w := range ws {
		ns[i] = w.N
	}
	refs := blockList(ns)
	forEach(len(refs), workers, 2*m*k*blockN, func(ref int) {
		out, w, jb := outs[refs[ref].t], ws[refs[ref].t], refs[ref].jb
		n := w.N
		wk := amxBPool.Get().(*amxWorker)
		j0 := jb * blockN
		cols := min(blockN, n-j0)
		nsub := (cols + amxNR - 1) / amxNR
		full := cols / amxNR
		if cap(wk.tile) < amxMR*amxNR {
			wk.tile = make([]float32, amxMR*amxNR)
		}
		tile := wk.tile[:amxMR*amxNR]
		const blockChunks = amxBlockK / amxChunk
		for c0 := 0; c0 < chunks; c0 += blockChunks {
			nch := min(blockChunks, chunks-c0)
			need := nsub * nch * 512
			var bpack []uint32
			if w.packed != nil {
				off := amxBlockOffset(jb, c0, nsub, chunks)
				bpack = w.packed.tiles[off : off+need]
			} else {
				if cap(wk.b) < need {
					wk.b = make([]uint32, need)
				}
				bpack = wk.b[:need]
				packBlock(bpack, w, j0, cols, c0, nch)
			}
			acc := c0 > 0
			for p := 0; p < panels; p++ {
				i0 := p * amxMR
				rows := min(amxMR, m-i0)
				a := &apack[(p*chunks+c0)*chunkElems]
				s := 0
				if rows == amxMR && full > 0 {
					_ = out[(i0+amxMR-1)*n+j0+full*amxNR-1]
					amxTiles(&amxConfig[0], a, &bpack[0], &out[i0*n+j0], n, nch, full, acc)
					s = full
				}
				// Edge tiles go through a 32×32 buffer, with the same tile
				// arithmetic as full ones (C loaded into the tile, then
				// accumulated), so a row's result never depends on how many
				// rows share its call.
				for ; s < nsub; s++ {
					jc := j0 + s*amxNR
					wcols := min(amxNR, n-jc)
					if acc {
						for r := 0; r < rows; r++ {
							copy(tile[r*amxNR:r*amxNR+wcols], out[(i0+r)*n+jc:(i0+r)*n+jc+wcols])
						}
					}
					amxTiles(&amxConfig[0], a, &bpack[s*nch*512], &tile[0], amxNR, nch, 1, acc)
					for r := 0; r < rows; r++ {
						copy(out[(i0+r)*n+jc:(i0+r)*n+jc+wcols], tile[r*amxNR:r*amxNR+wcols])
					}
				}
			}
		}
		amxBPool.Put(wk)
	})
	amxAPool.Put(ap)
}

// packSplitA writes rows [i0, i0+rows) of x ([*, k]) as one AMX panel:
// dst[((c*3+part)*2+half)*512 + r*32 + kk] is part (hi, mid, lo) of
// x[i0+half*16+r][c*32+kk]; rows past rows and k past k are zero.
func packSplitA(dst []uint16, x []float32, k, i0, rows, chunks int) {
	full := k / amxChunk
	if rows < amxMR || full < chunks {
		clear(dst)
	}
	for r := 0; r < rows; r++ {
		row := x[(i0+r)*k : (i0+r+1)*k]
		half, rr := r/16, r%16
		kk := 0
		if full > 0 {
			_ = dst[((full-1)*3*2+half)*512+rr*32+2048+31]
			splitRowBF16x3(&dst[half*512+rr*32], &row[0], full)
			kk = full * amxChunk
		}
		for ; kk < k; kk++ {
			c, kc := kk/amxChunk, kk%amxChunk
			base := (c*3*2+half)*512 + rr*32 + kc
			v := row[kk]
			hi := math.Float32bits(v) &^ 0xffff
			r1 := v - math.Float32frombits(hi)
			mid := math.Float32bits(r1) &^ 0xffff
			lo := r1 - math.Float32frombits(mid)
			dst[base] = uint16(hi >> 16)
			dst[base+1024] = uint16(mid >> 16)
			dst[base+2048] = uint16(math.Float32bits(lo) >> 16)
		}
	}
}

// packPairs writes weight rows [j0, j0+cols) (at most 32), chunks
// [c0, c0+nch) of 32 k, as B tiles: dst[(c*2+half)*256 + kp*16 + jj] is the
// bf16 pair (k = 2kp, 2kp+1) of row j0+half*16+jj. Missing rows and k past
// K are zero.
func packPairs(dst []uint32, w Weight, j0, cols, c0, nch int) {
	k := w.K
	rowBytes := k * 2
	fullChunks := 0
	if k0 := c0 * amxChunk; k0 < k {
		fullChunks = min(nch, (k-k0)/amxChunk)
	}
	for half := 0; half < 2; half++ {
		jh := j0 + half*16
		n := min(16, cols-half*16)
		done := 0
		if n == 16 && fullChunks > 0 && rowBytes <= maxGatherRowBytes {
			_ = w.Data[((jh+15)*k+(c0+fullChunks)*amxChunk)*2-1]
			transDW16(&dst[half*256], &w.Data[(jh*k+c0*amxChunk)*2], rowBytes, fullChunks, 512)
			done = fullChunks
		}
		for c := done; c < nch; c++ {
			tileDst := dst[(c*2+half)*256 : (c*2+half+1)*256]
			clear(tileDst)
			for jj := 0; jj < max(n, 0); jj++ {
				row := w.Data[(jh+jj)*rowBytes : (jh+jj+1)*rowBytes]
				for kp := 0; kp < 16; kp++ {
					kk := (c0+c)*amxChunk + 2*kp
					var lo, hi uint32
					if kk < k {
						lo = uint32(row[2*kk]) | uint32(row[2*kk+1])<<8
					}
					if kk+1 < k {
						hi = uint32(row[2*kk+2]) | uint32(row[2*kk+3])<<8
					}
					tileDst[kp*16+jj] = lo | hi<<16
				}
			}
		}
	}
}

//go:noescape
func splitRowBF16x3(dst *uint16, src *float32, chunks int)

// packBlock packs columns [j0, j0+cols) of w, chunks [c0, c0+nch), as the
// tile panels of one work block.
func packBlock(dst []uint32, w Weight, j0, cols, c0, nch int) {
	for s := 0; s*amxNR < cols; s++ {
		packPairs(dst[s*nch*512:(s+1)*nch*512], w, j0+s*amxNR, min(amxNR, cols-s*amxNR), c0, nch)
	}
}

// amxPacked is a BF16 weight laid out once in the tile order linearAMX
// reads: block (jb, c0) of packBlock at amxBlockOffset.
type amxPacked struct{ tiles []uint32 }

// amxBlockOffset is where column block jb, chunk c0 starts: every earlier
// column block is full (blockN columns over all chunks) and every earlier
// k-block of this one is full (amxBlockK).
func amxBlockOffset(jb, c0, nsub, chunks int) int {
	return jb*(blockN/amxNR)*chunks*512 + nsub*c0*512
}

func packAMX(w Weight) Weight {
	chunks := (w.K + amxChunk - 1) / amxChunk
	nblocks := (w.N + blockN - 1) / blockN
	size := 0
	for jb := 0; jb < nblocks; jb++ {
		size += (min(blockN, w.N-jb*blockN) + amxNR - 1) / amxNR * chunks * 512
	}
	p := &amxPacked{tiles: make([]uint32, size)}
	const blockChunks = amxBlockK / amxChunk
	forEach(nblocks, runtime.GOMAXPROCS(0), 1<<20, func(jb int) {
		j0 := jb * blockN
		cols := min(blockN, w.N-j0)
		nsub := (cols + amxNR - 1) / amxNR
		for c0 := 0; c0 < chunks; c0 += blockChunks {
			nch := min(blockChunks, chunks-c0)
			off := amxBlockOffset(jb, c0, nsub, chunks)
			packBlock(p.tiles[off:off+nsub*nch*512], w, j0, cols, c0, nch)
		}
	})
	w.packed = p
	return w
}
