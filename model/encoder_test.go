package model_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"llamaembed/model"
	"llamaembed/model/cpu" // registers the "cpu" backend
	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

// refCase is one case of testdata/tiny-llama-a.json.
type refCase = fixture.ReferenceCase

func loadReference(t *testing.T) []refCase {
	t.Helper()
	ref, err := fixture.LoadReference("../testdata/tiny-llama-a.json")
	if err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

// Fixture models are written once per test binary into one temp dir and
// shared by the tests that need them.
var (
	fixtureRoot string
	fixturesMu  sync.Mutex
	fixtureDirs = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llamaembed-model-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tinyFixture writes (once) the tiny-llama-a fixture as changed by edit,
// under name, and returns its directory.
func tinyFixture(t *testing.T, name string, edit func(*fixture.Options)) string {
	t.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if dir, ok := fixtureDirs[name]; ok {
		return dir
	}
	opts := fixture.Tiny()
	if edit != nil {
		edit(&opts)
	}
	dir := filepath.Join(fixtureRoot, name)
	if err := fixture.Write(dir, opts); err != nil {
		t.Fatalf("write fixture %s: %v", name, err)
	}
	fixtureDirs[name] = dir
	return dir
}

func openEncoder(t *testing.T, dir string, opts model.Options) *model.Encoder {
	t.Helper()
	w, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := model.NewEncoder(w, "cpu", opts)
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
		w.Close()
	})
	return e
}

func embed(t *testing.T, e *model.Encoder, seqs [][]int32, dims int) [][]float32 {
	t.Helper()
	out, err := e.Embed(context.Background(), seqs, dims)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(seqs) {
		t.Fatalf("got %d embeddings for %d sequences", len(out), len(seqs))
	}
	return out
}

func maxAbsDiff(a []float32, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}

// The reference embeddings were computed in float64 from the BF16 weights;
// a float32 forward pass must match each component to 1e-5.
func TestTinyLlamaReference(t *testing.T) {
	cases := loadReference(t)
	e := openEncoder(t, tinyFixture(t, "bf16", nil), model.Options{})
	check := func(t *testing.T, c refCase, got []float32) {
		t.Helper()
		if len(got) != len(c.Embedding) {
			t.Fatalf("%q: %d components, want %d", c.Text, len(got), len(c.Embedding))
		}
		if d := maxAbsDiff(got, c.Embedding); d > 1e-5 {
			t.Errorf("%q (dims %d): max abs diff %.3g > 1e-5", c.Text, c.Dims, d)
		} else {
			t.Logf("%q (%d tokens, dims %d): max abs diff %.3g", c.Text, len(c.IDs), c.Dims, d)
		}
	}
	t.Run("one at a time", func(t *testing.T) {
		for _, c := range cases {
			check(t, c, embed(t, e, [][]int32{c.IDs}, c.Dims)[0])
		}
	})
	t.Run("batched by dims", func(t *testing.T) {
		byDims := map[int][]refCase{}
		for _, c := range cases {
			byDims[c.Dims] = append(byDims[c.Dims], c)
		}
		for dims, cs := range byDims {
			var seqs [][]int32
			for _, c := range cs {
				seqs = append(seqs, c.IDs)
			}
			for i, got := range embed(t, e, seqs, dims) {
				check(t, cs[i], got)
			}
		}
	})
	var matryoshka int
	for _, c := range cases {
		if c.Dims != 0 {
			matryoshka++
		}
	}
	if matryoshka == 0 || matryoshka == len(cases) {
		t.Errorf("reference should mix full and truncated cases, has %d of %d truncated", matryoshka, len(cases))
	}
}

