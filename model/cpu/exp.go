package cpu

import "math"

// expf returns e^x rounded to float32, within 1 ulp of float32(math.Exp(x)).
// It is the scalar reference and tail/fallback for expSlice, whose AVX-512
// version runs the same steps 8 lanes at a time; math.Exp in SwiGLU and
// softmax was a large share of forward time.
//
// The work is done in float64: x = n*ln2 + r with |r| <= ln2/2, e^r from a
// degree-7 Taylor polynomial (truncation error below 5e-9 relative, under a
// tenth of a float32 ulp), and 2^n put straight into the exponent bits. The
// float64 result converts to float32 with one rounding, so overflow becomes
// +Inf and underflow gradual denormals exactly as float32(math.Exp(x)) would.
// Clamping x first keeps n inside the float64 exponent range; NaN survives
// the clamp because both comparisons are false for it.
func expf(x float32) float32 {
	const (
		log2e = 1.4426950408889634
		ln2   = 0.6931471805599453
		// round is 1.5*2^52: adding it rounds to an integer held in the
		// low mantissa bits.
		round = 6755399441055744.0
	)
	v := float64(x)
	if v < -110 {
		v = -110
	}
	if v > 90 {
		v = 90
	}
	t := v*log2e + round
	n := t - round
	r := v - n*ln2
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	// The low 12 bits of t's bit pattern are n's, so shifting n+1023 into
	// the exponent field drops everything else.
	scale := math.Float64frombits((math.Float64bits(t) + 1023) << 52)
	return float32(p * scale)
}
