package cpu

import (
	"math"
	"testing"
)

// ulpDiff is how many float32 steps apart a and b are (both finite, same sign
// or zero).
func ulpDiff(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func TestExpfSweep(t *testing.T) {
	// Walk the bit patterns of [-104, 89] with an odd stride, so every
	// binade and many mantissa patterns are visited; below -87.33 the true
	// result is denormal and expf, rounding once through float64, must
	// still match it there.
	const stride = 211
	var xs []float32
	check := func(x float32) { xs = append(xs, x) }
	for b := uint32(0); b <= math.Float32bits(104); b += stride {
		check(-math.Float32frombits(b))
		if x := math.Float32frombits(b); x <= 89 {
			check(x)
		}
	}
	// Dense around the range-reduction boundaries (odd multiples of ln2/2),
	// where r is largest and the polynomial's error peaks.
	for k := -150; k <= 128; k++ {
		x := float32((float64(k) + 0.5) * math.Ln2)
		for i := 0; i < 200; i++ {
			check(x)
			x = math.Nextafter32(x, 100)
		}
	}
	vec := make([]float32, len(xs))
	expSlice(vec, xs)
	for _, c := range []struct {
		name string
		exp  func(i int) float32
	}{
		{"expf", func(i int) float32 { return expf(xs[i]) }},
		{"expSlice", func(i int) float32 { return vec[i] }},
	} {
		var worst int64
		var worstX float32
		for i, x := range xs {
			if d := ulpDiff(c.exp(i), float32(math.Exp(float64(x)))); d > worst {
				worst, worstX = d, x
			}
		}
		t.Logf("%s: %d points, worst %d ulp at x=%g", c.name, len(xs), worst, worstX)
		if worst > 1 {
			t.Errorf("%s max error %d ulp at x=%g, want <= 1", c.name, worst, worstX)
		}
	}
}

func TestExpfSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct{ x, want float32 }{
		{0, 1},
		{float32(math.Copysign(0, -1)), 1},
		{1, float32(math.E)},
		{88.72283, float32(math.Exp(float64(float32(88.72283))))},
		{88.8, inf},
		{89, inf},
		{1e30, inf},
		{inf, inf},
		{-104, 0},
		{-1e30, 0},
		{-inf, 0},
		{-100, float32(math.Exp(-100))},   // denormal
		{-87.5, float32(math.Exp(-87.5))}, // denormal
	} {
		// Finite results may be one ulp off math.Exp's rounding.
		if got := expf(c.x); got != c.want && (math.IsInf(float64(c.want), 0) || ulpDiff(got, c.want) > 1) {
			t.Errorf("expf(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if got := expf(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("expf(NaN) = %g, want NaN", got)
	}
}

var expSink float32

func BenchmarkExpf(b *testing.B) {
	xs := make([]float32, 4096)
	for i := range xs {
		xs[i] = float32(i%200)*0.1 - 10
	}
	b.Run("expf", func(b *testing.B) {
		for range b.N {
			var s float32
			for _, x := range xs {
				s += expf(x)
			}
			expSink = s
		}
	})
	b.Run("expSlice", func(b *testing.B) {
		out := make([]float32, len(xs))
		for range b.N {
			expSlice(out, xs)
		}
	})
	b.Run("math.Exp", func(b *testing.B) {
		for range b.N {
			var s float32
			for _, x := range xs {
				s += float32(math.Exp(float64(x)))
			}
			expSink = s
		}
	})
}

// TestExpSliceMatchesExpf checks the vectorised path (AVX-512 where the CPU
// has it) against the reference on the same sweep, including lengths that
// leave a scalar tail, and against expf itself.
func TestExpSliceMatchesExpf(t *testing.T) {
	t.Logf("AVX-512 path: %v", hasExpAVX512)
	var xs []float32
	for b := uint32(0); b <= math.Float32bits(104); b += 997 {
		xs = append(xs, -math.Float32frombits(b), min(math.Float32frombits(b), 89))
	}
	inf := float32(math.Inf(1))
	xs = append(xs, 0, 88.72283, 88.8, 1e30, inf, -inf, -1e30, -87.5, -100, float32(math.NaN()), 1, -1, 3)
	got := make([]float32, len(xs))
	expSlice(got, xs)
	for i, x := range xs {
		want := float32(math.Exp(float64(x)))
		switch {
		case math.IsNaN(float64(x)):
			if !math.IsNaN(float64(got[i])) {
				t.Errorf("expSlice(NaN) = %g", got[i])
			}
		case math.IsInf(float64(want), 0) || want == 0:
			if got[i] != want {
				t.Errorf("expSlice(%g) = %g, want %g", x, got[i], want)
			}
		case ulpDiff(got[i], want) > 1 || ulpDiff(got[i], expf(x)) > 1:
			t.Errorf("expSlice(%g) = %g, want %g (expf %g)", x, got[i], want, expf(x))
		}
	}
	// In place, with a tail that is not a multiple of 8.
	in := append([]float32(nil), xs[:21]...)
	expSlice(in, in)
	for i := range in {
		if math.Float32bits(in[i]) != math.Float32bits(got[i]) {
			t.Errorf("in-place expSlice[%d] = %g, want %g", i, in[i], got[i])
		}
	}
}
