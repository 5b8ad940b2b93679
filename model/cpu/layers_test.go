package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"llamaembed/weights"
)

func nemotron1bRopeConfig() *weights.Config {
	return &weights.Config{
		HeadDim: 64, RopeTheta: 500000,
		RopeScaling: &weights.RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
	}
}

// Expected values from a line-by-line Python transcription of transformers'
// _compute_llama3_parameters for head_dim 64, theta 5e5, factor 32, low 1,
// high 4, original 8192: j <= 14 keep their frequency (wavelength < 2048),
// j >= 18 are divided by 32 (wavelength > 8192), 15..17 are blended.
func TestLlama3InvFreq(t *testing.T) {
	r := newRope(nemotron1bRopeConfig())
	for _, c := range []struct {
		j    int
		want float64
	}{
		{0, 1.0},
		{10, 0.016560440080994446},
		{15, 0.001290547928209264},
		{16, 0.00042955679655936815},
		{17, 9.70828780262767e-05},
		{18, 1.9461638184831125e-05},
		{21, 5.687232150457046e-06},
		{31, 9.418306725434909e-08},
	} {
		if got := r.invFreq[c.j]; math.Abs(got-c.want) > 1e-15*math.Max(1, c.want)+1e-12*c.want {
			t.Errorf("inv_freq[%d] = %.17g, want %.17g", c.j, got, c.want)
		}
	}
	// Without scaling, the plain theta^(-2j/d).
	plain := newRope(&weights.Config{HeadDim: 64, RopeTheta: 500000})
	for j, f := range plain.invFreq {
		if want := math.Pow(500000, -float64(2*j)/64); math.Abs(f-want) > 1e-15*want {
			t.Errorf("unscaled inv_freq[%d] = %g, want %g", j, f, want)
		}
	}
}

