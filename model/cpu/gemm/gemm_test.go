package gemm

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"llamaembed/weights"
)

// makeWeight returns an [n, k] weight in dtype with values in [-1, 1), and
// the exact float32 value of each element (after rounding to the dtype).
func makeWeight(rng *rand.Rand, dt weights.DType, n, k int) (Weight, []float32) {
	vals := make([]float32, n*k)
	data := make([]byte, n*k*dt.Size())
	for i := range vals {
		v := float32(rng.Float64()*2 - 1)
		switch dt {
		case weights.BF16:
			h := uint16(math.Float32bits(v) >> 16)
			binary.LittleEndian.PutUint16(data[2*i:], h)
			vals[i] = bf16ToFloat32(h)
		case weights.F16:
			h := float32ToF16(v)
			binary.LittleEndian.PutUint16(data[2*i:], h)
			vals[i] = f16ToFloat32(h)
		case weights.F32:
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			vals[i] = v
		}
	}
	return Weight{DType: dt, Data: data, N: n, K: k}, vals
}

// float32ToF16 truncates to half precision (normal range only: test values).
func float32ToF16(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>31) << 15
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.Float64()*2 - 1)
	}
	return s
}

func poisoned(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

// tolerance bounds float32 accumulation error by the sum of |terms|.
func tolerance(absSum float64) float64 { return 1e-6*absSum + 1e-7 }

// closeTo reports whether got matches the float64 reference (NaN never does).
func closeTo(got float32, want, absSum float64) bool {
	return !math.IsNaN(float64(got)) && math.Abs(float64(got)-want) <= tolerance(absSum)
}

var testSizes = []int{1, 2, 3, 7, 16, 33, 65, 130, 257}

// variant is one kernel with one packing path.
type variant struct {
	name   string
	im     *impl
	gather bool
}

// variants lists every kernel this machine runs, each with the Go packing
// loops and, where the CPU has them, the assembly gathers.
func variants() []variant {
	var vs []variant
	for _, im := range available() {
		vs = append(vs, variant{im.kind.String() + "/gopack", im, false})
		if useGatherPack {
			vs = append(vs, variant{im.kind.String() + "/gatherpack", im, true})
		}
	}
	return vs
}

// forVariants runs f under each variant, restoring the defaults after.
func forVariants(f func(v variant)) {
	savedIm, savedGather := active, useGatherPack
	defer func() { active, useGatherPack = savedIm, savedGather }()
	for _, v := range variants() {
		active, useGatherPack = v.im, v.gather
		f(v)
	}
}

func TestLinearMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []weights.DType{weights.BF16, weights.F16, weights.F32} {
		for _, m := range []int{1, 2, 3, 7, 16, 33, 65, 130} {
			for _, n := range testSizes {
				for _, k := range []int{1, 2, 3, 7, 16, 65, 257, 300} {
					w, wv := makeWeight(rng, dt, n, k)
					x := randSlice(rng, m*k)
					want, abs := make([]float64, m*n), make([]float64, m*n)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							for p := 0; p < k; p++ {
								v := float64(x[i*k+p]) * float64(wv[j*k+p])
								want[i*n+j] += v
								abs[i*n+j] += math.Abs(v)
							}
						}
					}
					forVariants(func(v variant) {
						out := poisoned(m*n + 5)
						Linear(out, x, w, m)
						bad := 0
						for e := 0; e < m*n && bad < 3; e++ {
							if !closeTo(out[e], want[e], abs[e]) {
								t.Errorf("%s %v m=%d n=%d k=%d: out[%d][%d] = %g, want %g (tol %g)", v.name, dt, m, n, k, e/n, e%n, out[e], want[e], tolerance(abs[e]))
								bad++
							}
						}
						for e := m * n; e < len(out); e++ {
							if !math.IsNaN(float64(out[e])) {
								t.Fatalf("%s %v m=%d n=%d k=%d: wrote past out[%d]", v.name, dt, m, n, k, m*n)
							}
						}
					})
				}
			}
		}
	}
}

func TestSgemmStrided(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range testSizes {
		for _, n := range []int{1, 3, 16, 33, 130} {
			for _, k := range []int{0, 1, 7, 64, 65, 130} {
				lda, ldb, ldc, ldbNN := k+3, k+5, n+2, n+7
				a := randSlice(rng, (m-1)*lda+k)
				b := randSlice(rng, (n-1)*ldb+k)
				bn := randSlice(rng, max(k-1, 0)*ldbNN+n)
				forVariants(func(v variant) {
					c := poisoned((m-1)*ldc + n)
					SgemmNT(m, n, k, a, lda, b, ldb, c, ldc)
					checkC(t, func() string { return fmt.Sprintf("%s NT m=%d n=%d k=%d", v.name, m, n, k) }, m, n, k, c, ldc, func(i, j, p int) float64 {
						return float64(a[i*lda+p]) * float64(b[j*ldb+p])
					})
					c = poisoned((m-1)*ldc + n)
					SgemmNN(m, n, k, a, lda, bn, ldbNN, c, ldc)
					checkC(t, func() string { return fmt.Sprintf("%s NN m=%d n=%d k=%d", v.name, m, n, k) }, m, n, k, c, ldc, func(i, j, p int) float64 {
						return float64(a[i*lda+p]) * float64(bn[p*ldbNN+j])
					})
				})
			}
		}
	}
}

