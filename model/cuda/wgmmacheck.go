package cuda

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"

	"llamaembed/model/cuda/driver"
	"llamaembed/weights"
)

// checkWgmma runs the wgmma GEMM and the mma.sync GEMM on the same random
// problem (ragged in every dimension, with a residual) and enables wgmma
// only if the two agree: a Hopper-specific kernel that has never been
// verified on this driver and chip must not be the one that decides the
// embeddings. Driver failures are errors; disagreement is a logged warning
// and the mma.sync kernel stays in use.
func (ks *kernelSet) checkWgmma(s driver.Stream) error {
	if ks.gemmWgmma == 0 {
		return nil
	}
	const m, n, k = 200, 272, 328 // ragged in every dimension; n%16 == 0 for SwiGLU
	r := rand.New(rand.NewPCG(20261122, 1))
	bf16 := func(count int, scale float64) []byte {
		b := make([]byte, 2*count)
		for i := 0; i < count; i++ {
			binary.LittleEndian.PutUint16(b[2*i:], weights.Float32ToBF16(float32((r.Float64()*2-1)*scale)))
		}
		return b
	}
	var ptrs []driver.DevicePtr
	defer func() {
		for _, p := range ptrs {
			driver.MemFree(p)
		}
	}()
	dev := func(data []byte, n int) (driver.DevicePtr, error) {
		p, err := driver.MemAlloc(uint64(n))
		if err != nil {
			return 0, err
		}
		ptrs = append(ptrs, p)
		if data != nil {
			return p, driver.CopyHtoD(p, data)
		}
		return p, driver.MemsetD16(p, 0x7fc0, uint64(n/2)) // NaN: unwritten shows
	}
	x, err := dev(bf16(m*k, 1), 2*m*k)
	if err != nil {
		return err
	}
	w, err := dev(bf16(n*k, 1/math.Sqrt(k)), 2*n*k)
	if err != nil {
		return err
	}
	res, err := dev(bf16(m*n, 1), 2*m*n)
	if err != nil {
		return err
	}
	// Both epilogues: the plain product with a residual, and SwiGLU (n is a
	// multiple of 16, so w reads as interleaved gate/up rows).
	run := func(wg, swiglu bool) ([]float32, error) {
		outN := n
		if swiglu {
			outN = n / 2
		}
		y, err := dev(nil, 2*m*outN)
		if err != nil {
			return nil, err
		}
		if swiglu {
			err = ks.launchGemmSwiGLUWith(wg, s, x, w, y, m, n, k)
		} else {
			err = ks.launchGemmWith(wg, s, x, w, res, y, m, n, k)
		}
		if err != nil {
			return nil, err
		}
		if err := s.Synchronize(); err != nil {
			return nil, fmt.Errorf("wgmma check: %w", err)
		}
		raw := make([]byte, 2*m*outN)
		if err := driver.CopyDtoH(raw, y); err != nil {
			return nil, err
		}
		out := make([]float32, m*outN)
		weights.ToFloat32(out, raw, weights.BF16)
		return out, nil
	}
	for _, swiglu := range []bool{false, true} {
		ref, err := run(false, swiglu)
		if err != nil {
			return err
		}
		got, err := run(true, swiglu)
		if err != nil {
			return err
		}
		if rel, ok := agree(ref, got); !ok {
			slog.Warn("cuda: wgmma GEMM disagrees with the mma.sync GEMM; using mma.sync", "swiglu", swiglu, "relative_difference", rel)
			return nil
		}
	}
	ks.useWgmma = true
	slog.Debug("cuda: wgmma GEMM enabled")
	return nil
}

// agree reports whether two GEMM results match to bf16 rounding: every
// element finite in both, relative difference at most 4e-3.
func agree(a, b []float32) (float64, bool) {
	var num, den float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return math.NaN(), false
		}
		num += (x - y) * (x - y)
		den += x * x
	}
	rel := math.Sqrt(num / math.Max(den, 1e-30))
	return rel, rel <= 4e-3
}