// A sequence's embedding must not depend on what else is in its batch, on
// its position in the batch, nor on how the encoder splits the batch into
// backend calls: all bitwise identical.
func TestBatchInvariance(t *testing.T) {
	cases := loadReference(t)
	dir := tinyFixture(t, "bf16", nil)
	e := openEncoder(t, dir, model.Options{})
	// A small token budget makes the encoder split the same input into
	// different backend calls.
	small := openEncoder(t, dir, model.Options{MaxBatchTokens: 160})

	var seqs [][]int32
	for _, c := range cases {
		seqs = append(seqs, c.IDs)
	}
	// A sequence longer than one attention block of queries, to cover blocks.
	long := make([]int32, 150)
	for i := range long {
		long[i] = int32(1000 + 37*i)
	}
	seqs = append(seqs, long)

	alone := make([][]float32, len(seqs))
	for i, s := range seqs {
		alone[i] = embed(t, e, [][]int32{s}, 0)[0]
	}
	check := func(name string, order []int, got [][]float32) {
		t.Helper()
		for k, i := range order {
			if !slices.Equal(got[k], alone[i]) {
				t.Errorf("%s: sequence %d (position %d) differs from it embedded alone", name, i, k)
			}
		}
	}
	all := make([]int, len(seqs))
	for i := range all {
		all[i] = i
	}
	check("all in one batch", all, embed(t, e, seqs, 0))

	rng := rand.New(rand.NewPCG(1, 2))
	order := append(slices.Clone(all), 0, 3, 3, len(seqs)-1)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	shuffled := make([][]int32, len(order))
	for k, i := range order {
		shuffled[k] = seqs[i]
	}
	check("shuffled with duplicates", order, embed(t, e, shuffled, 0))
	check("split into calls of <= 160 tokens", order, embed(t, small, shuffled, 0))

	// Concurrent callers get the same answers.
	var wg sync.WaitGroup
	results := make([][][]float32, 4)
	for g := range results {
		wg.Go(func() {
			out, err := e.Embed(context.Background(), shuffled, 0)
			if err != nil {
				t.Error(err)
			}
			results[g] = out
		})
	}
	wg.Wait()
	for g, r := range results {
		if r != nil {
			check(fmt.Sprintf("concurrent caller %d", g), order, r)
		}
	}
}

// A sharded checkpoint whose names carry the "model." prefix holds the same
// bytes as the single file, so it must give bitwise identical embeddings.
func TestShardedPrefixedIdentical(t *testing.T) {
	cases := loadReference(t)
	var seqs [][]int32
	for _, c := range cases {
		seqs = append(seqs, c.IDs)
	}
	single := embed(t, openEncoder(t, tinyFixture(t, "bf16", nil), model.Options{}), seqs, 0)
	sharded := tinyFixture(t, "bf16-sharded-prefixed", func(o *fixture.Options) { o.Shards = 3; o.Prefix = true })
	if _, err := os.Stat(filepath.Join(sharded, weights.SafetensorsIndexFile)); err != nil {
		t.Fatalf("sharded fixture has no index: %v", err)
	}
	got := embed(t, openEncoder(t, sharded, model.Options{}), seqs, 0)
	for i := range seqs {
		if !slices.Equal(got[i], single[i]) {
			t.Errorf("case %d: sharded+prefixed embedding differs from single-file", i)
		}
	}
}