// checkC compares C against the float64 sum of term(i, j, p) and checks the
// padding between rows (stride ldc > n) was left as NaN.
func checkC(t *testing.T, what func() string, m, n, k int, c []float32, ldc int, term func(i, j, p int) float64) {
	t.Helper()
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < ldc && i*ldc+j < len(c); j++ {
			got := c[i*ldc+j]
			if j >= n {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("%s: wrote padding c[%d][%d]", what(), i, j)
				}
				continue
			}
			var want, abs float64
			for p := 0; p < k; p++ {
				v := term(i, j, p)
				want += v
				abs += math.Abs(v)
			}
			if !closeTo(got, want, abs) {
				t.Errorf("%s: c[%d][%d] = %g, want %g (tol %g)", what(), i, j, got, want, tolerance(abs))
				if bad++; bad > 3 {
					return
				}
			}
		}
	}
}

func TestF16Decode(t *testing.T) {
	cases := []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x0000, 0}, {0x7bff, 65504},
		{0x0001, float32(math.Ldexp(1, -24))}, {0x0200, float32(math.Ldexp(1, -15))},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := f16ToFloat32(c.h); got != c.want {
			t.Errorf("f16ToFloat32(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if got := f16ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("f16ToFloat32(0x7e00) = %g, want NaN", got)
	}
	if got := math.Float32bits(f16ToFloat32(0x8000)); got != 0x80000000 {
		t.Errorf("f16ToFloat32(0x8000) bits = %#x, want -0", got)
	}
}

func TestWeightCheck(t *testing.T) {
	cases := []struct {
		name string
		w    Weight
	}{
		{"short data", Weight{DType: weights.BF16, Data: make([]byte, 10), N: 2, K: 3}},
		{"bad dtype", Weight{DType: 0, Data: make([]byte, 12), N: 2, K: 3}},
		{"zero N", Weight{DType: weights.F32, Data: nil, N: 0, K: 3}},
	}
	for _, c := range cases {
		if err := c.w.Check(); err == nil {
			t.Errorf("%s: Check() = nil, want an error", c.name)
		}
	}
	if err := (Weight{DType: weights.F16, Data: make([]byte, 12), N: 2, K: 3}).Check(); err != nil {
		t.Errorf("valid weight: %v", err)
	}
}

func TestShapeMismatchPanics(t *testing.T) {
	w := Weight{DType: weights.F32, Data: make([]byte, 4*6), N: 2, K: 3}
	cases := []struct {
		name string
		f    func()
	}{
		{"short x", func() { Linear(make([]float32, 4), make([]float32, 5), w, 2) }},
		{"short out", func() { Linear(make([]float32, 3), make([]float32, 6), w, 2) }},
		{"NT lda < k", func() { SgemmNT(2, 2, 3, make([]float32, 9), 2, make([]float32, 9), 3, make([]float32, 9), 2) }},
		{"NN short c", func() { SgemmNN(2, 2, 2, make([]float32, 4), 2, make([]float32, 4), 2, make([]float32, 3), 2) }},
	}
	for _, c := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			c.f()
		}()
	}
}

// TestLinearExactProducts checks each kernel keeps the activations' full
// float32 precision: each weight row has one nonzero power of two, so every
// output is a single product, exact in float32, and every kernel must match
// bit for bit (a kernel that rounded activations to bf16, or dropped part of
// the AMX split, would not). k covers the Go tails and the vector paths.
func TestLinearExactProducts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dt := range []weights.DType{weights.BF16, weights.F16, weights.F32} {
		for _, k := range []int{1, 64, 100} {
			const m, n = 70, 48
			w := Weight{DType: dt, Data: make([]byte, n*k*dt.Size()), N: n, K: k}
			pos := make([]int, n)
			val := make([]float32, n)
			for j := 0; j < n; j++ {
				pos[j] = (j * 7) % k
				val[j] = float32(math.Ldexp(1, rng.IntN(9)-4))
				if j%2 == 1 {
					val[j] = -val[j]
				}
				setWeight(w, j*k+pos[j], val[j])
			}
			x := make([]float32, m*k)
			for i := range x {
				// Full 24-bit significands over a wide exponent range.
				x[i] = math.Float32frombits(uint32(rng.IntN(1<<23)) | uint32(127-20+rng.IntN(40))<<23)
			}
			forVariants(func(v variant) {
				out := poisoned(m * n)
				Linear(out, x, w, m)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						if want := x[i*k+pos[j]] * val[j]; out[i*n+j] != want {
							t.Fatalf("%s %v k=%d: out[%d][%d] = %g (%#x), want exactly %g (%#x)", v.name, dt, k, i, j,
								out[i*n+j], math.Float32bits(out[i*n+j]), want, math.Float32bits(want))
						}
					}
				}
			})
		}
	}
}

