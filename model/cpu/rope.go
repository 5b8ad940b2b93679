package cpu

import (
	"math"

	"llamaembed/model"
	"llamaembed/weights"
)

// rope holds rotary position tables for rotate-half RoPE: for position p and
// frequency j < headDim/2, cos[p*half+j] = cos(p*invFreq[j]) (sin likewise),
// computed in float64 and rounded once to float32.
type rope struct {
	half     int
	invFreq  []float64
	cos, sin []float32 // [positions][half]
}

// newRope builds the tables' inverse frequencies from the config.
func newRope(cfg *weights.Config) *rope {
	return &rope{half: cfg.HeadDim / 2, invFreq: model.RopeInvFreq(cfg, cfg.HeadDim)}
}

// ensure extends the tables to cover positions 0..n-1.
func (r *rope) ensure(n int) {
	have := len(r.cos) / r.half
	if n <= have {
		return
	}
	// Grow geometrically so a slowly rising maximum does not recompute often.
	if n < 2*have {
		n = 2 * have
	}
	cos := make([]float32, n*r.half)
	sin := make([]float32, n*r.half)
	copy(cos, r.cos)
	copy(sin, r.sin)
	for p := have; p < n; p++ {
		for j, f := range r.invFreq {
			a := float64(p) * f
			cos[p*r.half+j] = float32(math.Cos(a))
			sin[p*r.half+j] = float32(math.Sin(a))
		}
	}
	r.cos, r.sin = cos, sin
}

// apply rotates every head of one token's row x (heads*2*half floats) for
// position pos: x[j], x[j+half] -> x[j]c - x[j+half]s, x[j+half]c + x[j]s.
// The tables must cover pos.
func (r *rope) apply(x []float32, pos int) {
	h := r.half
	cos := r.cos[pos*h : pos*h+h]
	sin := r.sin[pos*h : pos*h+h]
	for off := 0; off+2*h <= len(x); off += 2 * h {
		a := x[off : off+h]
		b := x[off+h : off+2*h]
		for j := range h {
			c, s := cos[j], sin[j]
			x1, x2 := a[j], b[j]
			a[j] = x1*c - x2*s
			b[j] = x2*c + x1*s
		}
	}
}
