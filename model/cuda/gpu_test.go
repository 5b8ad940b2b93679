package cuda

// Kernel and end-to-end tests that need an NVIDIA GPU. Without a driver or
// device they skip with the reason; on a GPU machine build them with
// `go test -c ./model/cuda` and run the binary. Every check draws fresh
// random inputs (the seed is logged) and poisons outputs with NaN first,
// so an element a kernel fails to write shows up.

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"llamaembed/model"
	"llamaembed/model/cpu"
	"llamaembed/model/cuda/driver"
	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

type gpuEnv struct {
	t      testing.TB
	ks     *kernelSet
	s      driver.Stream
	allocs []driver.DevicePtr
	rng    *rand.Rand
}

// needGPU loads the kernels on device 0, with the test's goroutine locked to
// its OS thread (the context is per thread), or skips.
func needGPU(t testing.TB) *gpuEnv {
	t.Helper()
	n, err := Available()
	if err != nil || n == 0 {
		t.Skipf("no CUDA driver/device: %v", err)
	}
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	dev, err := driver.GetDevice(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := dev.RetainPrimaryContext()
	if err != nil {
		t.Fatal(err)
	}
	inf, err := driver.DeviceInfo(0)
	if err != nil {
		t.Fatal(err)
	}
	maxSmem, err := dev.Attribute(driver.AttrMaxSharedMemoryPerBlockOptin)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := loadKernels(inf.Major, inf.Minor, maxSmem)
	if err != nil {
		t.Fatal(err)
	}
	s, err := driver.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("%s (sm_%d%d, %s), seed %d", inf.Name, inf.Major, inf.Minor, ks.arch, seed)
	g := &gpuEnv{t: t, ks: ks, s: s, rng: rand.New(rand.NewPCG(seed, 7))}
	t.Cleanup(func() {
		s.Synchronize()
		for _, p := range g.allocs {
			driver.MemFree(p)
		}
		s.Destroy()
		ks.unload()
		ctx.Release()
	})
	return g
}

func (g *gpuEnv) alloc(n int) driver.DevicePtr {
	p, err := driver.MemAlloc(uint64(max(n, 1)))
	if err != nil {
		g.t.Fatal(err)
	}
	g.allocs = append(g.allocs, p)
	return p
}

// random returns n values uniform in [-scale, scale), rounded to bf16.
func (g *gpuEnv) random(n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = bf((g.rng.Float64()*2 - 1) * scale)
	}
	return v
}

func (g *gpuEnv) bf16(v []float32) driver.DevicePtr {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], weights.Float32ToBF16(x))
	}
	p := g.alloc(len(b))
	if err := driver.CopyHtoD(p, b); err != nil {
		g.t.Fatal(err)
	}
	return p
}

func (g *gpuEnv) f32(v []float32) driver.DevicePtr {
	p := g.alloc(4 * len(v))
	if err := driver.CopyHtoD(p, float32Bytes(v)); err != nil {
		g.t.Fatal(err)
	}
	return p
}

func (g *gpuEnv) i32(v []int32) driver.DevicePtr {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	p := g.alloc(len(b))
	if err := driver.CopyHtoD(p, b); err != nil {
		g.t.Fatal(err)
	}
	return p
}

// poisonBF16 / poisonF32 allocate n elements filled with NaN.
func (g *gpuEnv) poisonBF16(n int) driver.DevicePtr {
	p := g.alloc(2 * n)
	if err := driver.MemsetD16(p, 0x7fc0, uint64(n)); err != nil {
		g.t.Fatal(err)
	}
	return p
}

func (g *gpuEnv) poisonF32(n int) driver.DevicePtr {
	p := g.alloc(4 * n)
	if err := driver.MemsetD32(p, 0x7fc00000, uint64(n)); err != nil {
		g.t.Fatal(err)
	}
	return p
}

