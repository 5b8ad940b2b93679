package cuda

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"llamaembed/model"
	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

func nemotron1b() *weights.Config {
	return &weights.Config{HiddenSize: 2048, IntermediateSize: 8192, NumHiddenLayers: 16, NumAttentionHeads: 32,
		NumKeyValueHeads: 8, HeadDim: 64, VocabSize: 128256, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling: &weights.RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}
}

func nemotron8b() *weights.Config {
	c := nemotron1b()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.HeadDim = 4096, 14336, 32, 128
	return c
}

func TestShapeOf(t *testing.T) {
	s, err := shapeOf(nemotron1b())
	if err != nil || s.QKVDim() != 2048+512+512 || s.QDim() != 2048 || s.KVDim() != 512 {
		t.Fatalf("1b: %+v %v", s, err)
	}
	s, err = shapeOf(nemotron8b())
	if err != nil || s.QKVDim() != 4096+1024+1024 {
		t.Fatalf("8b: %+v %v", s, err)
	}
	derived := nemotron1b()
	derived.HeadDim = 0
	if s, err := shapeOf(derived); err != nil || s.HeadDim != 64 {
		t.Errorf("head_dim derived from hidden/heads: %+v %v", s, err)
	}
	for _, c := range []struct {
		mod  func(*weights.Config)
		want string
	}{
		{func(c *weights.Config) { c.HeadDim = 96 }, "head_dim 96"},
		{func(c *weights.Config) { c.NumKeyValueHeads = 5 }, "not a multiple of 5 kv heads"},
		{func(c *weights.Config) { c.IntermediateSize = 8190 }, "multiples of 8"},
		{func(c *weights.Config) { c.NumHiddenLayers = 0 }, "must all be positive"},
	} {
		cfg := nemotron1b()
		c.mod(cfg)
		if _, err := shapeOf(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("shapeOf: %v, want an error containing %q", err, c.want)
		}
	}
}

func TestWorkspacePlan(t *testing.T) {
	s, _ := shapeOf(nemotron1b())
	p, err := planWorkspace(s, 16384)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		bufTokens:    4 * 16384,
		bufResidual:  4 * 16384 * 2048,
		bufNormed:    2 * 16384 * 2048,
		bufQKV:       2 * 16384 * 3072,
		bufAttn:      2 * 16384 * 2048,
		bufAct:       2 * 16384 * 8192,
		bufCuSeqlens: 4 * 16385,
		bufTiles:     4 * 2 * 16384,
	}
	got := map[string]int64{}
	var sum int64
	for _, b := range p.Buffers {
		got[b.Name] = b.Bytes
		sum += b.Bytes
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %d bytes, want %d", name, got[name], w)
		}
	}
	if p.Total() < sum || p.Total() > sum+int64(len(p.Buffers))*256 {
		t.Errorf("Total %d for buffers summing to %d", p.Total(), sum)
	}
	// 1b at 16k tokens: 42 KiB of activations per token (the gate/up
	// product never reaches memory) plus the pooled outputs, about 0.9 GiB.
	if g := float64(p.Total()) / (1 << 30); g < 0.88 || g > 0.92 {
		t.Errorf("1b workspace at 16384 tokens = %.2f GiB, expected about 0.9", g)
	}
	small, _ := planWorkspace(s, 512)
	if small.Total() >= p.Total() {
		t.Errorf("workspace does not shrink with max tokens: %d >= %d", small.Total(), p.Total())
	}
	if _, err := planWorkspace(s, 0); err == nil {
		t.Error("planWorkspace(0) accepted")
	}
	// 8b weights: 7.5 billion bf16 parameters, about 15 GB.
	s8, _ := shapeOf(nemotron8b())
	if g := float64(totalBytes(weightBuffers(s8))) / 1e9; g < 14.5 || g > 15.5 {
		t.Errorf("8b weights = %.2f GB, want about 15", g)
	}
}