// setWeight stores v (exactly representable in the dtype) as element e.
func setWeight(w Weight, e int, v float32) {
	switch w.DType {
	case weights.BF16:
		binary.LittleEndian.PutUint16(w.Data[2*e:], uint16(math.Float32bits(v)>>16))
	case weights.F16:
		binary.LittleEndian.PutUint16(w.Data[2*e:], float32ToF16(v))
	case weights.F32:
		binary.LittleEndian.PutUint32(w.Data[4*e:], math.Float32bits(v))
	}
}

func TestVariantsCoverThisCPU(t *testing.T) {
	var names []string
	for _, v := range variants() {
		names = append(names, v.name)
	}
	t.Logf("kernel variants tested here: %v (default %s)", names, Kernel())
}

// TestLinearBatchInvariant checks a row's output is bit-identical whether it
// is computed alone or with others (in full panels or edge ones), so an
// embedding never depends on what else shares its batch.
func TestLinearBatchInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, k, m = 80, 600, 70 // several k-blocks, edge panels in both directions
	for _, dt := range []weights.DType{weights.BF16, weights.F32} {
		w, _ := makeWeight(rng, dt, n, k)
		x := randSlice(rng, m*k)
		forVariants(func(v variant) {
			all := make([]float32, m*n)
			Linear(all, x, w, m)
			for _, i := range []int{0, 31, 33, 69} {
				one := make([]float32, n)
				Linear(one, x[i*k:(i+1)*k], w, 1)
				for j := range one {
					if one[j] != all[i*n+j] {
						t.Fatalf("%s %v: row %d alone gives out[%d] = %g, in a batch of %d %g", v.name, dt, i, j, one[j], m, all[i*n+j])
					}
				}
			}
		})
	}
}

// TestLinearMulti checks one call over several weights gives exactly what
// separate Linear calls give.
func TestLinearMulti(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const m, k = 45, 300
	for _, dt := range []weights.DType{weights.BF16, weights.F16, weights.F32} {
		var ws []Weight
		for _, n := range []int{300, 64, 33} {
			w, _ := makeWeight(rng, dt, n, k)
			ws = append(ws, w)
		}
		x := randSlice(rng, m*k)
		forVariants(func(v variant) {
			outs := make([][]float32, len(ws))
			for i, w := range ws {
				outs[i] = poisoned(m * w.N)
			}
			LinearMulti(outs, x, ws, m)
			for i, w := range ws {
				want := make([]float32, m*w.N)
				Linear(want, x, w, m)
				for e := range want {
					if outs[i][e] != want[e] {
						t.Fatalf("%s %v: weight %d out[%d] = %g, Linear gives %g", v.name, dt, i, e, outs[i][e], want[e])
					}
				}
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("LinearMulti with different K did not panic")
		}
	}()
	a, _ := makeWeight(rng, weights.BF16, 4, 8)
	b, _ := makeWeight(rng, weights.BF16, 4, 9)
	LinearMulti([][]float32{make([]float32, 8), make([]float32, 8)}, make([]float32, 18), []Weight{a, b}, 2)
}

// TestPackMatchesUnpacked checks a packed weight gives bit-identical results
// to the same weight packed on the fly, on every kernel, at edge shapes.
func TestPackMatchesUnpacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, sh := range [][3]int{{45, 300, 600}, {3, 33, 65}, {64, 512, 256}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, dt := range []weights.DType{weights.BF16, weights.F32} {
			w, _ := makeWeight(rng, dt, n, k)
			x := randSlice(rng, m*k)
			pw := Pack(w)
			if want := active.kind == kernelAMX && dt == weights.BF16; pw.Packed() != want {
				t.Fatalf("%v on %s: Packed() = %v, want %v", dt, Kernel(), pw.Packed(), want)
			}
			forVariants(func(v variant) {
				a, b := poisoned(m*n), poisoned(m*n)
				Linear(a, x, w, m)
				Linear(b, x, pw, m)
				for e := range a {
					if a[e] != b[e] {
						t.Fatalf("%s %v %v: packed out[%d] = %g, unpacked %g", v.name, dt, sh, e, b[e], a[e])
					}
				}
			})
		}
	}
}

// TestSgemmNoAllocs checks attention's products allocate nothing once the
// pools are warm: they run per head and per query block.
func TestSgemmNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const m, n, k = 64, 128, 64
	a, b, v := randSlice(rng, m*k), randSlice(rng, n*k), randSlice(rng, n*k)
	c, o := make([]float32, m*n), make([]float32, m*k)
	allocs := testing.AllocsPerRun(20, func() {
		SgemmNT(m, n, k, a, k, b, k, c, n)
		SgemmNN(m, k, n, c, n, v, k, o, k)
	})
	if allocs > 0 {
		t.Errorf("SgemmNT+SgemmNN allocate %.1f times per call pair, want 0", allocs)
	}
}
