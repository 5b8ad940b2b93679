package weights

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// nearestRNE picks, from the ordered non-negative values of a format
// (decode(0), decode(1), ... up to infinity), the one nearest x >= 0, ties
// to the even code. It is a slow, format-independent reference.
func nearestRNE(x float64, maxCode uint16, decode func(uint16) float32) uint16 {
	lo, hi := uint16(0), maxCode // decode(maxCode) is +Inf
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if float64(decode(mid)) <= x {
			lo = mid
		} else {
			hi = mid
		}
	}
	a, b := float64(decode(lo)), float64(decode(hi))
	if math.IsInf(b, 1) {
		// Past the largest finite value: round as if the next step existed.
		step := a - float64(decode(lo-1))
		b = a + step
	}
	switch {
	case x-a < b-x:
		return lo
	case x-a > b-x:
		return hi
	case lo%2 == 0:
		return lo
	}
	return hi
}

func sample32(r *rand.Rand) []float32 {
	out := []float32{0, 1, -1, 0.1, 1e-10, 65504, 65519.99, 65520, 70000, 3.0e38, 5.9604645e-08, 2.9802322e-08,
		2.9802326e-08, 6.1035156e-05, 6.1e-05, 1 + 1.0/256, 1 + 3.0/256, 1 + 1.0/512, 1 + 3.0/512, 1 + 1.0/2048, 1 + 3.0/2048,
		math.MaxFloat32, math.SmallestNonzeroFloat32}
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			continue
		}
		out = append(out, f)
	}
	for i := 0; i < 50000; i++ { // the range weights live in
		out = append(out, float32(r.NormFloat64()*0.05))
	}
	return out
}

func TestFloat32ToBF16MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, f := range sample32(r) {
		x := math.Abs(float64(f))
		want := nearestRNE(x, 0x7f80, BF16ToFloat32)
		if math.Signbit(float64(f)) {
			want |= 0x8000
		}
		if got := Float32ToBF16(f); got != want {
			t.Fatalf("Float32ToBF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestFloat32ToF16MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, f := range sample32(r) {
		x := math.Abs(float64(f))
		want := nearestRNE(x, 0x7c00, F16ToFloat32)
		if math.Signbit(float64(f)) {
			want |= 0x8000
		}
		if got := Float32ToF16(f); got != want {
			t.Fatalf("Float32ToF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestHalfRoundTripsExactly(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToFloat32(h)
		if f != f16ToFloat32Slow(h) && !math.IsNaN(float64(f)) {
			t.Fatalf("table and slow decode differ at %#04x", h)
		}
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(F16ToFloat32(Float32ToF16(f)))) {
				t.Fatalf("NaN %#04x did not stay NaN", h)
			}
			continue
		}
		if got := Float32ToF16(f); got != h {
			t.Fatalf("F16 %#04x -> %g -> %#04x", h, f, got)
		}
		if got := Float32ToBF16(BF16ToFloat32(h)); got != h && !math.IsNaN(float64(BF16ToFloat32(h))) {
			t.Fatalf("BF16 %#04x -> %#04x", h, got)
		}
	}
	// Known values.
	for _, c := range []struct {
		h uint16
		f float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08}, {0x0400, 6.1035156e-05}, {0x7c00, float32(math.Inf(1))}} {
		if got := F16ToFloat32(c.h); got != c.f {
			t.Errorf("F16ToFloat32(%#04x) = %g, want %g", c.h, got, c.f)
		}
	}
	if got := Float32ToBF16(float32(math.NaN())); !math.IsNaN(float64(BF16ToFloat32(got))) {
		t.Errorf("BF16 of NaN = %#04x", got)
	}
	if got := Float32ToBF16(math.Float32frombits(0x7f800001)); !math.IsNaN(float64(BF16ToFloat32(got))) {
		t.Errorf("BF16 of a NaN whose payload is in the low bits = %#04x (became infinity?)", got)
	}
}

func TestToFromFloat32(t *testing.T) {
	src := []float32{0, 1, -1.5, 0.333, 1e-3, -65504, 3.140625}
	for _, dt := range []DType{BF16, F16, F32} {
		buf := make([]byte, len(src)*dt.Size())
		FromFloat32(buf, src, dt)
		got := make([]float32, len(src))
		ToFloat32(got, buf, dt)
		for i, f := range src {
			var want float32
			switch dt {
			case BF16:
				want = BF16ToFloat32(Float32ToBF16(f))
			case F16:
				want = F16ToFloat32(Float32ToF16(f))
			default:
				want = f
			}
			if got[i] != want {
				t.Errorf("%v: element %d = %g, want %g", dt, i, got[i], want)
			}
		}
		// Misaligned buffers take the byte-by-byte paths, with the same bytes.
		oddOut := make([]byte, len(buf)+1)
		FromFloat32(oddOut[1:], src, dt)
		if !slices.Equal(oddOut[1:], buf) {
			t.Errorf("%v: misaligned encode % x, aligned % x", dt, oddOut[1:], buf)
		}
		odd := make([]byte, len(buf)+1)
		copy(odd[1:], buf)
		got2 := make([]float32, len(src))
		ToFloat32(got2, odd[1:], dt)
		if !slices.Equal(got, got2) {
			t.Errorf("%v: misaligned decode %v, aligned %v", dt, got2, got)
		}
		// Little-endian on disk, whatever the host.
		if dt == BF16 && (buf[2] != 0x80 || buf[3] != 0x3f) {
			t.Errorf("BF16 1.0 stored as % x", buf[2:4])
		}
	}
}

func TestTensorRowAndFloat32s(t *testing.T) {
	vals := []float32{1, 2, 3, 4, 5, 6}
	data := make([]byte, 12)
	FromFloat32(data, vals, BF16)
	tn := &Tensor{Name: "x", DType: BF16, Shape: []int{3, 2}, Data: data}
	if tn.NumElements() != 6 || !slices.Equal(tn.Float32s(), vals) {
		t.Fatalf("Float32s = %v", tn.Float32s())
	}
	row := make([]float32, 2)
	tn.Row(2, row)
	if row[0] != 5 || row[1] != 6 {
		t.Errorf("Row(2) = %v", row)
	}
	defer func() {
		if recover() == nil {
			t.Error("Row out of range did not panic")
		}
	}()
	tn.Row(3, row)
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"bf16": BF16, "BF16": BF16, "bfloat16": BF16, "f16": F16, "float16": F16, "F32": F32, "float32": F32} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDType("int8"); err == nil {
		t.Error("int8 accepted")
	}
}

func BenchmarkToFloat32(b *testing.B) {
	const n = 1 << 16
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i) * 0.001
	}
	for _, dt := range []DType{BF16, F16, F32} {
		buf := make([]byte, n*dt.Size())
		FromFloat32(buf, src, dt)
		dst := make([]float32, n)
		b.Run(dt.String(), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				ToFloat32(dst, buf, dt)
			}
		})
	}
}

func BenchmarkFromFloat32(b *testing.B) {
	const n = 1 << 16
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i) * 0.001
	}
	for _, dt := range []DType{BF16, F16} {
		buf := make([]byte, n*dt.Size())
		b.Run(dt.String(), func(b *testing.B) {
			b.SetBytes(int64(n * 4))
			for b.Loop() {
				FromFloat32(buf, src, dt)
			}
		})
	}
}