// rope.apply matches a float64 rotate-half rotation at large positions.
func TestRopeApply(t *testing.T) {
	r := newRope(nemotron1bRopeConfig())
	r.ensure(10)
	r.ensure(9000) // grows, keeping the first rows
	rng := rand.New(rand.NewPCG(3, 4))
	const heads, d = 3, 64
	for _, pos := range []int{0, 1, 7, 511, 4095, 8999} {
		x := make([]float32, heads*d)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		want := make([]float64, len(x))
		for h := range heads {
			for j := range d / 2 {
				a := float64(pos) * r.invFreq[j]
				x1, x2 := float64(x[h*d+j]), float64(x[h*d+j+d/2])
				want[h*d+j] = x1*math.Cos(a) - x2*math.Sin(a)
				want[h*d+j+d/2] = x2*math.Cos(a) + x1*math.Sin(a)
			}
		}
		r.apply(x, pos)
		for i := range x {
			if d := math.Abs(float64(x[i]) - want[i]); d > 1e-6 {
				t.Fatalf("pos %d element %d: %g, want %g", pos, i, x[i], want[i])
			}
		}
	}
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rowsN, width, eps = 5, 96, 1e-5
	x := make([]float32, rowsN*width)
	w := make([]float32, width)
	for i := range x {
		x[i] = (rng.Float32()*2 - 1) * float32(i%7+1)
	}
	for i := range w {
		w[i] = 1 + (rng.Float32()-0.5)*0.2
	}
	out := make([]float32, len(x))
	rmsNorm(out, x, w, eps)
	for r := range rowsN {
		var ss float64
		for _, v := range x[r*width : (r+1)*width] {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Sqrt(ss/width+eps)
		for i := range width {
			want := float64(w[i]) * float64(x[r*width+i]) * inv
			if math.Abs(float64(out[r*width+i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("row %d col %d: %g, want %g", r, i, out[r*width+i], want)
			}
		}
	}
}

func TestSoftmaxRow(t *testing.T) {
	for _, row := range [][]float32{
		{0},
		{1, 2, 3},
		{1000, 1001, 999},       // would overflow exp without the max subtraction
		{-1000, -1000.5, -2000}, // would underflow to 0/0
	} {
		in := append([]float32(nil), row...)
		softmaxRow(row)
		m := in[0]
		for _, v := range in {
			m = max(m, v)
		}
		var z float64
		for _, v := range in {
			z += math.Exp(float64(v - m))
		}
		var sum float64
		for i, p := range row {
			want := math.Exp(float64(in[i]-m)) / z
			if math.IsNaN(float64(p)) || math.Abs(float64(p)-want) > 1e-7 {
				t.Errorf("softmax(%v)[%d] = %g, want %g", in, i, p, want)
			}
			sum += float64(p)
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("softmax(%v) sums to %g", in, sum)
		}
	}
}

func TestSwiGLU(t *testing.T) {
	gate := []float32{-20, -1, 0, 0.5, 3, 30}
	up := []float32{2, 2, 2, -1, 0.25, 1}
	want := make([]float64, len(gate))
	for i, g := range gate {
		want[i] = float64(g) / (1 + math.Exp(-float64(g))) * float64(up[i])
	}
	swiGLU(gate, up)
	for i := range gate {
		if math.Abs(float64(gate[i])-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
			t.Errorf("swiglu %d: %g, want %g", i, gate[i], want[i])
		}
	}
}

// attentionRef is bidirectional grouped-query attention in float64, one
// sequence, head and query at a time.
func attentionRef(q, k, v []float32, cu []int32, heads, kvHeads, d int) []float64 {
	qs, kvs := heads*d, kvHeads*d
	out := make([]float64, len(q))
	for s := 0; s+1 < len(cu); s++ {
		a, b := int(cu[s]), int(cu[s+1])
		for h := range heads {
			kv := h / (heads / kvHeads)
			for i := a; i < b; i++ {
				scores := make([]float64, b-a)
				m := math.Inf(-1)
				for j := a; j < b; j++ {
					var dot float64
					for p := range d {
						dot += float64(q[i*qs+h*d+p]) * float64(k[j*kvs+kv*d+p])
					}
					scores[j-a] = dot / math.Sqrt(float64(d))
					m = math.Max(m, scores[j-a])
				}
				var z float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - m)
					z += scores[j]
				}
				for j := a; j < b; j++ {
					for p := range d {
						out[i*qs+h*d+p] += scores[j-a] / z * float64(v[j*kvs+kv*d+p])
					}
				}
			}
		}
	}
	return out
}

// Attention over several sequences, some longer than one query block,
// matches the float64 reference, and each sequence only sees itself.
func TestAttention(t *testing.T) {
	const heads, kvHeads, d = 4, 2, 16
	cu := []int32{0, 1, 6, 70, 135, 265}
	T := int(cu[len(cu)-1])
	rng := rand.New(rand.NewPCG(7, 8))
	fill := func(n int, scale float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = (rng.Float32()*2 - 1) * scale
		}
		return s
	}
	q, k, v := fill(T*heads*d, 2), fill(T*kvHeads*d, 2), fill(T*kvHeads*d, 1)
	b := &Backend{cfg: &weights.Config{NumAttentionHeads: heads, NumKeyValueHeads: kvHeads, HeadDim: d}}
	b.ws.scores = [][]float32{make([]float32, qBlock*130), make([]float32, qBlock*130), make([]float32, qBlock*130)}
	dense := func(s []float32, cols int) *tensor.Dense {
		return tensor.New(tensor.WithShape(T, cols), tensor.WithBacking(s))
	}
	out := make([]float32, T*heads*d)
	b.attention(dense(out, heads*d), dense(q, heads*d), dense(k, kvHeads*d), dense(v, kvHeads*d), cu)
	want := attentionRef(q, k, v, cu, heads, kvHeads, d)
	worst := 0.0
	for i := range out {
		worst = max(worst, math.Abs(float64(out[i])-want[i]))
	}
	if worst > 1e-5 {
		t.Errorf("attention: max abs diff %.3g from the float64 reference", worst)
	}
	t.Logf("attention max abs diff %.3g", worst)
}