// writeWidenedF32 copies the checkpoint in src into dst with every tensor
// widened to F32 (exactly: BF16 and F16 values are float32 values).
func writeWidenedF32(t *testing.T, src, dst string) {
	t.Helper()
	w, err := weights.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, weights.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), `"bfloat16"`, `"float32"`, 1))
	if err := os.WriteFile(filepath.Join(dst, weights.ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	header := map[string]any{}
	var data []byte
	for _, spec := range w.Config.TensorSpecs() {
		vals := w.Tensor(spec.Name).Float32s()
		b := make([]byte, 4*len(vals))
		weights.FromFloat32(b, vals, weights.F32)
		header[spec.Name] = map[string]any{"dtype": "F32", "shape": spec.Shape, "data_offsets": []int{len(data), len(data) + len(b)}}
		data = append(data, b...)
	}
	hdr, _ := json.Marshal(header)
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	file = append(append(file, hdr...), data...)
	if err := os.WriteFile(filepath.Join(dst, weights.SafetensorsFile), file, 0o644); err != nil {
		t.Fatal(err)
	}
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func maxDiff32(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// The weights are widened to float32 before any arithmetic, so a BF16
// checkpoint and its exact F32 widening must agree to float32 rounding; and
// copies of the fixture stored in BF16, F16 and F32 differ only by their
// weights' rounding, which bounds how far their embeddings drift.
func TestDTypes(t *testing.T) {
	cases := loadReference(t)
	var seqs [][]int32
	for _, c := range cases {
		seqs = append(seqs, c.IDs)
	}
	bf16Dir := tinyFixture(t, "bf16", nil)
	bf16 := embed(t, openEncoder(t, bf16Dir, model.Options{}), seqs, 0)

	widened := filepath.Join(fixtureRoot, "bf16-widened-f32")
	writeWidenedF32(t, bf16Dir, widened)
	got := embed(t, openEncoder(t, widened, model.Options{}), seqs, 0)
	// Same weights, same float32 math, but the GEMM may pick a different
	// kernel per dtype (AMX for BF16 weights, where the CPU has it), which
	// sums in another order: float32 rounding differences only. 1e-6 is
	// ~10x the differences seen and ~1000x below the BF16 rounding effect.
	worstWidened := 0.0
	for i := range seqs {
		worstWidened = max(worstWidened, maxDiff32(got[i], bf16[i]))
	}
	t.Logf("bf16 vs its exact f32 widening: max abs diff %.3g", worstWidened)
	if worstWidened > 1e-6 {
		t.Errorf("F32 widening of the BF16 checkpoint differs by %.3g > 1e-6", worstWidened)
	}

	f32 := embed(t, openEncoder(t, tinyFixture(t, "f32", func(o *fixture.Options) { o.DType = weights.F32 }), model.Options{}), seqs, 0)
	f16 := embed(t, openEncoder(t, tinyFixture(t, "f16", func(o *fixture.Options) { o.DType = weights.F16 }), model.Options{}), seqs, 0)
	// Relative weight rounding: BF16 2^-9, F16 2^-12 on average (the
	// fixture's values lie far above F16's subnormal range but for a
	// negligible few). Through two layers and the normalisation, components
	// of a unit embedding of 64 (typical size 1/8) move by a few times that
	// relative error: measured BF16 1.7e-3, F16 2.1e-4 max abs. The bounds
	// leave about a 3-5x margin, far below what a wrong conversion (swapped
	// bytes, a mis-scaled exponent: differences of order 0.1 and cosines
	// far from 1) produces.
	for _, c := range []struct {
		name    string
		got     [][]float32
		maxDiff float64
		minCos  float64
	}{
		{"bf16", bf16, 5e-3, 0.9999},
		{"f16", f16, 1e-3, 0.99999},
	} {
		worst, worstCos := 0.0, 1.0
		for i := range seqs {
			worst = max(worst, maxDiff32(c.got[i], f32[i]))
			worstCos = min(worstCos, cosine(c.got[i], f32[i]))
		}
		t.Logf("%s vs f32: max abs diff %.3g, min cosine %.7f", c.name, worst, worstCos)
		if worst > c.maxDiff || worstCos < c.minCos {
			t.Errorf("%s vs f32: max abs diff %.3g (bound %g), min cosine %.7f (bound %g)", c.name, worst, c.maxDiff, worstCos, c.minCos)
		}
		if worst == 0 {
			t.Errorf("%s vs f32: identical; the copies should differ by their rounding", c.name)
		}
	}
}

func TestEmbedErrors(t *testing.T) {
	e := openEncoder(t, tinyFixture(t, "bf16", nil), model.Options{MaxSeqLen: 40})
	vocab := int32(e.Config().VocabSize)
	ok := []int32{128000, 1663, 25}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		seqs [][]int32
		dims int
		want string
	}{
		{"id = vocab", context.Background(), [][]int32{ok, {1, vocab}}, 0, "sequence 1 token 1: id 128256 out of range"},
		{"negative id", context.Background(), [][]int32{{-1}}, 0, "sequence 0 token 0: id -1 out of range"},
		{"empty sequence", context.Background(), [][]int32{ok, {}}, 0, "sequence 1 is empty"},
		{"too long", context.Background(), [][]int32{make([]int32, 41)}, 0, "sequence 0 has 41 tokens, more than the maximum 40"},
		{"negative dims", context.Background(), [][]int32{ok}, -1, "dimensions -1 out of range [1, 64]"},
		{"dims > hidden", context.Background(), [][]int32{ok}, 65, "dimensions 65 out of range [1, 64]"},
		{"cancelled", cancelled, [][]int32{ok}, 0, context.Canceled.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := e.Embed(c.ctx, c.seqs, c.dims)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if out != nil {
				t.Errorf("got output with an error")
			}
		})
	}
	if _, err := e.Embed(cancelled, [][]int32{ok}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}

	// dims 0 is the full width, and an empty input is no work.
	if got := embed(t, e, [][]int32{ok}, 0); len(got[0]) != 64 {
		t.Errorf("dims 0: %d components, want 64", len(got[0]))
	}
	if got, err := e.Embed(context.Background(), nil, 0); err != nil || len(got) != 0 {
		t.Errorf("no sequences: %v, %v", got, err)
	}
	// Every embedding is unit length, truncated or not.
	for _, dims := range []int{1, 7, 64} {
		v := embed(t, e, [][]int32{ok}, dims)[0]
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		if len(v) != dims || math.Abs(ss-1) > 1e-6 {
			t.Errorf("dims %d: %d components, squared norm %v", dims, len(v), ss)
		}
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Embed(context.Background(), [][]int32{ok}, 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: err = %v, want closed", err)
	}
}

func TestNewEncoderDevice(t *testing.T) {
	w, err := weights.Open(tinyFixture(t, "bf16", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, c := range []struct {
		device, wantDevice, wantErr string
	}{
		{"cpu", "cpu", ""},
		{"auto", "cpu", ""}, // no accelerator backend is linked into this test
		{"cuda", "", "no cuda backend"},
		{"cuda:1", "", "no cuda backend"},
		{"tpu", "", `device "tpu"`},
		{"cpu:1", "", `device "cpu:1"`},
	} {
		e, err := model.NewEncoder(w, c.device, model.Options{})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("device %q: err = %v, want %q", c.device, err, c.wantErr)
			}
			if e != nil {
				e.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("device %q: %v", c.device, err)
			continue
		}
		if !strings.HasPrefix(e.Device(), c.wantDevice) {
			t.Errorf("device %q: runs on %q, want %q", c.device, e.Device(), c.wantDevice)
		}
		e.Close()
	}
	if _, err := model.NewEncoder(w, "cpu", model.Options{MaxBatchTokens: -1}); err == nil {
		t.Error("negative MaxBatchTokens accepted")
	}
	e, err := model.NewEncoder(w, "cpu", model.Options{MaxBatchTokens: 512, MaxSeqLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if o := e.Options(); o.MaxSeqLen != 512 {
		t.Errorf("MaxSeqLen %d not clamped to MaxBatchTokens 512", o.MaxSeqLen)
	}
	for _, c := range []struct {
		in, want model.Options
	}{
		{model.Options{}, model.Options{MaxBatchTokens: model.DefaultMaxBatchTokens, MaxSeqLen: model.DefaultMaxBatchTokens}},
		{model.Options{MaxSeqLen: 20000}, model.Options{MaxBatchTokens: 20000, MaxSeqLen: 20000}},
		{model.Options{MaxSeqLen: 100}, model.Options{MaxBatchTokens: model.DefaultMaxBatchTokens, MaxSeqLen: 100}},
	} {
		e, err := model.NewEncoder(w, "cpu", c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Options(); got != c.want {
			t.Errorf("options %+v resolve to %+v, want %+v", c.in, got, c.want)
		}
		e.Close()
	}
	if _, err := model.NewEncoder(w, "cpu", model.Options{MaxSeqLen: 131073}); err == nil || !strings.Contains(err.Error(), "max_position_embeddings 131072") {
		t.Errorf("MaxSeqLen beyond max_position_embeddings: %v", err)
	}
}

// Load takes a checkpoint directory (hub ids need the network) and owns the
// weights it opens.
func TestLoadDirectory(t *testing.T) {
	e, err := model.Load(context.Background(), tinyFixture(t, "bf16", nil), "cpu", model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := embed(t, e, [][]int32{{128000, 1663}}, 8); len(got[0]) != 8 {
		t.Errorf("got %d components, want 8", len(got[0]))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Load(context.Background(), filepath.Join(t.TempDir(), "absent"), "cpu", model.Options{}); err == nil {
		t.Error("Load of a missing directory succeeded")
	}
}

// recordingBackend wraps the real CPU backend and records each Forward
// call's size and whether two calls ever overlapped.
type recordingBackend struct {
	model.Backend
	mu       sync.Mutex
	calls    []int // tokens per call
	inFlight int
	overlap  bool
}

func (r *recordingBackend) Forward(ctx context.Context, b model.Batch) ([][]float32, error) {
	r.mu.Lock()
	r.inFlight++
	r.overlap = r.overlap || r.inFlight > 1
	r.calls = append(r.calls, len(b.Tokens))
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	return r.Backend.Forward(ctx, b)
}

var lastRecording *recordingBackend

func init() {
	model.RegisterBackend("recording", func(w *weights.Model, device string, opts model.Options) (model.Backend, error) {
		if device != "recording" {
			return nil, fmt.Errorf("want device recording, got %q", device)
		}
		inner, err := cpu.New(w, "cpu", opts)
		if err != nil {
			return nil, err
		}
		lastRecording = &recordingBackend{Backend: inner}
		return lastRecording, nil
	})
}

// Embed splits its input into backend calls of at most MaxBatchTokens
// tokens, in order, and never calls the backend from two goroutines at once.
func TestEmbedSplitsAndSerialises(t *testing.T) {
	w, err := weights.Open(tinyFixture(t, "bf16", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	e, err := model.NewEncoder(w, "recording", model.Options{MaxBatchTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rec := lastRecording
	var seqs [][]int32
	total := 0
	for i, n := range []int{30, 30, 30, 100, 1, 99, 50, 51, 7} {
		s := make([]int32, n)
		for j := range s {
			s[j] = int32(100 + 13*i + j)
		}
		seqs = append(seqs, s)
		total += n
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := e.Embed(context.Background(), seqs, 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overlap {
		t.Error("two Forward calls ran at once")
	}
	sum := 0
	for _, n := range rec.calls {
		if n > 100 {
			t.Errorf("a Forward call of %d tokens, budget 100", n)
		}
		sum += n
	}
	if sum != 3*total {
		t.Errorf("Forward calls covered %d tokens, want %d", sum, 3*total)
	}
	// Greedy in order: [30 30 30] [100] [1 99] [50] [51 7], three times over.
	if len(rec.calls) != 15 {
		t.Errorf("%d Forward calls (%v), want 15", len(rec.calls), rec.calls)
	}
}

// With LLAMAEMBED_BENCH_MODEL naming a full-size checkpoint (for example
// `llamaembed mkmodel --preset nemotron-1b DIR`), loading it takes under 5 s
// and it embeds.
func TestLoadFullSizeModel(t *testing.T) {
	dir := os.Getenv("LLAMAEMBED_BENCH_MODEL")
	if dir == "" {
		t.Skip("LLAMAEMBED_BENCH_MODEL is not set")
	}
	start := time.Now()
	e, err := model.Load(context.Background(), dir, "cpu", model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	load := time.Since(start)
	start = time.Now()
	v := embed(t, e, [][]int32{{128000, 1663, 25, 1268, 656, 358, 7738, 856, 3636, 30}}, 0)[0]
	t.Logf("%s: load %v, one 10-token embedding %v on %s", dir, load, time.Since(start), e.Device())
	if load > 5*time.Second {
		t.Errorf("load took %v, want < 5s", load)
	}
	if len(v) != e.Config().HiddenSize {
		t.Errorf("%d components, want %d", len(v), e.Config().HiddenSize)
	}
}