func (g *gpuEnv) sync() {
	if err := g.s.Synchronize(); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gpuEnv) readBF16(p driver.DevicePtr, n int) []float32 {
	g.sync()
	b := make([]byte, 2*n)
	if err := driver.CopyDtoH(b, p); err != nil {
		g.t.Fatal(err)
	}
	v := make([]float32, n)
	weights.ToFloat32(v, b, weights.BF16)
	return v
}

func (g *gpuEnv) readF32(p driver.DevicePtr, n int) []float32 {
	g.sync()
	b := make([]byte, 4*n)
	if err := driver.CopyDtoH(b, p); err != nil {
		g.t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// compare fails on any non-finite element and on a relative error
// ||got-want|| / ||want|| above tol.
func compare(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	var num, den float64
	for i := range got {
		if math.IsNaN(float64(got[i])) || math.IsInf(float64(got[i]), 0) {
			t.Fatalf("%s: element %d is %v (unwritten or overflow); want %v", what, i, got[i], want[i])
		}
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	rel := math.Sqrt(num / math.Max(den, 1e-30))
	if rel > tol {
		t.Errorf("%s: relative error %.3g > %.3g", what, rel, tol)
	} else {
		t.Logf("%s: relative error %.3g", what, rel)
	}
}

func TestGPUGemm(t *testing.T) {
	g := needGPU(t)
	variants := []bool{false}
	if g.ks.gemmWgmma != 0 {
		variants = append(variants, true)
	}
	for _, wgmma := range variants {
		name := "gemm mma.sync "
		if wgmma {
			name = "gemm wgmma "
		}
		shapes := []struct {
			m, n, k  int
			residual bool
		}{
			{1, 8, 8, false}, {37, 72, 40, true}, {10, 320, 160, false}, {129, 130, 264, true},
			{200, 3072, 2048, false}, {257, 512, 8192, true},
		}
		if emulated {
			shapes = shapes[:4] // a CPU emulator is too slow for the large ones
		}
		for _, c := range shapes {
			x := g.random(c.m*c.k, 1)
			w := g.random(c.n*c.k, 1/math.Sqrt(float64(c.k)))
			var r []float32
			rp := driver.DevicePtr(0)
			if c.residual {
				r = g.random(c.m*c.n, 1)
				rp = g.bf16(r)
			}
			y := g.poisonBF16(c.m * c.n)
			if err := g.ks.launchGemmWith(wgmma, g.s, g.bf16(x), g.bf16(w), rp, y, c.m, c.n, c.k); err != nil {
				t.Fatal(err)
			}
			compare(t, name+dims3(c.m, c.n, c.k), g.readBF16(y, c.m*c.n), refGemm(x, w, r, c.m, c.n, c.k), 1e-2)
		}
	}
}

// TestGPUGemmSwiGLU checks the fused gate/up GEMM with the SwiGLU
// epilogue (both variants where present) against float64 products of the
// separate gate and up weights.
func TestGPUGemmSwiGLU(t *testing.T) {
	g := needGPU(t)
	variants := []bool{false}
	if g.ks.gemmWgmmaSwiGLU != 0 {
		variants = append(variants, true)
	}
	shapes := [][3]int{{1, 16, 8}, {37, 48, 40}, {130, 320, 160}, {300, 2048, 512}}
	if emulated {
		shapes = shapes[:3]
	}
	for _, wgmma := range variants {
		for _, sz := range shapes {
			m, n, k := sz[0], sz[1], sz[2]
			inter := n / 2
			x := g.random(m*k, 1)
			gate := g.random(inter*k, 2/math.Sqrt(float64(k)))
			up := g.random(inter*k, 2/math.Sqrt(float64(k)))
			w := interleaveGateUp(bf16Bytes(gate), bf16Bytes(up), inter, k)
			wp := g.alloc(len(w))
			if err := driver.CopyHtoD(wp, w); err != nil {
				t.Fatal(err)
			}
			act := g.poisonBF16(m * inter)
			if err := g.ks.launchGemmSwiGLUWith(wgmma, g.s, g.bf16(x), wp, act, m, n, k); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, m*inter)
			for r := 0; r < m; r++ {
				for i := 0; i < inter; i++ {
					var gs, us float64
					for j := 0; j < k; j++ {
						gs += float64(x[r*k+j]) * float64(gate[i*k+j])
						us += float64(x[r*k+j]) * float64(up[i*k+j])
					}
					want[r*inter+i] = bf(gs / (1 + math.Exp(-gs)) * us)
				}
			}
			name := "gemm swiglu mma.sync "
			if wgmma {
				name = "gemm swiglu wgmma "
			}
			compare(t, name+dims3(m, n, k), g.readBF16(act, m*inter), want, 1e-2)
		}
	}
}

func bf16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], weights.Float32ToBF16(x))
	}
	return b
}

