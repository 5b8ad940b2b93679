package cuda

import (
	"fmt"

	"llamaembed/model/cuda/driver"
)

// Tile sizes and block sizes of the kernels. They mirror the #defines of
// kernels/*.cu; TestGeometryMatchesKernelSources reads the sources to keep
// them in step.
const (
	gemmBM, gemmBN, gemmBK = 128, 128, 32
	gemmStages             = 4
	gemmThreads            = 256
	gemmLDS                = gemmBK + 8
	gemmSmemBytes          = gemmStages * (gemmBM + gemmBN) * gemmLDS * 2

	gemmWBM, gemmWBN, gemmWBK = 128, 128, 64
	gemmWStages               = 4
	gemmWThreads              = 256
	gemmWSmemBytes            = gemmWStages*(gemmWBM+gemmWBN)*gemmWBK*2 + 1024

	attnBQ, attnBKV = 64, 64
	attnThreads     = 128

	normThreads   = 256
	ropeThreads   = 256
	swigluThreads = 256
	embedThreads  = 256
	poolThreads   = 256
)

// launch is one kernel launch's geometry.
type launch struct {
	Grid, Block driver.Dim3
	Smem        uint32 // dynamic shared memory bytes
}

func dim(x int) driver.Dim3     { return driver.Dim3{X: uint32(x), Y: 1, Z: 1} }
func dim2(x, y int) driver.Dim3 { return driver.Dim3{X: uint32(x), Y: uint32(y), Z: 1} }
func ceilDiv(a, b int) int      { return (a + b - 1) / b }

// The driver's grid limits: x up to 2^31-1, y and z up to 65535.
const maxGridX, maxGridY = 1<<31 - 1, 65535

func checkGrid(kernel string, l launch) (launch, error) {
	if l.Grid.X == 0 || l.Grid.Y == 0 || uint64(l.Grid.X) > maxGridX || l.Grid.Y > maxGridY {
		return l, fmt.Errorf("%s: grid %dx%d outside the device's limits", kernel, l.Grid.X, l.Grid.Y)
	}
	return l, nil
}

// gemmLaunch: Y[m,n] = X[m,k] W[n,k]ᵀ; one block per 128x128 tile of Y.
func gemmLaunch(m, n, k int) (launch, error) {
	if m <= 0 || n <= 0 || k <= 0 || k%8 != 0 || n%2 != 0 {
		return launch{}, fmt.Errorf("gemm %dx%dx%d: need positive sizes, K%%8 == 0 and N%%2 == 0", m, n, k)
	}
	return checkGrid("gemm", launch{Grid: dim2(ceilDiv(n, gemmBN), ceilDiv(m, gemmBM)), Block: dim(gemmThreads), Smem: gemmSmemBytes})
}

// gemmSwiGLULaunch is the geometry of the fused gate/up + SwiGLU GEMM (either
// variant): n = 2*inter rows of interleaved weights, in pairs of 8-row blocks.
func gemmSwiGLULaunch(wgmma bool, m, n, k int) (launch, error) {
	if n%16 != 0 {
		return launch{}, fmt.Errorf("gemm swiglu %dx%dx%d: N must be a multiple of 16 (gate/up blocks of 8)", m, n, k)
	}
	if wgmma {
		return gemmWLaunch(m, n, k)
	}
	return gemmLaunch(m, n, k)
}

// gemmWLaunch is gemmLaunch for the sm_90a wgmma kernel.
func gemmWLaunch(m, n, k int) (launch, error) {
	if m <= 0 || n <= 0 || k <= 0 || k%8 != 0 || n%2 != 0 {
		return launch{}, fmt.Errorf("gemm %dx%dx%d: need positive sizes, K%%8 == 0 and N%%2 == 0", m, n, k)
	}
	return checkGrid("gemm_wgmma", launch{Grid: dim2(ceilDiv(n, gemmWBN), ceilDiv(m, gemmWBM)), Block: dim(gemmWThreads), Smem: gemmWSmemBytes})
}

// attnSmemBytes is the attention kernel's dynamic shared memory: a Q tile
// and two double-buffered K and V tiles.
func attnSmemBytes(headDim int) uint32 {
	return uint32((attnBQ + 2*2*attnBKV) * headDim * 2)
}

// attnLaunch: one block per (query tile, head).
func attnLaunch(tiles, heads, headDim int) (launch, error) {
	if !hasAttnKernel(headDim) {
		return launch{}, fmt.Errorf("attention: no kernel for head_dim %d", headDim)
	}
	return checkGrid("attention", launch{Grid: dim2(tiles, heads), Block: dim(attnThreads), Smem: attnSmemBytes(headDim)})
}

// rowLaunch: one block per token (norm, embedding).
func rowLaunch(kernel string, tokens, threads int) (launch, error) {
	return checkGrid(kernel, launch{Grid: dim(tokens), Block: dim(threads)})
}

// flatLaunch: one thread per element, n elements.
func flatLaunch(kernel string, n, threads int) (launch, error) {
	return checkGrid(kernel, launch{Grid: dim(ceilDiv(n, threads)), Block: dim(threads)})
}

func ropeLaunch(tokens int, s shape) (launch, error) {
	return flatLaunch("rope", tokens*(s.Heads+s.KVHeads)*(s.HeadDim/2), ropeThreads)
}

func swigluLaunch(tokens, inter int) (launch, error) {
	return flatLaunch("swiglu", tokens*inter/2, swigluThreads)
}

func meanPoolLaunch(seqs, hidden int) (launch, error) {
	return checkGrid("mean_pool", launch{Grid: dim2(seqs, ceilDiv(hidden, poolThreads)), Block: dim(poolThreads)})
}

func normalizeLaunch(seqs int) (launch, error) {
	return checkGrid("l2_normalize", launch{Grid: dim(seqs), Block: dim(poolThreads)})
}