func TestCheckFits(t *testing.T) {
	if err := checkFits("cuda:0", 80<<30, 3<<30, 2<<30, 1<<20, 16384); err != nil {
		t.Errorf("fits: %v", err)
	}
	err := checkFits("cuda:0 NVIDIA L4", 20<<30, 16<<30, 4<<30, 1<<20, 16384)
	if err == nil {
		t.Fatal("20 GiB + reserve fit in 20 GiB")
	}
	for _, w := range []string{"cuda:0 NVIDIA L4", "not enough device memory", "16384", "20.00 GiB is free", "max batch tokens"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestMaxAttnTilesBoundsEveryBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 500; iter++ {
		maxTokens := 1 + r.IntN(3000)
		var seqs [][]int32
		left := maxTokens
		for left > 0 {
			n := 1 + r.IntN(min(left, 1+r.IntN(400)))
			seqs = append(seqs, make([]int32, n))
			left -= n
		}
		p, err := packBatch(model.Pack(seqs), maxTokens, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if p.NumTiles() > maxAttnTiles(maxTokens, maxTokens) {
			t.Fatalf("%d sequences in %d tokens: %d tiles > bound %d", len(seqs), maxTokens, p.NumTiles(), maxAttnTiles(maxTokens, maxTokens))
		}
	}
}

func TestPackBatch(t *testing.T) {
	b := model.Pack([][]int32{{5, 6, 7}, make([]int32, 130), {9}})
	p, err := packBatch(b, 1000, 200, 100)
	if err != nil {
		t.Fatal(err)
	}
	if p.Seqs() != 3 || p.MaxLen != 130 {
		t.Errorf("Seqs %d MaxLen %d", p.Seqs(), p.MaxLen)
	}
	for i, want := range map[int]int32{0: 0, 2: 2, 3: 0, 4: 1, 132: 129, 133: 0} {
		if p.Positions[i] != want {
			t.Errorf("position of token %d = %d, want %d", i, p.Positions[i], want)
		}
	}
	wantTiles := []int32{0, 0, 1, 0, 1, 64, 1, 128, 2, 0}
	if !slicesEqual(p.Tiles, wantTiles) {
		t.Errorf("tiles %v, want %v", p.Tiles, wantTiles)
	}
	for _, c := range []struct {
		b    model.Batch
		want string
	}{
		{model.Batch{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 1}}, "do not span 2 tokens"},
		{model.Batch{Tokens: []int32{1}, CuSeqlens: []int32{0}}, "do not span"},
		{model.Batch{Tokens: []int32{1, 2}, CuSeqlens: []int32{0, 0, 2}}, "sequence 0 is empty"},
		{model.Pack([][]int32{{1, 100}}), "token 1: id 100 out of range [0, 100)"},
		{model.Pack([][]int32{{1, -1}}), "id -1 out of range"},
		{model.Pack([][]int32{make([]int32, 201)}), "201 tokens, more than max seq len 200"},
		{model.Pack([][]int32{make([]int32, 200), make([]int32, 200), make([]int32, 200), make([]int32, 200), make([]int32, 200), make([]int32, 1)}), "1001 tokens, more than the 1000"},
	} {
		if _, err := packBatch(c.b, 1000, 200, 100); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("packBatch: %v, want an error containing %q", err, c.want)
		}
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGeometryMatchesKernelSources keeps the Go copies of the kernels' tile
// and block sizes equal to the #defines in kernels/*.cu.
func TestGeometryMatchesKernelSources(t *testing.T) {
	defs := map[string]int{}
	re := regexp.MustCompile(`(?m)^#define ([A-Z_]+) (\d+)\s*$`)
	files, _ := filepath.Glob("../../kernels/*.cu")
	if len(files) == 0 {
		t.Fatal("no kernel sources in ../../kernels")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			defs[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	for name, v := range map[string]int{
		"GEMM_BM": gemmBM, "GEMM_BN": gemmBN, "GEMM_BK": gemmBK, "GEMM_STAGES": gemmStages, "GEMM_THREADS": gemmThreads,
		"GEMMW_BM": gemmWBM, "GEMMW_BN": gemmWBN, "GEMMW_BK": gemmWBK, "GEMMW_STAGES": gemmWStages, "GEMMW_THREADS": gemmWThreads,
		"ATTN_BQ": attnBQ, "ATTN_BKV": attnBKV, "ATTN_THREADS": attnThreads,
		"NORM_THREADS": normThreads, "ROPE_THREADS": ropeThreads, "SWIGLU_THREADS": swigluThreads,
		"EMBED_THREADS": embedThreads, "POOL_THREADS": poolThreads,
	} {
		got, ok := defs[name]
		if !ok || got != v {
			t.Errorf("%s: kernels define %d (found %v), Go uses %d", name, got, ok, v)
		}
	}
	// The GEMM's shared memory must match its #define formula: 4 stages of
	// 128+128 rows of 40 bf16.
	if gemmSmemBytes != 81920 {
		t.Errorf("gemm shared memory %d, want 81920", gemmSmemBytes)
	}
	// wgmma: 4 stages of 128+128 rows of 128 bytes, plus 1 KB to align.
	if gemmWSmemBytes != 4*256*128+1024 {
		t.Errorf("wgmma gemm shared memory %d", gemmWSmemBytes)
	}
}

func TestLaunchGeometry(t *testing.T) {
	l, err := gemmLaunch(1000, 3072, 2048)
	if err != nil || l.Grid.X != 24 || l.Grid.Y != 8 || l.Block.X != 256 || l.Smem != 81920 {
		t.Errorf("gemm 1000x3072x2048: %+v %v", l, err)
	}
	if l, err := gemmLaunch(10, 320, 160); err != nil || l.Grid.X != 3 || l.Grid.Y != 1 {
		t.Errorf("gemm 10x320x160: %+v %v", l, err)
	}
	for _, bad := range [][3]int{{0, 8, 8}, {8, 7, 8}, {8, 8, 12}, {8, 8, 0}} {
		if _, err := gemmLaunch(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("gemmLaunch%v accepted", bad)
		}
		if _, err := gemmWLaunch(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("gemmWLaunch%v accepted", bad)
		}
	}
	if _, err := gemmSwiGLULaunch(false, 10, 24, 8); err == nil {
		t.Error("a swiglu GEMM with N not a multiple of 16 was accepted")
	}
	if l, err := gemmSwiGLULaunch(true, 10, 32, 8); err != nil || l.Smem != gemmWSmemBytes {
		t.Errorf("wgmma swiglu geometry: %+v %v", l, err)
	}
	if l, err := gemmWLaunch(1000, 3072, 2048); err != nil || l.Grid.X != 24 || l.Grid.Y != 8 || l.Smem != 132096 {
		t.Errorf("wgmma gemm 1000x3072x2048: %+v %v", l, err)
	}
	for d, smem := range map[int]uint32{16: 10240, 64: 40960, 128: 81920} {
		l, err := attnLaunch(37, 32, d)
		if err != nil || l.Smem != smem || l.Grid.X != 37 || l.Grid.Y != 32 || l.Block.X != 128 {
			t.Errorf("attention d=%d: %+v %v", d, l, err)
		}
	}
	if _, err := attnLaunch(1, 1, 96); err == nil {
		t.Error("attention accepted head_dim 96")
	}
	if _, err := attnLaunch(1, 70000, 64); err == nil {
		t.Error("attention accepted 70000 heads (grid y > 65535)")
	}
	s, _ := shapeOf(nemotron1b())
	if l, _ := ropeLaunch(100, s); l.Grid.X != uint32(ceilDiv(100*40*32, 256)) {
		t.Errorf("rope grid %d", l.Grid.X)
	}
	if l, _ := swigluLaunch(3, 160); l.Grid.X != 1 || l.Block.X != 256 {
		t.Errorf("swiglu 3x160: %+v", l)
	}
	if l, _ := meanPoolLaunch(5, 2049); l.Grid.X != 5 || l.Grid.Y != 9 {
		t.Errorf("mean_pool grid %+v", l.Grid)
	}
	if _, err := rowLaunch("norm", 0, 256); err == nil {
		t.Error("an empty grid was accepted")
	}
}

func TestInvFreqLlama3(t *testing.T) {
	cfg := nemotron1b()
	inv := model.RopeInvFreq(cfg, 64)
	plain := model.RopeInvFreq(&weights.Config{RopeTheta: 500000}, 64)
	if len(inv) != 32 || inv[0] != 1 || plain[0] != 1 {
		t.Fatalf("inv[0] = %v, %v", inv[0], plain[0])
	}
	for i := range inv {
		wavelen := 2 * math.Pi / plain[i]
		switch {
		case wavelen < 8192/4.0:
			if inv[i] != plain[i] {
				t.Errorf("high frequency %d changed: %v -> %v", i, plain[i], inv[i])
			}
		case wavelen > 8192:
			if math.Abs(inv[i]-plain[i]/32) > 1e-18 {
				t.Errorf("low frequency %d: %v, want %v/32", i, inv[i], plain[i])
			}
		default:
			if inv[i] >= plain[i] || inv[i] <= plain[i]/32 {
				t.Errorf("blended frequency %d = %v outside (%v, %v)", i, inv[i], plain[i]/32, plain[i])
			}
		}
		if i > 0 && inv[i] >= inv[i-1] {
			t.Errorf("frequencies not decreasing at %d", i)
		}
	}
	cos, sin := ropeTables(inv, 3)
	for i := range inv {
		if cos[i] != 1 || sin[i] != 0 {
			t.Errorf("position 0 is not the identity at %d", i)
		}
		if want := float32(math.Cos(2 * inv[i])); cos[2*32+i] != want {
			t.Errorf("cos table [2][%d] = %v, want %v", i, cos[2*32+i], want)
		}
	}
}

func TestToBF16(t *testing.T) {
	vals := []float32{0, 1, -2.5, 3.14159, 1e-3, 65504, float32(math.Inf(-1))}
	f32 := make([]byte, 4*len(vals))
	f16 := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		binary.LittleEndian.PutUint16(f16[2*i:], weights.Float32ToF16(v))
	}
	for _, c := range []struct {
		dt   weights.DType
		data []byte
	}{{weights.F32, f32}, {weights.F16, f16}} {
		got, err := toBF16(c.data, c.dt, len(vals))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			src := v
			if c.dt == weights.F16 {
				src = weights.F16ToFloat32(weights.Float32ToF16(v))
			}
			if g, w := binary.LittleEndian.Uint16(got[2*i:]), weights.Float32ToBF16(src); g != w {
				t.Errorf("%s %v -> %#04x, want %#04x", c.dt, v, g, w)
			}
		}
	}
	bf := []byte{1, 2, 3, 4}
	if got, _ := toBF16(bf, weights.BF16, 2); &got[0] != &bf[0] {
		t.Error("BF16 data was copied")
	}
	if _, err := toBF16(nil, weights.DType(99), 0); err == nil {
		t.Error("unknown dtype accepted")
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]int{"cuda": 0, "cuda:0": 0, "cuda:3": 3} {
		if got, err := parseDevice(in); err != nil || got != want {
			t.Errorf("parseDevice(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"cpu", "cuda:", "cuda:x", "cuda:-1", "gpu:0"} {
		if _, err := parseDevice(bad); err == nil {
			t.Errorf("parseDevice(%q) accepted", bad)
		}
	}
}

// tinyModel writes the tiny-llama-a fixture (or a variant) and opens it.
func tinyModel(t testing.TB, mod func(*fixture.Options)) *weights.Model {
	t.Helper()
	o := fixture.Tiny()
	if mod != nil {
		mod(&o)
	}
	dir := t.TempDir()
	if err := fixture.Write(dir, o); err != nil {
		t.Fatal(err)
	}
	w, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestNewWithoutGPUIsErrNoDevice(t *testing.T) {
	if n, err := Available(); err == nil && n > 0 {
		t.Skip("a CUDA device is present")
	}
	w := tinyModel(t, nil)
	_, err := New(w, "cuda", model.Options{})
	if !errors.Is(err, model.ErrNoDevice) {
		t.Fatalf("New without a GPU: %v, want model.ErrNoDevice", err)
	}
	if _, err := New(w, "cuda:x", model.Options{}); err == nil || errors.Is(err, model.ErrNoDevice) {
		t.Errorf("a bad device name is a usage error, not ErrNoDevice: %v", err)
	}
}

type refCase = fixture.ReferenceCase

func loadRefCases(t testing.TB) []refCase {
	ref, err := fixture.LoadReference("../../testdata/tiny-llama-a.json")
	if err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

func cosine(a []float64, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

// TestReferenceForwardMatchesFixture runs the kernels' CPU references as a
// whole encoder (bf16 wherever the GPU stores bf16, the same packing and
// RoPE tables as the backend) on tiny-llama-a, all cases in one packed
// batch, against the float64 reference embeddings. It pins down the host
// side (tables, packing, fusion order) and the rounding plan of the GPU
// path before any GPU runs it.
func TestReferenceForwardMatchesFixture(t *testing.T) {
	cases := loadRefCases(t)
	w := tinyModel(t, nil)
	m, err := loadRefModel(w, 128)
	if err != nil {
		t.Fatal(err)
	}
	var seqs [][]int32
	for _, c := range cases {
		seqs = append(seqs, c.IDs)
	}
	p, err := packBatch(model.Pack(seqs), 4096, 128, m.sh.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	got := m.forward(p)
	worst := 1.0
	for i, c := range cases {
		dims := c.Dims
		if dims == 0 {
			dims = m.sh.Hidden
		}
		v := refNormalize(got[i], dims)
		cs := cosine(v, c.Embedding)
		worst = math.Min(worst, cs)
		if cs < 0.999 {
			t.Errorf("case %d (%d tokens, dims %d): cosine %.6f to the reference, want > 0.999", i, len(c.IDs), dims, cs)
		}
	}
	t.Logf("bf16 reference path: worst cosine %.6f over %d cases", worst, len(cases))
}

func TestAgree(t *testing.T) {
	a := []float32{1, -2, 3, 0.5}
	if _, ok := agree(a, []float32{1, -2, 3.01, 0.5}); !ok {
		t.Error("bf16-level difference rejected")
	}
	if _, ok := agree(a, []float32{1, -2, 3.5, 0.5}); ok {
		t.Error("a 13% element difference accepted")
	}
	if _, ok := agree(a, []float32{1, -2, float32(math.NaN()), 0.5}); ok {
		t.Error("NaN accepted")
	}
	if _, ok := agree([]float32{0, 0}, []float32{0, 0}); !ok {
		t.Error("equal zero vectors rejected")
	}
}

func TestInterleaveGateUp(t *testing.T) {
	const inter, hidden = 16, 3
	row := 2 * hidden
	gate, up := make([]byte, inter*row), make([]byte, inter*row)
	for i := range gate {
		gate[i], up[i] = byte(i/row), byte(100+i/row) // each row's bytes carry its index
	}
	out := interleaveGateUp(gate, up, inter, hidden)
	want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103, 104, 105, 106, 107,
		8, 9, 10, 11, 12, 13, 14, 15, 108, 109, 110, 111, 112, 113, 114, 115}
	if len(out) != 2*inter*row {
		t.Fatalf("%d bytes, want %d", len(out), 2*inter*row)
	}
	for r, w := range want {
		for j := 0; j < row; j++ {
			if out[r*row+j] != w {
				t.Fatalf("row %d holds %d, want %d", r, out[r*row+j], w)
			}
		}
	}
}