// TestGPUWgmmaCheck: on Hopper the startup check must enable the wgmma
// GEMM; if it does not, the kernel (or its shared-memory layout) is wrong.
func TestGPUWgmmaCheck(t *testing.T) {
	g := needGPU(t)
	if g.ks.gemmWgmma == 0 {
		t.Skipf("no wgmma kernel for %s", g.ks.arch)
	}
	if err := g.ks.checkWgmma(g.s); err != nil {
		t.Fatal(err)
	}
	if !g.ks.useWgmma {
		t.Fatal("the wgmma GEMM disagrees with the mma.sync GEMM on this GPU")
	}
}

func dims3(a, b, c int) string {
	return strings.Join([]string{itoa(a), itoa(b), itoa(c)}, "x")
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestGPUAttention(t *testing.T) {
	g := needGPU(t)
	for _, c := range []struct {
		d, heads, kv int
		lens         []int32
		keepLong     bool // run long sequences on the emulator too
	}{
		{16, 4, 2, []int32{1, 10, 24, 84}, false},
		{64, 8, 2, []int32{1, 63, 64, 65, 200}, false},
		{64, 4, 4, []int32{130, 33}, false},
		{128, 8, 2, []int32{5, 64, 129, 300}, false},
		// Four K/V tiles: the double buffer is refilled while in use.
		{64, 2, 1, []int32{250}, true},
	} {
		sh := shape{Heads: c.heads, KVHeads: c.kv, HeadDim: c.d}
		var seqs [][]int32
		for _, n := range c.lens {
			if emulated && n > 70 && !c.keepLong {
				continue // too slow on the CPU emulator
			}
			seqs = append(seqs, make([]int32, n))
		}
		p, err := packBatch(model.Pack(seqs), 1<<20, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		T := len(p.Tokens)
		// Scale 2: scores of a few units, so the softmax is far from uniform.
		qkv := g.random(T*sh.QKVDim(), 2)
		out := g.poisonBF16(T * sh.QDim())
		if err := g.ks.launchAttention(g.s, g.bf16(qkv), out, g.i32(p.CuSeqlens), g.i32(p.Tiles), p.NumTiles(), sh); err != nil {
			t.Fatal(err)
		}
		compare(t, "attention d"+itoa(c.d), g.readBF16(out, T*sh.QDim()), refAttention(qkv, p.CuSeqlens, sh), 1e-2)
	}
}

func TestGPUAddNorm(t *testing.T) {
	g := needGPU(t)
	for _, c := range []struct {
		T, H     int
		hasDelta bool
	}{{3, 64, false}, {17, 2048, true}, {5, 4096, true}, {2, 130, true}} {
		h := make([]float32, c.T*c.H)
		for i := range h {
			h[i] = float32(g.rng.NormFloat64() * 3)
		}
		var delta []float32
		dp := driver.DevicePtr(0)
		if c.hasDelta {
			delta = g.random(c.T*c.H, 2)
			dp = g.bf16(delta)
		}
		w := g.random(c.H, 1.5)
		hp := g.f32(h)
		out := g.poisonBF16(c.T * c.H)
		if err := g.ks.launchAddNorm(g.s, hp, dp, g.bf16(w), out, c.T, c.H, 1e-5); err != nil {
			t.Fatal(err)
		}
		want := refAddNorm(h, delta, w, c.T, c.H, 1e-5) // updates h
		compare(t, "add_rmsnorm out", g.readBF16(out, c.T*c.H), want, 1e-2)
		compare(t, "add_rmsnorm residual", g.readF32(hp, c.T*c.H), h, 1e-6)
	}
}

func TestGPURope(t *testing.T) {
	g := needGPU(t)
	for _, cfg := range []*weights.Config{nemotron1b(), nemotron8b()} {
		sh, _ := shapeOf(cfg)
		sh.Heads, sh.KVHeads = 4, 2 // fewer heads, same head_dim and tables
		p, err := packBatch(model.Pack([][]int32{make([]int32, 3), make([]int32, 700), make([]int32, 1)}), 1<<20, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		T := len(p.Tokens)
		cos, sin := ropeTables(model.RopeInvFreq(cfg, sh.HeadDim), 1000)
		qkv := g.random(T*sh.QKVDim(), 3)
		dev := g.bf16(qkv)
		if err := g.ks.launchRope(g.s, dev, g.i32(p.Positions), g.f32(cos), g.f32(sin), T, sh); err != nil {
			t.Fatal(err)
		}
		refRope(qkv, p.Positions, cos, sin, T, sh)
		compare(t, "rope d"+itoa(sh.HeadDim), g.readBF16(dev, T*sh.QKVDim()), qkv, 5e-3)
	}
}

func TestGPUSwiGLU(t *testing.T) {
	g := needGPU(t)
	for _, c := range [][2]int{{1, 2}, {7, 160}, {33, 8192}} {
		T, I := c[0], c[1]
		gu := g.random(T*2*I, 6)
		out := g.poisonBF16(T * I)
		if err := g.ks.launchSwiGLU(g.s, g.bf16(gu), out, T, I); err != nil {
			t.Fatal(err)
		}
		compare(t, "swiglu", g.readBF16(out, T*I), refSwiGLU(gu, T, I), 1e-2)
	}
}

func TestGPUEmbedAndPool(t *testing.T) {
	g := needGPU(t)
	const vocab, H = 1000, 2050
	table := g.random(vocab*H, 1)
	tokens := []int32{5, 999, 0, 5, 17, 300, 301}
	cu := []int32{0, 1, 4, 7}
	h := g.poisonF32(len(tokens) * H)
	if err := g.ks.launchEmbed(g.s, g.bf16(table), g.i32(tokens), h, len(tokens), H, vocab); err != nil {
		t.Fatal(err)
	}
	compare(t, "embed_gather", g.readF32(h, len(tokens)*H), refEmbed(table, tokens, H), 0)

	x := g.random(len(tokens)*H, 4)
	pooled := g.poisonF32(3 * H)
	if err := g.ks.launchMeanPool(g.s, g.bf16(x), g.i32(cu), pooled, 3, H); err != nil {
		t.Fatal(err)
	}
	ref := refMeanPool(x, cu, H)
	var flat []float32
	for _, v := range ref {
		for _, e := range v {
			flat = append(flat, float32(e))
		}
	}
	compare(t, "mean_pool", g.readF32(pooled, 3*H), flat, 1e-6)
	for _, dims := range []int{H, 64, 7} {
		out := g.poisonF32(3 * dims)
		if err := g.ks.launchNormalize(g.s, pooled, out, 3, H, dims); err != nil {
			t.Fatal(err)
		}
		var want []float32
		for _, v := range ref {
			for _, e := range refNormalize(v, dims) {
				want = append(want, float32(e))
			}
		}
		compare(t, "l2_normalize dims "+itoa(dims), g.readF32(out, 3*dims), want, 1e-5)
	}

	// An id outside the vocabulary writes NaN, never another row.
	bad := g.poisonF32(H)
	if err := g.ks.launchEmbed(g.s, g.bf16(table[:H]), g.i32([]int32{1}), bad, 1, H, 1); err != nil {
		t.Fatal(err)
	}
	for i, v := range g.readF32(bad, H) {
		if !math.IsNaN(float64(v)) {
			t.Fatalf("out-of-range id: element %d = %v, want NaN", i, v)
		}
	}
}

// forwardBoth runs the same batch through the GPU and CPU backends.
func forwardBoth(t *testing.T, w *weights.Model, seqs [][]int32) (gpu, cpuOut [][]float32) {
	t.Helper()
	gb, err := New(w, "cuda", model.Options{MaxBatchTokens: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	cb, err := cpu.New(w, "cpu", model.Options{MaxBatchTokens: 4096, MaxSeqLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	b := model.Pack(seqs)
	if gpu, err = gb.Forward(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if cpuOut, err = cb.Forward(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return gpu, cpuOut
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestGPUForwardMatchesCPUBackend(t *testing.T) {
	if n, err := Available(); err != nil || n == 0 {
		t.Skipf("no CUDA driver/device: %v", err)
	}
	for _, c := range []struct {
		name string
		mod  func(*fixture.Options)
	}{
		{"tiny (head_dim 16)", nil},
		{"head_dim 64", func(o *fixture.Options) {
			o.Hidden, o.Heads, o.KVHeads, o.HeadDim, o.Inter, o.Vocab = 256, 4, 2, 64, 512, 2000
		}},
		{"head_dim 128", func(o *fixture.Options) {
			o.Hidden, o.Heads, o.KVHeads, o.HeadDim, o.Inter, o.Vocab = 512, 4, 1, 128, 1024, 2000
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := tinyModel(t, c.mod)
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			var seqs [][]int32
			lens := []int{1, 7, 64, 65, 300}
			if emulated {
				lens = lens[:4]
			}
			for _, n := range lens {
				s := make([]int32, n)
				for i := range s {
					s[i] = int32(r.IntN(w.Config.VocabSize))
				}
				seqs = append(seqs, s)
			}
			gpu, cpuOut := forwardBoth(t, w, seqs)
			for i := range seqs {
				cs := cosine(refNormalize(to64(gpu[i]), len(gpu[i])), refNormalize(to64(cpuOut[i]), len(cpuOut[i])))
				if cs < 0.999 {
					t.Errorf("sequence %d (%d tokens): cosine GPU vs CPU %.6f, want > 0.999", i, len(seqs[i]), cs)
				} else {
					t.Logf("sequence %d (%d tokens): cosine %.6f", i, len(seqs[i]), cs)
				}
			}
		})
	}
}

func TestGPUForwardMatchesFixtureReference(t *testing.T) {
	if n, err := Available(); err != nil || n == 0 {
		t.Skipf("no CUDA driver/device: %v", err)
	}
	cases := loadRefCases(t)
	w := tinyModel(t, nil)
	b, err := New(w, "cuda", model.Options{MaxBatchTokens: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var seqs [][]int32
	for _, c := range cases {
		seqs = append(seqs, c.IDs)
	}
	out, err := b.Forward(context.Background(), model.Pack(seqs))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		dims := c.Dims
		if dims == 0 {
			dims = len(out[i])
		}
		if cs := cosine(refNormalize(to64(out[i]), dims), c.Embedding); cs < 0.999 {
			t.Errorf("case %d: cosine %.6f to the reference, want > 0.999", i, cs)
		}
	}
	// Alone or batched, a sequence gets the same vector (positions restart
	// at 0, attention stays inside the sequence, per-row GEMM order fixed).
	alone, err := b.Forward(context.Background(), model.Pack([][]int32{cases[3].IDs}))
	if err != nil {
		t.Fatal(err)
	}
	for j := range alone[0] {
		if d := math.Abs(float64(alone[0][j] - out[3][j])); d > 1e-6 {
			t.Fatalf("batch dependence: component %d differs by %g", j, d)
		}
	}
}

func TestGPUStartupOutOfMemoryIsAnError(t *testing.T) {
	if n, err := Available(); err != nil || n == 0 {
		t.Skipf("no CUDA driver/device: %v", err)
	}
	w := tinyModel(t, nil)
	_, err := New(w, "cuda", model.Options{MaxBatchTokens: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "not enough device memory") {
		t.Fatalf("a workspace larger than the GPU: %v, want a 'not enough device memory' error", err)
	}
}
