package cpu

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"

	"llamaembed/model"
	"llamaembed/weights"
)

// refForward is the encoder in float64, written out plainly and
// independently of the backend (its own RoPE frequencies, attention and
// norms): for each sequence, the mean over tokens of the final-norm hidden
// state. Weights are widened one matrix at a time.
func refForward(w *weights.Model, seq []int32) []float64 {
	c := w.Config
	h, H, KV, D := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	n := len(seq)
	matmul := func(x [][]float64, name string) [][]float64 {
		t := w.Tensor(name)
		rows, cols := t.Shape[0], t.Shape[1]
		wt := t.Float32s()
		out := make([][]float64, len(x))
		for i, xi := range x {
			out[i] = make([]float64, rows)
			for j := range rows {
				var s float64
				for k, v := range wt[j*cols : (j+1)*cols] {
					s += xi[k] * float64(v)
				}
				out[i][j] = s
			}
		}
		return out
	}
	norm := func(x [][]float64, name string) [][]float64 {
		wt := w.Tensor(name).Float32s()
		out := make([][]float64, len(x))
		for i, xi := range x {
			var ss float64
			for _, v := range xi {
				ss += v * v
			}
			r := 1 / math.Sqrt(ss/float64(len(xi))+c.RMSNormEps)
			out[i] = make([]float64, len(xi))
			for j, v := range xi {
				out[i][j] = float64(wt[j]) * v * r
			}
		}
		return out
	}
	// RoPE frequencies, llama3-scaled as in transformers.
	inv := make([]float64, D/2)
	for j := range inv {
		f := math.Pow(c.RopeTheta, -float64(2*j)/float64(D))
		if rs := c.RopeScaling; rs != nil {
			old := float64(rs.OriginalMaxPositionEmbeddings)
			wl := 2 * math.Pi / f
			if wl > old/rs.LowFreqFactor {
				f /= rs.Factor
			} else if wl >= old/rs.HighFreqFactor {
				sm := (old/wl - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				f = (1-sm)*f/rs.Factor + sm*f
			}
		}
		inv[j] = f
	}
	rope := func(x [][]float64, heads int) {
		for p, row := range x {
			for hd := range heads {
				v := row[hd*D : (hd+1)*D]
				for j := range D / 2 {
					cs, sn := math.Cos(float64(p)*inv[j]), math.Sin(float64(p)*inv[j])
					a, b := v[j], v[j+D/2]
					v[j], v[j+D/2] = a*cs-b*sn, b*cs+a*sn
				}
			}
		}
	}

	emb := w.Tensor("embed_tokens.weight")
	x := make([][]float64, n)
	row := make([]float32, h)
	for i, id := range seq {
		emb.Row(int(id), row)
		x[i] = make([]float64, h)
		for j, v := range row {
			x[i][j] = float64(v)
		}
	}
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("layers.%d.", l)
		xn := norm(x, p+"input_layernorm.weight")
		q, k, v := matmul(xn, p+"self_attn.q_proj.weight"), matmul(xn, p+"self_attn.k_proj.weight"), matmul(xn, p+"self_attn.v_proj.weight")
		rope(q, H)
		rope(k, KV)
		att := make([][]float64, n)
		for i := range att {
			att[i] = make([]float64, H*D)
		}
		for hd := range H {
			kv := hd / (H / KV)
			for i := range n {
				s := make([]float64, n)
				m := math.Inf(-1)
				for j := range n {
					for d := range D {
						s[j] += q[i][hd*D+d] * k[j][kv*D+d]
					}
					s[j] /= math.Sqrt(float64(D))
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for j := range n {
					for d := range D {
						att[i][hd*D+d] += s[j] / z * v[j][kv*D+d]
					}
				}
			}
		}
		o := matmul(att, p+"self_attn.o_proj.weight")
		for i := range x {
			for j := range x[i] {
				x[i][j] += o[i][j]
			}
		}
		xn = norm(x, p+"post_attention_layernorm.weight")
		g, u := matmul(xn, p+"mlp.gate_proj.weight"), matmul(xn, p+"mlp.up_proj.weight")
		for i := range g {
			for j, gv := range g[i] {
				g[i][j] = gv / (1 + math.Exp(-gv)) * u[i][j]
			}
		}
		dn := matmul(g, p+"mlp.down_proj.weight")
		for i := range x {
			for j := range x[i] {
				x[i][j] += dn[i][j]
			}
		}
	}
	x = norm(x, "norm.weight")
	mean := make([]float64, h)
	for _, xi := range x {
		for j, v := range xi {
			mean[j] += v / float64(n)
		}
	}
	return mean
}

// checkAgainstReference compares Forward on seqs with refForward, relative
// to the largest component of each pooled vector.
func checkAgainstReference(t *testing.T, w *weights.Model, b *Backend, seqs [][]int32, tol float64) {
	t.Helper()
	got, err := b.Forward(context.Background(), model.Pack(seqs))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		want := refForward(w, s)
		scale, diff := 0.0, 0.0
		for j := range want {
			scale = math.Max(scale, math.Abs(want[j]))
			diff = math.Max(diff, math.Abs(float64(got[i][j])-want[j]))
		}
		t.Logf("sequence %d (%d tokens): max abs diff %.3g, relative to max |component| %.3g", i, len(s), diff, diff/scale)
		if diff > tol*scale {
			t.Errorf("sequence %d (%d tokens): max abs diff %.3g > %g x max |component| %.3g", i, len(s), diff, tol, scale)
		}
	}
}

// The float32 backend, with whatever GEMM kernel this CPU picks, matches
// float64 arithmetic at shapes where every projection spans several K and N
// blocks (tiny-llama-a's do not).
func TestForwardMatchesFloat64(t *testing.T) {
	b, w := mediumBackend(t)
	checkAgainstReference(t, w, b, [][]int32{seqOf(1, 9), seqOf(40, 3), seqOf(70, 4)}, 2e-6)
}

// With LLAMAEMBED_BENCH_MODEL set (for example a nemotron-1b-shaped
// fixture), the same check at full width on two short sequences.
func TestForwardMatchesFloat64FullWidth(t *testing.T) {
	dir := os.Getenv("LLAMAEMBED_BENCH_MODEL")
	if dir == "" || testing.Short() {
		t.Skip("LLAMAEMBED_BENCH_MODEL is not set")
	}
	w, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	be, err := New(w, "cpu", model.Options{MaxSeqLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstReference(t, w, be.(*Backend), [][]int32{{128000, 1663, 25}, seqOf(9, 5)}, 1e-5)
}
